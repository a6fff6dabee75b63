// The byte-level layer of the dataset readers: IDX (raw or gzip), the CIFAR binary records, and
// PNG/JPEG decoding, to plain buffers with their shape. Torch-free: the data stage wraps what it
// returns in tensors (data/raw_tensor.h), and the fuzzers (fuzz/) call it without LibTorch.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/bytes.h"

namespace dataproxy::data::raw {

namespace fs = std::filesystem;

/// A dense row-major uint8 array.
struct Array {
  Bytes data;
  std::vector<int64_t> shape;
};

/// Images uint8 [N, C, H, W] and one label per image.
struct Samples {
  Array images;
  Bytes labels;
};

/// `shape` as LibTorch prints sizes: [2, 3, 4].
std::string shape_string(const std::vector<int64_t>& shape);

/// An IDX file, raw or gzip: big-endian magic (0x0000 08 <dims>), one u32 per dimension, then
/// the uint8 data.
Array read_idx_file(const fs::path& file, uint32_t magic, int dims);

/// IDX images (magic 0x803, [N, H, W], returned as [N, 1, H, W]) and labels (0x801) in
/// [0, num_classes).
Samples read_idx(const fs::path& images, const fs::path& labels, int64_t num_classes);

/// CIFAR-10 binary batches (label byte, then the R, G and B planes): images [N, 3, 32, 32] in
/// file order. `counts`, when given, receives each file's number of records.
Samples read_cifar10(const std::vector<fs::path>& files, std::vector<int64_t>* counts);

/// One CIFAR-100 binary file (coarse label byte, fine label byte, then the planes); both labels
/// are checked, the fine or the coarse one is returned.
Samples read_cifar100(const fs::path& file, bool fine);

/// Decodes an 8-bit RGB PNG to [height, width, 3].
Array decode_png_rgb(const fs::path& file);

/// Decodes a PNG or JPEG (chosen by the file's first bytes) to [H, W, C]: C = 1 for grayscale
/// files, else 3 (palette expanded, alpha dropped as PIL's convert("RGB") does).
Array decode_image(const fs::path& file);

/// CIFAR-10 binary records [N, 3073] from rows of 1024 RGB pixels, [N, 1024, 3], and one label
/// in 0..9 per row. `source` names the input in error messages.
Array cifar_rows_to_records(const Array& rgb_rows, const std::vector<int64_t>& labels,
                            const std::string& source);

}  // namespace dataproxy::data::raw
