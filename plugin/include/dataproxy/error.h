// Errors thrown by dataproxy. Every message says what was wrong, where, and what to do.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace dataproxy {

/// Base of every error dataproxy throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// Process exit code a command should use for this error.
  virtual int exit_code() const noexcept { return 1; }
};

/// Bad input from the user: a file, a YAML key, a parameter, a flag. Exit code 2.
class InvalidInput : public Error {
 public:
  using Error::Error;
  int exit_code() const noexcept override { return 2; }
};

/// Data on disk that fails its checks (size, magic, checksum, schema). Exit code 3.
class DataError : public InvalidInput {
 public:
  using InvalidInput::InvalidInput;
  int exit_code() const noexcept override { return 3; }
};

/// Something that failed while running (a download, a child process, the device). Exit code 1.
class RuntimeFailure : public Error {
 public:
  using Error::Error;
};

/// Stopped on request (SIGINT/SIGTERM, or a pruner). Exit code 130.
class Interrupted : public Error {
 public:
  using Error::Error;
  int exit_code() const noexcept override { return 130; }
};

}  // namespace dataproxy

/// Throws `type` with the streamed message when `cond` is false.
#define DATAPROXY_CHECK(cond, type, msg) \
  do {                                   \
    if (!(cond)) {                       \
      std::ostringstream dataproxy_os_;  \
      dataproxy_os_ << msg;              \
      throw type(dataproxy_os_.str());   \
    }                                    \
  } while (0)
