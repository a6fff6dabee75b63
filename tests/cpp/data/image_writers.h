// Writers for the user-dataset tests: PNG (libpng), JPEG (libjpeg), .npy and .npz (libzip).
#pragma once

#include <jpeglib.h>
#include <png.h>
#include <torch/torch.h>
#include <zip.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "data_test_util.h"

namespace dataproxy::test {

/// Writes uint8 [H, W, C] (C = 1 or 3) as an 8-bit PNG.
inline void write_png(const fs::path& path, const torch::Tensor& hwc) {
  fs::create_directories(path.parent_path());
  const auto t = hwc.contiguous();
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(t.size(1));
  image.height = static_cast<png_uint_32>(t.size(0));
  image.format = t.size(2) == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  ASSERT_TRUE(png_image_write_to_file(&image, path.c_str(), 0, t.data_ptr<uint8_t>(), 0, nullptr))
      << path << ": " << image.message;
}

/// Writes uint8 [H, W, C] (C = 1 or 3) as a JPEG of the given quality.
inline void write_jpeg(const fs::path& path, const torch::Tensor& hwc, int quality = 95) {
  fs::create_directories(path.parent_path());
  const auto t = hwc.contiguous();
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(t.size(1));
  cinfo.image_height = static_cast<JDIMENSION>(t.size(0));
  cinfo.input_components = static_cast<int>(t.size(2));
  cinfo.in_color_space = t.size(2) == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  const auto stride = static_cast<std::size_t>(t.size(1) * t.size(2));
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = t.data_ptr<uint8_t>() + stride * cinfo.next_scanline;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  write_file(path, std::string(reinterpret_cast<char*>(buffer), size));
  std::free(buffer);
}

/// A .npy (format 1.0) with the given dtype descr, shape and raw data bytes.
inline std::string npy(const std::string& descr, const std::vector<int64_t>& shape,
                       const std::string& data, bool fortran = false) {
  std::string dims;
  for (auto s : shape) dims += std::to_string(s) + ", ";
  if (shape.size() > 1) dims = dims.substr(0, dims.size() - 2);
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
                     ", 'shape': (" + dims + "), }";
  while ((10 + dict.size() + 1) % 64 != 0) dict += ' ';
  dict += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict + data;
}

/// Little-endian bytes of integers of `width` bytes.
inline std::string le_ints(const std::vector<int64_t>& values, int width) {
  std::string out;
  for (auto v : values) {
    for (int b = 0; b < width; ++b) out += static_cast<char>((static_cast<uint64_t>(v) >> (8 * b)));
  }
  return out;
}

/// The bytes of a uint8 tensor.
inline std::string bytes_of(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()),
                     static_cast<std::size_t>(c.numel()));
}

/// Writes an .npz with members name -> .npy bytes, stored or deflated.
inline void write_npz(const fs::path& path,
                      const std::vector<std::pair<std::string, std::string>>& members,
                      bool compressed) {
  fs::create_directories(path.parent_path());
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(z, nullptr) << path;
  for (const auto& [name, data] : members) {
    zip_source_t* src = zip_source_buffer(z, data.data(), data.size(), 0);
    ASSERT_NE(src, nullptr);
    const zip_int64_t i = zip_file_add(z, (name + ".npy").c_str(), src, ZIP_FL_OVERWRITE);
    ASSERT_GE(i, 0);
    ASSERT_EQ(zip_set_file_compression(z, static_cast<zip_uint64_t>(i),
                                       compressed ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0),
              0);
  }
  ASSERT_EQ(zip_close(z), 0) << zip_strerror(z);
}

}  // namespace dataproxy::test
