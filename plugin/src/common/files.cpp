#include "dataproxy/files.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "dataproxy/error.h"

namespace dataproxy {
namespace {

std::string errno_text() { return std::strerror(errno); }

// What to do when writing `target` failed with errno `err`.
std::string write_advice(const fs::path& target, int err) {
  const std::string folder = target.parent_path().empty() ? "." : target.parent_path().string();
  if (err == ENOSPC || err == EDQUOT) {
    return "the disk holding " + folder +
           " is full: free space there, or point the command at "
           "a folder on another disk; the file was left as it was";
  }
  if (err == EROFS || err == EACCES || err == EPERM) {
    return "the folder " + folder +
           " is not writable: fix its permissions, or point the "
           "command at a writable folder; the file was left as it was";
  }
  return "check free disk space and permissions in " + folder + "; the file was left as it was";
}

// Writes all of `data` to `fd`, the temporary file of `target` (named in errors: it is what the
// user knows).
void write_all(int fd, const char* data, std::size_t size, const fs::path& target) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw RuntimeFailure("cannot write " + target.string() + ": " + std::strerror(err) + " (" +
                           write_advice(target, err) + ")");
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

std::string to_hex(const unsigned char* digest, unsigned int len) {
  static const char* hex = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (unsigned int i = 0; i < len; ++i) {
    out[2 * i] = hex[digest[i] >> 4];
    out[2 * i + 1] = hex[digest[i] & 15];
  }
  return out;
}

std::string digest_file(const fs::path& path, const EVP_MD* md) {
  std::ifstream in(path, std::ios::binary);
  DATAPROXY_CHECK(in, InvalidInput, "cannot open " << path.string() << " for reading");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, md, nullptr);
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, out, &len);
  EVP_MD_CTX_free(ctx);
  return to_hex(out, len);
}

std::string digest(std::string_view data, const EVP_MD* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return to_hex(out, len);
}

}  // namespace

void atomic_write(const fs::path& path, std::string_view data) {
  fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::random_device rd;
  fs::path tmp = dir / ("." + path.filename().string() + ".tmp" + std::to_string(::getpid()) + "." +
                        std::to_string(rd()));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    throw RuntimeFailure("cannot write " + path.string() + ": " + std::strerror(err) + " (" +
                         write_advice(path, err) + ")");
  }
  try {
    write_all(fd, data.data(), data.size(), path);
    if (::fsync(fd) != 0) {
      const int err = errno;
      throw RuntimeFailure("cannot write " + path.string() + ": " + std::strerror(err) + " (" +
                           write_advice(path, err) + ")");
    }
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = errno_text();
    ::unlink(tmp.c_str());
    throw RuntimeFailure("cannot move " + tmp.string() + " to " + path.string() + ": " + why);
  }
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  DATAPROXY_CHECK(in, InvalidInput,
                  "cannot open " << path.string() << ": " << errno_text() << " (check the path)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

FileLock::FileLock(const fs::path& path) {
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  DATAPROXY_CHECK(fd_ >= 0, RuntimeFailure,
                  "cannot open lock file " << path.string() << ": " << errno_text());
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    std::string why = errno_text();
    ::close(fd_);
    throw RuntimeFailure("cannot lock " + path.string() + ": " + why);
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
}

std::string md5_hex(std::string_view data) { return digest(data, EVP_md5()); }
std::string md5_file(const fs::path& path) { return digest_file(path, EVP_md5()); }
std::string sha1_file(const fs::path& path) { return digest_file(path, EVP_sha1()); }
std::string sha256_hex(std::string_view data) { return digest(data, EVP_sha256()); }
std::string sha256_file(const fs::path& path) { return digest_file(path, EVP_sha256()); }

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
Sha256& Sha256::update(const void* data, std::size_t size) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, size);
  return *this;
}
std::string Sha256::hex() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out, &len);
  return to_hex(out, len);
}

fs::path default_cache_dir() {
  if (const char* c = std::getenv("DATAPROXY_CACHE"); c && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "dataproxy";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "dataproxy";
  return fs::temp_directory_path() / "dataproxy-cache";
}

}  // namespace dataproxy
