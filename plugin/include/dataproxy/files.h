// File helpers shared by every stage: atomic writes, inter-process locks, checksums.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace dataproxy {

namespace fs = std::filesystem;

/// Writes `data` to `path` atomically: a temporary file in the same folder, fsync, rename.
/// Readers see the old file or the new one, never a half-written one.
void atomic_write(const fs::path& path, std::string_view data);

/// Reads a whole file; throws InvalidInput naming the path when it cannot.
std::string read_file(const fs::path& path);

/// Exclusive advisory lock (flock) on `path`, created if missing, held for the object's life.
/// Released by the kernel when the process dies, so a killed holder never leaves it stuck.
class FileLock {
 public:
  explicit FileLock(const fs::path& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

/// Lower-case hex digests.
std::string md5_hex(std::string_view data);
std::string md5_file(const fs::path& path);
std::string sha1_file(const fs::path& path);
std::string sha256_hex(std::string_view data);
std::string sha256_file(const fs::path& path);
/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view data);

/// Incremental SHA-256, for hashing large tensors without copying them.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256& update(const void* data, std::size_t size);
  Sha256& update(std::string_view s) { return update(s.data(), s.size()); }
  std::string hex();

 private:
  void* ctx_;
};

/// Folder for caches: $DATAPROXY_CACHE, else $XDG_CACHE_HOME/dataproxy, else ~/.cache/dataproxy.
fs::path default_cache_dir();

}  // namespace dataproxy
