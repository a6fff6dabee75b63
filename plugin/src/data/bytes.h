// Whole-file reads and writes, and gzip decompression, shared by the readers and the fetcher.
// Torch-free, like data/raw.h: the fuzzers build them without LibTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace dataproxy::data {

namespace fs = std::filesystem;

using Bytes = std::vector<uint8_t>;

/// The whole file; throws DataError naming the file when it is missing or unreadable.
Bytes read_bytes(const fs::path& file);

/// True when the `size` bytes at `data` start with the gzip magic (1f 8b).
bool is_gzip(const uint8_t* data, std::size_t size);

/// Decompresses a gzip stream (one or more members). Throws DataError naming `file` when the
/// stream is truncated, corrupt, or followed by bytes that are not gzip.
Bytes gunzip(const uint8_t* data, std::size_t size, const fs::path& file);

/// read_bytes(), decompressed when the content is gzip.
Bytes read_maybe_gzip(const fs::path& file);

/// Writes `size` bytes to `file` (created or truncated); throws RuntimeFailure when it cannot.
void write_bytes(const fs::path& file, const void* data, std::size_t size);

}  // namespace dataproxy::data
