// NumPy .npy arrays and .npz archives (np.savez: stored members; np.savez_compressed: deflate).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace dataproxy::data {

namespace fs = std::filesystem;

/// The header of a .npy array: descr ("<i8", "|u1", ...), fortran_order and shape.
struct NpyHeader {
  std::string descr;            ///< dtype as NumPy writes it, e.g. "|u1", "<i8", ">u2"
  bool fortran_order = false;   ///< column-major data
  std::vector<int64_t> shape;   ///< empty for a scalar
  std::size_t data_offset = 0;  ///< where the data starts in the .npy bytes
};

/// Parses a .npy header (format versions 1, 2 and 3). Throws DataError naming `where`
/// (e.g. "data.npz:x_train.npy") when the magic, the length or the dictionary is wrong.
NpyHeader parse_npy_header(const uint8_t* bytes, std::size_t size, const std::string& where);

/// A .npy array as a tensor of the same shape (C order): uint8 for "u1"/"b1", int64 for every
/// integer dtype, float64 for floats (so that errors can say what was found). Throws DataError
/// naming `where` for unsupported dtypes or a data size that does not match the shape.
torch::Tensor npy_to_tensor(const uint8_t* bytes, std::size_t size, const std::string& where,
                            NpyHeader* header = nullptr);

/// Every member "<name>.npy" of an .npz file, decompressed, keyed by <name>. Throws DataError
/// naming the file when it is not a readable zip archive or a member is damaged.
std::map<std::string, std::vector<uint8_t>> read_npz(const fs::path& file);

}  // namespace dataproxy::data
