#include "data/cifar_png.h"

#include <png.h>

#include "data/bytes.h"
#include "dataproxy/error.h"

namespace dataproxy::data {

torch::Tensor decode_png_rgb(const fs::path& file) {
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
  auto out = torch::empty(
      {static_cast<int64_t>(image.height), static_cast<int64_t>(image.width), 3}, torch::kUInt8);
  if (!png_image_finish_read(&image, nullptr, out.data_ptr<uint8_t>(), 0, nullptr)) {
    const std::string why = image.message;
    png_image_free(&image);
    throw DataError(file.string() + ": damaged PNG (" + why + ")");
  }
  return out;
}

torch::Tensor cifar_rows_to_records(const torch::Tensor& rgb_rows, const torch::Tensor& labels,
                                    const std::string& source) {
  DATAPROXY_CHECK(rgb_rows.dim() == 3 && rgb_rows.size(1) == 1024 && rgb_rows.size(2) == 3,
                  DataError,
                  source << ": expected rows of 1024 RGB pixels (one 32x32 image per row), got "
                         << "shape " << rgb_rows.sizes());
  DATAPROXY_CHECK(labels.dim() == 1 && labels.size(0) == rgb_rows.size(0), DataError,
                  source << ": image/label count mismatch: " << rgb_rows.size(0) << " images, "
                         << (labels.dim() == 1 ? labels.size(0) : -1) << " labels");
  if (labels.numel() > 0) {
    const auto lo = labels.min().item<int64_t>();
    const auto hi = labels.max().item<int64_t>();
    DATAPROXY_CHECK(lo >= 0 && hi <= 9, DataError,
                    source << ": label out of range 0..9 (labels span " << lo << ".." << hi << ")");
  }
  auto planes = rgb_rows.to(torch::kUInt8).permute({0, 2, 1}).reshape({rgb_rows.size(0), 3072});
  return torch::cat({labels.to(torch::kUInt8).unsqueeze(1), planes}, 1).contiguous();
}

void convert_cifar_png(const fs::path& png, const torch::Tensor& labels, const fs::path& out) {
  const auto recs = cifar_rows_to_records(decode_png_rgb(png), labels, png.string());
  write_bytes(out, recs.data_ptr<uint8_t>(), static_cast<std::size_t>(recs.numel()));
}

}  // namespace dataproxy::data
