// The decode cache: datasets a user brings (folder, npz, idx) decoded once into a file that
// later loads map into memory, keyed by the source files' paths, sizes and mtimes.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "dataproxy/dataset.h"

namespace dataproxy::data {

namespace fs = std::filesystem;

/// Version of the entry format; part of the key, so a new layout never reads an old entry.
constexpr int kDataCacheVersion = 1;

/// Key of the entry for `format` read from `files` with `image_size`: SHA-256 over the
/// format version, the format, image_size, and each file's absolute path, size and mtime.
std::string data_cache_key(const std::string& format, const std::vector<fs::path>& files,
                           int64_t image_size);

/// Returns the splits from cache_root/data/<key>/data.bin when that entry is valid (memory
/// mapped; fingerprints known); otherwise runs `decode`, stores its result there (atomically,
/// under a file lock, so concurrent loads decode once) and returns it. An entry that fails its
/// checks (magic, header checksum, payload CRC-32, sizes) is rebuilt and a note says so. When
/// the cache cannot be written, the decoded data is returned with a note saying why.
DatasetSplits cached_load(const std::string& key, const fs::path& cache_root,
                          const std::function<DatasetSplits()>& decode);

/// Reads an entry file; throws DataError saying what is wrong with it.
DatasetSplits read_cache_entry(const fs::path& file);

/// Writes `splits` as an entry file (temporary file, fsync, rename).
void write_cache_entry(const fs::path& file, const std::string& key, const DatasetSplits& splits);

}  // namespace dataproxy::data
