// Local sockets between dataproxy-trial-client and a long-lived `dataproxy-trial --serve
// --listen` server: Linux abstract Unix-domain sockets (no file to go stale when a server dies;
// the kernel frees the name with the process), checked for the same user on accept. No LibTorch
// here: the client links this and starts in milliseconds.
#pragma once

#include <cstdint>
#include <streambuf>
#include <string>

namespace dataproxy::trial {

/// Seconds since this process started, from /proc/self/stat's start time against the boot
/// clock (10 ms resolution); 0 where /proc cannot tell. Call it first thing in main().
double process_age_seconds();

/// Now on the boot clock (CLOCK_BOOTTIME), in seconds: comparable between processes.
double boot_clock_seconds();

/// 64-bit FNV-1a of `text`, as 16 hex digits: a short, stable name for a longer key.
std::string short_hash(const std::string& text);

/// Listens on the abstract socket `name` (no leading NUL); throws RuntimeFailure when the name
/// is taken (another server) or the socket cannot be made.
int listen_local(const std::string& name);

/// Connects to the abstract socket `name`; -1 (errno set) when nobody listens there.
int connect_local(const std::string& name);

/// True when the peer of the connected socket `fd` runs as this process's user.
bool peer_is_same_user(int fd);

/// Sends all of `data` (no SIGPIPE); false when the peer is gone.
bool send_all(int fd, const std::string& data);

/// Reads newline-terminated lines from a socket or pipe.
class LineReader {
 public:
  enum class Result { kLine, kTimeout, kEnd };
  explicit LineReader(int fd) : fd_(fd) {}
  /// The next line (without its newline), waiting at most `timeout_ms` (-1: no limit). kEnd at
  /// end of stream or on an error; a last line without a newline is dropped.
  Result read(std::string& line, int timeout_ms);

 private:
  int fd_;
  std::string buffer_;
};

/// An output stream buffer over a socket: what the trial writes goes to the client. Once the
/// peer is gone, writes are dropped (the server goes on; the watcher stops the candidate).
class SocketStreambuf : public std::streambuf {
 public:
  explicit SocketStreambuf(int fd) : fd_(fd) {}
  bool failed() const { return failed_; }

 protected:
  int_type overflow(int_type ch) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override;

 private:
  int fd_;
  bool failed_ = false;
  std::string pending_;
};

}  // namespace dataproxy::trial
