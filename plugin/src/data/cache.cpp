#include "data/cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "dataproxy/clock.h"
#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/manifest.h"

namespace dataproxy::data {
namespace {

using json = nlohmann::json;

constexpr char kMagic[8] = {'D', 'P', 'X', 'D', 'A', 'T', 'A', '1'};
constexpr std::size_t kAlign = 64;

std::size_t align_up(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

uint32_t crc32_of(const uint8_t* p, std::size_t n) {
  return static_cast<uint32_t>(crc32_z(crc32_z(0L, Z_NULL, 0), p, n));
}

/// A read-only file mapped copy-on-write, unmapped when the last tensor over it is freed.
class Mapping {
 public:
  explicit Mapping(const fs::path& file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    DATAPROXY_CHECK(fd >= 0, DataError, file.string() << ": cannot open: " << std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
      ::close(fd);
      throw DataError(file.string() + ": empty or unreadable cache file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    // Private and writable: a caller that modifies the tensors in place gets its own pages
    // instead of a crash, and the file is never changed.
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    ::close(fd);
    DATAPROXY_CHECK(p != MAP_FAILED, DataError,
                    file.string() << ": cannot map into memory: " << std::strerror(errno));
    data_ = static_cast<uint8_t*>(p);
  }
  ~Mapping() { ::munmap(data_, size_); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

uint64_t le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int b = 0; b < 8; ++b) v |= uint64_t(p[b]) << (8 * b);
  return v;
}

std::string le64_bytes(uint64_t v) {
  std::string s(8, '\0');
  for (int b = 0; b < 8; ++b) s[b] = static_cast<char>(v >> (8 * b));
  return s;
}

std::string header_checksum(json j) {
  j.erase("checksum");
  return sha256_hex(j.dump());
}

bool little_endian() {
  const uint16_t one = 1;
  uint8_t first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

/// Streams pieces into a temporary file next to `file` and renames it into place.
class AtomicFile {
 public:
  explicit AtomicFile(const fs::path& file) : file_(file) {
    std::random_device rd;
    tmp_ = file.parent_path() / ("." + file.filename().string() + ".tmp" +
                                 std::to_string(::getpid()) + "." + std::to_string(rd()));
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    DATAPROXY_CHECK(fd_ >= 0, RuntimeFailure,
                    "cannot create " << tmp_.string() << ": " << std::strerror(errno)
                                     << " (check that the cache folder is writable)");
  }
  ~AtomicFile() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(tmp_.c_str());
    }
  }
  void write(const void* data, std::size_t size) {
    const auto* p = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t n = ::write(fd_, p, size);
      if (n < 0 && errno == EINTR) continue;
      DATAPROXY_CHECK(n > 0, RuntimeFailure,
                      "cannot write " << tmp_.string() << ": " << std::strerror(errno)
                                      << " (check free disk space)");
      p += n;
      size -= static_cast<std::size_t>(n);
    }
  }
  void commit() {
    DATAPROXY_CHECK(::fsync(fd_) == 0, RuntimeFailure,
                    "cannot flush " << tmp_.string() << ": " << std::strerror(errno));
    ::close(fd_);
    fd_ = -1;
    if (::rename(tmp_.c_str(), file_.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      ::unlink(tmp_.c_str());
      throw RuntimeFailure("cannot move " + tmp_.string() + " to " + file_.string() + ": " + why);
    }
  }

 private:
  fs::path file_, tmp_;
  int fd_ = -1;
};

json info_to_json(const LoadInfo& i) {
  return {{"format", i.format},
          {"source", i.source.string()},
          {"image_size_rule", i.image_size_rule},
          {"resized", i.resized},
          {"converted_to_rgb", i.converted_to_rgb},
          {"notes", i.notes}};
}

}  // namespace

std::string data_cache_key(const std::string& format, const std::vector<fs::path>& files,
                           int64_t image_size) {
  json sources = json::array();
  for (const auto& f : files) {
    std::error_code ec;
    const auto size = fs::file_size(f, ec);
    DATAPROXY_CHECK(!ec, DataError, f.string() << ": cannot read its size: " << ec.message());
    const auto mtime = fs::last_write_time(f, ec);
    DATAPROXY_CHECK(!ec, DataError, f.string() << ": cannot read its mtime: " << ec.message());
    sources.push_back({fs::absolute(f).lexically_normal().string(), size,
                       static_cast<int64_t>(mtime.time_since_epoch().count())});
  }
  const json deciding{{"kind", "dataproxy.data-cache"},
                      {"version", kDataCacheVersion},
                      {"format", format},
                      {"image_size", image_size},
                      {"sources", sources}};
  return sha256_hex(deciding.dump());
}

void write_cache_entry(const fs::path& file, const std::string& key, const DatasetSplits& splits) {
  DATAPROXY_CHECK(little_endian(), RuntimeFailure,
                  "the decode cache stores little-endian labels; this host is big-endian");
  static const uint8_t zeros[kAlign] = {0};
  // The payload as pieces in file order, each section padded to kAlign bytes.
  std::vector<std::pair<const void*, std::size_t>> pieces;
  std::size_t offset = 0;
  auto add = [&](const void* data, std::size_t size) {
    pieces.emplace_back(data, size);
    pieces.emplace_back(zeros, align_up(offset + size) - (offset + size));
    const std::size_t at = offset;
    offset = align_up(offset + size);
    return at;
  };
  json header{{"kind", "dataproxy.data-cache"},
              {"version", kDataCacheVersion},
              {"key", key},
              {"info", info_to_json(splits.info)}};
  std::vector<torch::Tensor> keep;
  for (auto [name, d] : {std::pair{"train", &splits.train}, std::pair{"test", &splits.test}}) {
    keep.push_back(d->images.to(torch::kCPU, torch::kUInt8).contiguous());
    keep.push_back(d->labels.to(torch::kCPU, torch::kInt64).contiguous());
    const auto& images = keep[keep.size() - 2];
    const auto& labels = keep.back();
    const std::size_t io =
        add(images.data_ptr<uint8_t>(), static_cast<std::size_t>(images.numel()));
    const std::size_t lo =
        add(labels.data_ptr<int64_t>(), static_cast<std::size_t>(labels.numel()) * 8);
    header["splits"][name] = {{"name", d->name},
                              {"num_classes", d->num_classes},
                              {"class_names", d->class_names},
                              {"shape", images.sizes().vec()},
                              {"images_offset", io},
                              {"labels_offset", lo},
                              {"fingerprint", fingerprint(*d)}};
  }
  uLong crc = crc32_z(0L, Z_NULL, 0);
  for (const auto& [data, size] : pieces) crc = crc32_z(crc, static_cast<const Bytef*>(data), size);
  header["payload_size"] = offset;
  header["payload_crc32"] = static_cast<uint32_t>(crc);
  header["checksum"] = header_checksum(header);
  const std::string text = header.dump();

  AtomicFile out(file);
  out.write(kMagic, 8);
  out.write(le64_bytes(text.size()).data(), 8);
  out.write(text.data(), text.size());
  out.write(zeros, align_up(16 + text.size()) - 16 - text.size());
  for (const auto& [data, size] : pieces) out.write(data, size);
  out.commit();
}

DatasetSplits read_cache_entry(const fs::path& file) {
  auto map = std::make_shared<Mapping>(file);
  const uint8_t* p = map->data();
  const std::size_t size = map->size();
  DATAPROXY_CHECK(size >= 16 && std::memcmp(p, kMagic, 8) == 0, DataError,
                  file.string() << ": not a dataproxy data cache file (wrong magic)");
  const uint64_t header_len = le64(p + 8);
  DATAPROXY_CHECK(header_len <= size - 16, DataError,
                  file.string() << ": header length " << header_len << " exceeds the file (" << size
                                << " bytes): truncated");
  json header;
  try {
    header = json::parse(p + 16, p + 16 + header_len);
  } catch (const json::exception& e) {
    throw DataError(file.string() + ": damaged header (" + e.what() + ")");
  }
  try {
    DATAPROXY_CHECK(header.at("checksum").get<std::string>() == header_checksum(header), DataError,
                    file.string() << ": header checksum mismatch (damaged)");
    DATAPROXY_CHECK(header.at("version").get<int>() == kDataCacheVersion, DataError,
                    file.string() << ": entry version " << header.at("version")
                                  << ", this dataproxy writes " << kDataCacheVersion);
    const std::size_t start = align_up(16 + header_len);
    const auto payload_size = header.at("payload_size").get<std::size_t>();
    DATAPROXY_CHECK(start + payload_size == size, DataError,
                    file.string() << ": " << size << " bytes, the header announces "
                                  << start + payload_size << " (truncated or damaged)");
    const uint32_t crc = crc32_of(p + start, payload_size);
    DATAPROXY_CHECK(crc == header.at("payload_crc32").get<uint32_t>(), DataError,
                    file.string() << ": payload CRC-32 mismatch (damaged)");
    DatasetSplits out;
    const json& info = header.at("info");
    out.info.format = info.at("format").get<std::string>();
    out.info.source = info.at("source").get<std::string>();
    out.info.image_size_rule = info.at("image_size_rule").get<std::string>();
    out.info.resized = info.at("resized").get<int64_t>();
    out.info.converted_to_rgb = info.at("converted_to_rgb").get<int64_t>();
    out.info.notes = info.at("notes").get<std::vector<std::string>>();
    for (auto [name, d] : {std::pair{"train", &out.train}, std::pair{"test", &out.test}}) {
      const json& s = header.at("splits").at(name);
      const auto shape = s.at("shape").get<std::vector<int64_t>>();
      DATAPROXY_CHECK(shape.size() == 4, DataError, file.string() << ": bad shape in the header");
      const int64_t n = shape[0];
      const int64_t numel = shape[0] * shape[1] * shape[2] * shape[3];
      const auto io = s.at("images_offset").get<std::size_t>();
      const auto lo = s.at("labels_offset").get<std::size_t>();
      DATAPROXY_CHECK(io + static_cast<std::size_t>(numel) <= payload_size && lo % 8 == 0 &&
                          lo + static_cast<std::size_t>(n) * 8 <= payload_size,
                      DataError, file.string() << ": offsets beyond the payload (damaged)");
      auto keep = [map](void*) {};
      d->name = s.at("name").get<std::string>();
      d->num_classes = s.at("num_classes").get<int64_t>();
      d->class_names = s.at("class_names").get<std::vector<std::string>>();
      d->images = torch::from_blob(map->data() + start + io, shape, keep, torch::kUInt8);
      d->labels = torch::from_blob(map->data() + start + lo, {n}, keep, torch::kInt64);
      remember_fingerprint(*d, s.at("fingerprint").get<std::string>());
    }
    return out;
  } catch (const json::exception& e) {
    throw DataError(file.string() + ": header lacks a field or has a wrong type (" + e.what() +
                    ")");
  }
}

DatasetSplits cached_load(const std::string& key, const fs::path& cache_root,
                          const std::function<DatasetSplits()>& decode) {
  const fs::path folder = data_cache_dir(cache_root);
  const fs::path entry = folder / key;
  const fs::path file = entry / "data.bin";
  std::string problem;
  auto try_read = [&]() -> std::optional<DatasetSplits> {
    std::error_code ec;
    if (!fs::exists(file, ec)) return std::nullopt;
    const auto start = std::chrono::steady_clock::now();
    try {
      DatasetSplits s = read_cache_entry(file);
      s.info.cache_entry = entry;
      s.info.cache_hit = true;
      s.info.seconds = seconds_since(start);
      return s;
    } catch (const DataError& e) {
      problem = e.what();
      return std::nullopt;
    }
  };
  if (auto hit = try_read()) return std::move(*hit);

  std::unique_ptr<FileLock> lock;
  std::string unwritable;
  try {
    fs::create_directories(entry);
    lock = std::make_unique<FileLock>(folder / (key + ".lock"));
  } catch (const std::exception& e) {
    unwritable = e.what();
  }
  // Another process may have built the entry while this one waited for the lock.
  if (lock) {
    if (auto hit = try_read()) return std::move(*hit);
  }
  const auto start = std::chrono::steady_clock::now();
  DatasetSplits s = decode();
  s.info.seconds = seconds_since(start);
  if (!problem.empty()) s.info.notes.push_back("cache entry rebuilt: " + problem);
  // Hashed once here; the entry keeps the fingerprints for every later load.
  remember_fingerprint(s.train);
  remember_fingerprint(s.test);
  if (lock) {
    try {
      write_cache_entry(file, key, s);
      s.info.cache_entry = entry;
    } catch (const Error& e) {
      unwritable = e.what();
    }
  }
  if (!unwritable.empty()) {
    s.info.notes.push_back("not cached (" + unwritable +
                           "); set DATAPROXY_CACHE to a writable folder to decode only once");
  }
  return s;
}

}  // namespace dataproxy::data
