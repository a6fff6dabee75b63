// Shared by the libFuzzer harnesses: the input as a file (the readers take paths), and the rule
// every harness checks: bad input ends in a dataproxy::Error (a message for the user), never in
// a crash, a sanitizer report, or another exception (libFuzzer reports those as crashes).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace dataproxy::fuzz {

/// A file under the temporary folder, private to this process, rewritten for each input.
inline std::filesystem::path input_file(const std::string& name, const uint8_t* data,
                                        std::size_t size) {
  static const std::filesystem::path dir = [] {
    const char* shm = "/dev/shm";
    std::filesystem::path base = std::filesystem::is_directory(shm)
                                     ? std::filesystem::path(shm)
                                     : std::filesystem::temp_directory_path();
    auto d = base / ("dataproxy-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  const auto path = dir / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace dataproxy::fuzz
