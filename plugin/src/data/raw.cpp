#include "data/raw.h"

#include <jpeglib.h>
// jerror.h after jpeglib.h: it names the warning codes.
#include <jerror.h>
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "dataproxy/error.h"

namespace dataproxy::data::raw {
namespace {

constexpr int64_t kCifarPixels = 3 * 32 * 32;

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

/// Label i of n sits at labels[i * stride]; the first one >= num_classes is refused.
void check_labels(const uint8_t* labels, int64_t n, int64_t stride, int64_t num_classes,
                  const fs::path& file, const std::string& unit) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = labels[i * stride];
    DATAPROXY_CHECK(label < num_classes, DataError,
                    file.string() << ": " << unit << " " << i << " has label " << label
                                  << ", out of range 0.." << num_classes - 1
                                  << " (wrong format or damaged file)");
  }
}

/// A file of fixed-size records.
Bytes records(const fs::path& file, int64_t record_size, const std::string& format) {
  auto bytes = read_bytes(file);
  const auto size = static_cast<int64_t>(bytes.size());
  DATAPROXY_CHECK(size > 0 && size % record_size == 0, DataError,
                  file.string() << ": wrong size " << size << " bytes: not a whole number of "
                                << record_size << "-byte " << format
                                << " records (truncated, or not " << format << " binary)");
  return bytes;
}

/// The `width` bytes at `offset` of each `record_size`-byte record, appended to `out`.
void append_column(const Bytes& recs, int64_t record_size, int64_t offset, int64_t width,
                   Bytes& out) {
  const int64_t n = static_cast<int64_t>(recs.size()) / record_size;
  const std::size_t start = out.size();
  out.resize(start + static_cast<std::size_t>(n * width));
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(out.data() + start + i * width, recs.data() + i * record_size + offset,
                static_cast<std::size_t>(width));
  }
}

/// A PNG's pixels come out of deflate, which expands at most 1032-fold, at 1 bit per pixel or
/// more, read as at most 4 bytes: a header announcing more than this many output bytes per file
/// byte is damaged, and is refused before its buffer is allocated.
constexpr double kPngMaxExpansion = 1032.0 * 8 * 4;

bool png_size_possible(const png_image& image, int64_t channels, std::uintmax_t file_size) {
  const double need = double(image.height) * double(image.width) * double(channels);
  return need <= kPngMaxExpansion * double(file_size) + 1024;
}

std::string png_too_large(const png_image& image, std::uintmax_t file_size) {
  return "the header announces " + std::to_string(image.width) + "x" +
         std::to_string(image.height) + " pixels, more than " + std::to_string(file_size) +
         " bytes of PNG can hold";
}

Array decode_png(const fs::path& file, const Bytes& bytes) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  auto fail = [&](const std::string& what) {
    const std::string why = image.message;
    png_image_free(&image);
    throw DataError(file.string() + ": " + what + " (libpng: " + why +
                    "); replace or remove the file");
  };
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    fail("not a readable PNG");
  }
  const bool color = image.format & PNG_FORMAT_FLAG_COLOR;
  const bool alpha = image.format & PNG_FORMAT_FLAG_ALPHA;
  // Read with the alpha channel when there is one and drop it afterwards: PIL's convert("RGB"),
  // which torchvision's loader uses, keeps the colour values instead of compositing them.
  image.format = color ? (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB)
                       : (alpha ? PNG_FORMAT_GA : PNG_FORMAT_GRAY);
  const int64_t channels = PNG_IMAGE_PIXEL_CHANNELS(image.format);
  if (!png_size_possible(image, channels, bytes.size())) {
    png_image_free(&image);
    throw DataError(file.string() + ": damaged PNG (" + png_too_large(image, bytes.size()) +
                    "); replace or remove the file");
  }
  const int64_t h = image.height, w = image.width;
  Array out{Bytes(static_cast<std::size_t>(h * w * channels)), {h, w, channels}};
  if (!png_image_finish_read(&image, nullptr, out.data.data(), 0, nullptr)) fail("damaged PNG");
  if (alpha) {
    const int64_t kept = channels - 1;
    for (int64_t p = 0; p < h * w; ++p) {
      std::memmove(out.data.data() + p * kept, out.data.data() + p * channels,
                   static_cast<std::size_t>(kept));
    }
    out.data.resize(static_cast<std::size_t>(h * w * kept));
    out.shape[2] = kept;
  }
  return out;
}

/// libjpeg reports errors through a callback that must not return: it jumps back here.
struct JpegErrors {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings mean damaged data (libjpeg fills the rest with gray); PIL refuses a truncated file
// too. Extraneous bytes between markers are common and harmless, so they stay warnings.
void jpeg_warn(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code != JWRN_EXTRANEOUS_DATA) jpeg_fail(cinfo);
}

/// Decodes into `out` (allocated here, owned by the caller). No C++ object with a destructor
/// lives in this frame, so the longjmp from libjpeg skips nothing. False with `message` set
/// on failure.
bool jpeg_decode_raw(const uint8_t* data, std::size_t size, Bytes* out, int64_t* height,
                     int64_t* width, int64_t* channels, char* message) {
  jpeg_decompress_struct cinfo;
  JpegErrors errors;
  cinfo.err = jpeg_std_error(&errors.mgr);
  errors.mgr.error_exit = jpeg_fail;
  errors.mgr.emit_message = jpeg_warn;
  errors.message[0] = '\0';
  if (setjmp(errors.jump)) {
    std::strncpy(message, errors.message, JMSG_LENGTH_MAX);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    std::strncpy(message, "CMYK JPEG; convert it to RGB", JMSG_LENGTH_MAX);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  *height = cinfo.output_height;
  *width = cinfo.output_width;
  *channels = cinfo.output_components;
  const std::size_t stride = static_cast<std::size_t>(*width) * static_cast<std::size_t>(*channels);
  // Grown row by row, not sized from the header: a damaged file that announces 65500x65500
  // pixels ends at its first missing row instead of allocating gigabytes first.
  while (cinfo.output_scanline < cinfo.output_height) {
    out->resize(stride * (cinfo.output_scanline + 1));
    JSAMPROW row = out->data() + stride * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

Array decode_jpeg(const fs::path& file, const Bytes& bytes) {
  Array out;
  int64_t h = 0, w = 0, c = 0;
  char message[JMSG_LENGTH_MAX] = {0};
  if (!jpeg_decode_raw(bytes.data(), bytes.size(), &out.data, &h, &w, &c, message)) {
    throw DataError(file.string() + ": not a readable JPEG (libjpeg: " + message +
                    "); replace or remove the file");
  }
  out.shape = {h, w, c};
  return out;
}

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

Array read_idx_file(const fs::path& file, uint32_t magic, int dims) {
  auto bytes = read_maybe_gzip(file);
  const auto size = static_cast<int64_t>(bytes.size());
  const int64_t header = 4 + 4 * dims;
  DATAPROXY_CHECK(size >= 4, DataError,
                  file.string() << ": wrong size " << size
                                << " bytes, too short for an IDX magic number (truncated or not "
                                   "IDX)");
  const uint8_t* p = bytes.data();
  const uint32_t got = big_endian_u32(p);
  DATAPROXY_CHECK(got == magic, DataError,
                  file.string() << ": wrong magic 0x" << std::hex << got << ", expected 0x" << magic
                                << std::dec
                                << (magic == 0x803 ? " (IDX uint8 images)" : " (IDX uint8 labels)")
                                << "; is it the right file?");
  DATAPROXY_CHECK(size >= header, DataError,
                  file.string() << ": wrong size " << size << " bytes, shorter than the " << header
                                << "-byte IDX header (truncated or not IDX)");
  std::vector<int64_t> shape;
  // In floating point, so that a damaged header cannot overflow the product.
  double expected = 1;
  for (int i = 0; i < dims; ++i) {
    shape.push_back(big_endian_u32(p + 4 + 4 * i));
    expected *= static_cast<double>(shape.back());
  }
  DATAPROXY_CHECK(static_cast<double>(size - header) == expected, DataError,
                  file.string() << ": wrong size " << size << " bytes; the header announces shape "
                                << shape_string(shape) << ", which needs " << std::fixed
                                << std::setprecision(0) << static_cast<double>(header) + expected
                                << " bytes (truncated or damaged: fetch it again)");
  bytes.erase(bytes.begin(), bytes.begin() + header);
  return {std::move(bytes), std::move(shape)};
}

Samples read_idx(const fs::path& images, const fs::path& labels, int64_t num_classes) {
  DATAPROXY_CHECK(num_classes > 0 && num_classes <= 256, InvalidInput,
                  "read_idx: num_classes " << num_classes << " must be in 1..256");
  auto img = read_idx_file(images, 0x803, 3);
  auto lab = read_idx_file(labels, 0x801, 1);
  DATAPROXY_CHECK(img.shape[0] == lab.shape[0], DataError,
                  "image/label count mismatch: " << images.string() << " holds " << img.shape[0]
                                                 << " images but " << labels.string() << " holds "
                                                 << lab.shape[0] << " labels");
  check_labels(lab.data.data(), lab.shape[0], 1, num_classes, labels, "label");
  img.shape.insert(img.shape.begin() + 1, 1);
  return {std::move(img), std::move(lab.data)};
}

Samples read_cifar10(const std::vector<fs::path>& files, std::vector<int64_t>* counts) {
  constexpr int64_t record = 1 + kCifarPixels;
  Samples s;
  for (const auto& file : files) {
    const auto recs = records(file, record, "CIFAR-10");
    const int64_t n = static_cast<int64_t>(recs.size()) / record;
    check_labels(recs.data(), n, record, 10, file, "record");
    if (counts) counts->push_back(n);
    append_column(recs, record, 0, 1, s.labels);
    append_column(recs, record, 1, kCifarPixels, s.images.data);
  }
  s.images.shape = {static_cast<int64_t>(s.labels.size()), 3, 32, 32};
  return s;
}

Samples read_cifar100(const fs::path& file, bool fine) {
  constexpr int64_t record = 2 + kCifarPixels;
  const auto recs = records(file, record, "CIFAR-100");
  const int64_t n = static_cast<int64_t>(recs.size()) / record;
  check_labels(recs.data(), n, record, 20, file, "record (coarse label)");
  check_labels(recs.data() + 1, n, record, 100, file, "record (fine label)");
  Samples s;
  append_column(recs, record, fine ? 1 : 0, 1, s.labels);
  append_column(recs, record, 2, kCifarPixels, s.images.data);
  s.images.shape = {n, 3, 32, 32};
  return s;
}

Array decode_png_rgb(const fs::path& file) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, file.c_str())) {
    const std::string why = image.message;
    png_image_free(&image);
    throw DataError(file.string() + ": not a readable PNG (" + why + ")");
  }
  if (image.format != PNG_FORMAT_RGB) {
    png_image_free(&image);
    throw DataError(file.string() + ": expected an 8-bit RGB PNG without alpha (format code " +
                    std::to_string(image.format) + ")");
  }
  std::error_code ec;
  const auto file_size = fs::file_size(file, ec);
  if (ec || !png_size_possible(image, 3, file_size)) {
    png_image_free(&image);
    throw DataError(file.string() + ": damaged PNG (" +
                    (ec ? ec.message() : png_too_large(image, file_size)) + ")");
  }
  const int64_t h = image.height, w = image.width;
  Array out{Bytes(static_cast<std::size_t>(h * w * 3)), {h, w, 3}};
  if (!png_image_finish_read(&image, nullptr, out.data.data(), 0, nullptr)) {
    const std::string why = image.message;
    png_image_free(&image);
    throw DataError(file.string() + ": damaged PNG (" + why + ")");
  }
  return out;
}

Array decode_image(const fs::path& file) {
  const auto bytes = read_bytes(file);
  const uint8_t* p = bytes.data();
  const auto n = static_cast<int64_t>(bytes.size());
  if (n >= 8 && png_sig_cmp(p, 0, 8) == 0) return decode_png(file, bytes);
  if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return decode_jpeg(file, bytes);
  throw DataError(file.string() + ": neither a PNG nor a JPEG (" + std::to_string(n) +
                  " bytes, unknown signature); replace the file with a PNG or JPEG, or remove "
                  "it");
}

Array cifar_rows_to_records(const Array& rgb_rows, const std::vector<int64_t>& labels,
                            const std::string& source) {
  const auto& shape = rgb_rows.shape;
  DATAPROXY_CHECK(shape.size() == 3 && shape[1] == 1024 && shape[2] == 3, DataError,
                  source << ": expected rows of 1024 RGB pixels (one 32x32 image per row), got "
                         << "shape " << shape_string(shape));
  const int64_t n = shape[0];
  DATAPROXY_CHECK(
      static_cast<int64_t>(labels.size()) == n, DataError,
      source << ": image/label count mismatch: " << n << " images, " << labels.size() << " labels");
  if (!labels.empty()) {
    const auto [lo, hi] = std::minmax_element(labels.begin(), labels.end());
    DATAPROXY_CHECK(
        *lo >= 0 && *hi <= 9, DataError,
        source << ": label out of range 0..9 (labels span " << *lo << ".." << *hi << ")");
  }
  constexpr int64_t record = 1 + kCifarPixels;
  Array out{Bytes(static_cast<std::size_t>(n * record)), {n, record}};
  for (int64_t i = 0; i < n; ++i) {
    uint8_t* rec = out.data.data() + i * record;
    const uint8_t* row = rgb_rows.data.data() + i * kCifarPixels;
    rec[0] = static_cast<uint8_t>(labels[static_cast<std::size_t>(i)]);
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t p = 0; p < 1024; ++p) rec[1 + c * 1024 + p] = row[p * 3 + c];
    }
  }
  return out;
}

}  // namespace dataproxy::data::raw
