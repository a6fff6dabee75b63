// Whole-file reads into tensors and gzip decompression, shared by the readers and the fetcher.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>

namespace dataproxy::data {

namespace fs = std::filesystem;

/// The whole file as a uint8 [size] tensor; throws DataError naming the file when it is
/// missing or unreadable.
torch::Tensor read_bytes(const fs::path& file);

/// True when `bytes` starts with the gzip magic (1f 8b).
bool is_gzip(const torch::Tensor& bytes);

/// Decompresses a gzip stream (one or more members). Throws DataError naming `file` when the
/// stream is truncated, corrupt, or followed by bytes that are not gzip.
torch::Tensor gunzip(const torch::Tensor& bytes, const fs::path& file);

/// read_bytes(), decompressed when the content is gzip.
torch::Tensor read_maybe_gzip(const fs::path& file);

/// Writes `size` bytes to `file` (created or truncated); throws RuntimeFailure when it cannot.
void write_bytes(const fs::path& file, const void* data, std::size_t size);

}  // namespace dataproxy::data
