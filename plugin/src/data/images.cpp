#include "data/images.h"

#include <jpeglib.h>
// jerror.h after jpeglib.h: it names the warning codes.
#include <jerror.h>
#include <png.h>

#include <algorithm>
#include <cctype>
#include <csetjmp>
#include <cstring>
#include <string>
#include <vector>

#include "data/bytes.h"
#include "dataproxy/error.h"

namespace dataproxy::data {
namespace {

torch::Tensor decode_png(const fs::path& file, const torch::Tensor& bytes) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  auto fail = [&](const std::string& what) {
    const std::string why = image.message;
    png_image_free(&image);
    throw DataError(file.string() + ": " + what + " (libpng: " + why +
                    "); replace or remove the file");
  };
  if (!png_image_begin_read_from_memory(&image, bytes.data_ptr<uint8_t>(),
                                        static_cast<std::size_t>(bytes.numel()))) {
    fail("not a readable PNG");
  }
  const bool color = image.format & PNG_FORMAT_FLAG_COLOR;
  const bool alpha = image.format & PNG_FORMAT_FLAG_ALPHA;
  // Read with the alpha channel when there is one and drop it afterwards: PIL's convert("RGB"),
  // which torchvision's loader uses, keeps the colour values instead of compositing them.
  image.format = color ? (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB)
                       : (alpha ? PNG_FORMAT_GA : PNG_FORMAT_GRAY);
  const int64_t channels = PNG_IMAGE_PIXEL_CHANNELS(image.format);
  auto out = torch::empty(
      {static_cast<int64_t>(image.height), static_cast<int64_t>(image.width), channels},
      torch::kUInt8);
  if (!png_image_finish_read(&image, nullptr, out.data_ptr<uint8_t>(), 0, nullptr)) {
    fail("damaged PNG");
  }
  if (alpha) out = out.narrow(2, 0, channels - 1).contiguous();
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
bool jpeg_decode_raw(const uint8_t* data, std::size_t size, std::vector<uint8_t>* out,
                     int64_t* height, int64_t* width, int64_t* channels, char* message) {
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
  out->resize(stride * static_cast<std::size_t>(*height));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out->data() + stride * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

torch::Tensor decode_jpeg(const fs::path& file, const torch::Tensor& bytes) {
  auto* pixels = new std::vector<uint8_t>();
  int64_t h = 0, w = 0, c = 0;
  char message[JMSG_LENGTH_MAX] = {0};
  if (!jpeg_decode_raw(bytes.data_ptr<uint8_t>(), static_cast<std::size_t>(bytes.numel()), pixels,
                       &h, &w, &c, message)) {
    delete pixels;
    throw DataError(file.string() + ": not a readable JPEG (libjpeg: " + message +
                    "); replace or remove the file");
  }
  return torch::from_blob(
      pixels->data(), {h, w, c}, [pixels](void*) { delete pixels; }, torch::kUInt8);
}

}  // namespace

bool is_image_file(const fs::path& file) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

torch::Tensor decode_image(const fs::path& file) {
  const auto bytes = read_bytes(file);
  const auto* p = bytes.data_ptr<uint8_t>();
  const int64_t n = bytes.numel();
  if (n >= 8 && png_sig_cmp(p, 0, 8) == 0) return decode_png(file, bytes);
  if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return decode_jpeg(file, bytes);
  throw DataError(file.string() + ": neither a PNG nor a JPEG (" + std::to_string(n) +
                  " bytes, unknown signature); replace the file with a PNG or JPEG, or remove "
                  "it");
}

torch::Tensor resize_image(const torch::Tensor& chw, int64_t height, int64_t width) {
  if (chw.size(1) == height && chw.size(2) == width) return chw;
  namespace F = torch::nn::functional;
  const bool shrink = height < chw.size(1) || width < chw.size(2);
  auto options = F::InterpolateFuncOptions()
                     .size(std::vector<int64_t>{height, width})
                     .mode(torch::kBilinear)
                     .align_corners(false)
                     .antialias(shrink);
  auto out = F::interpolate(chw.unsqueeze(0).to(torch::kFloat), options);
  return out.squeeze(0).round_().clamp_(0, 255).to(torch::kUInt8);
}

}  // namespace dataproxy::data
