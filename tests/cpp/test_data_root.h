// Where the C++ tests find real data: one variable, $DATAPROXY_DATA_ROOT (the data root that
// scripts/setup.sh filled), default <repo>/data. No other path is searched.
#pragma once

#include <cstdlib>
#include <filesystem>

namespace dataproxy::test {

/// $DATAPROXY_DATA_ROOT, else $DATAPROXY_SOURCE_DIR/data (CTest sets it), else "data".
inline std::filesystem::path data_root() {
  if (const char* root = std::getenv("DATAPROXY_DATA_ROOT"); root != nullptr && *root != '\0') {
    return root;
  }
  if (const char* src = std::getenv("DATAPROXY_SOURCE_DIR"); src != nullptr && *src != '\0') {
    return std::filesystem::path(src) / "data";
  }
  return "data";
}

/// True when Fashion-MNIST's training images (raw or gzip) lie in data_root()/fashion-mnist.
inline bool has_fashion_mnist() {
  const auto dir = data_root() / "fashion-mnist";
  return std::filesystem::exists(dir / "train-images-idx3-ubyte") ||
         std::filesystem::exists(dir / "train-images-idx3-ubyte.gz");
}

}  // namespace dataproxy::test
