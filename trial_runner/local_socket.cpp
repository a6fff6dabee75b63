#include "local_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "dataproxy/error.h"

namespace dataproxy::trial {

double process_age_seconds() {
  std::ifstream in("/proc/self/stat");
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  // Field 2 (the command name) may hold spaces and parentheses: fields resume after the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 1));
  std::string value;
  for (int field = 3; field <= 22 && (fields >> value); ++field) {
  }
  if (!fields) return 0;
  const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  timespec now{};
  if (ticks_per_second <= 0 || ::clock_gettime(CLOCK_BOOTTIME, &now) != 0) return 0;
  const double started = std::stod(value) / static_cast<double>(ticks_per_second);
  const double age =
      static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec) - started;
  // A container's own clock namespace could put the boot clock elsewhere: trust sane values only.
  return age >= 0 && age < 3600 ? age : 0;
}

double boot_clock_seconds() {
  timespec now{};
  if (::clock_gettime(CLOCK_BOOTTIME, &now) != 0) return 0;
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

std::string short_hash(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

namespace {

socklen_t abstract_address(const std::string& name, sockaddr_un& addr) {
  DATAPROXY_CHECK(!name.empty() && name.size() < sizeof(addr.sun_path) - 1, InvalidInput,
                  "a local socket name must have 1 to " << sizeof(addr.sun_path) - 2
                                                        << " characters, got '" << name << "'");
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
}

}  // namespace

int listen_local(const std::string& name) {
  sockaddr_un addr;
  const socklen_t len = abstract_address(name, addr);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  DATAPROXY_CHECK(fd >= 0, RuntimeFailure, "cannot make a socket: " << std::strerror(errno));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 8) != 0) {
    const int e = errno;
    ::close(fd);
    throw RuntimeFailure("cannot listen on local socket '@" + name + "': " + std::strerror(e) +
                         (e == EADDRINUSE ? " (another trial server holds it)" : ""));
  }
  return fd;
}

int connect_local(const std::string& name) {
  sockaddr_un addr;
  const socklen_t len = abstract_address(name, addr);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

bool peer_is_same_user(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  return cred.uid == ::geteuid();
}

bool send_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

LineReader::Result LineReader::read(std::string& line, int timeout_ms) {
  timespec start{};
  ::clock_gettime(CLOCK_MONOTONIC, &start);
  while (true) {
    const auto newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return Result::kLine;
    }
    int wait = timeout_ms;
    if (timeout_ms >= 0) {
      timespec now{};
      ::clock_gettime(CLOCK_MONOTONIC, &now);
      const long spent =
          (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
      if (spent >= timeout_ms) return Result::kTimeout;
      wait = static_cast<int>(timeout_ms - spent);
    }
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, wait);
    if (ready < 0 && errno == EINTR) {
      if (timeout_ms >= 0) return Result::kTimeout;  // a signal: let the caller look at it
      continue;
    }
    if (ready < 0) return Result::kEnd;
    if (ready == 0) return Result::kTimeout;
    char chunk[65536];
    const ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Result::kEnd;
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

SocketStreambuf::int_type SocketStreambuf::overflow(int_type ch) {
  if (ch != traits_type::eof()) pending_.push_back(static_cast<char>(ch));
  return traits_type::not_eof(ch);
}

std::streamsize SocketStreambuf::xsputn(const char* s, std::streamsize n) {
  pending_.append(s, static_cast<size_t>(n));
  return n;
}

int SocketStreambuf::sync() {
  if (!failed_ && !pending_.empty() && !send_all(fd_, pending_)) failed_ = true;
  pending_.clear();
  return 0;
}

}  // namespace dataproxy::trial
