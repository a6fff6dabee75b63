// How a dataset is loaded: the slice, the image size and the decode cache. Torch-free, so that a
// manifest (which records the slice) can be read without LibTorch.
#pragma once

#include <cstdint>
#include <filesystem>

namespace dataproxy {

namespace fs = std::filesystem;

/// Options for load_dataset().
struct LoadOptions {
  int64_t max_train = 0;  ///< keep only the first N training samples; 0 keeps all
  int64_t max_test = 0;   ///< keep only the first N test samples; 0 keeps all
  /// Require the official sample counts (CIFAR: 50000 train / 10000 test, 10000 per batch
  /// file; Fashion-MNIST: 60000 / 10000), so that a file cut at a record boundary is caught.
  /// Turn off for custom-size files in the same formats.
  bool official_sizes = true;
  /// Side of the square images every sample is resized to (bilinear, antialiased), in pixels;
  /// 0 keeps the size (for "folder": the most common size among all images).
  int64_t image_size = 0;
  /// Decoded "folder", "npz" and "idx" data are kept in a memory-mapped cache entry keyed by
  /// the source files (paths, sizes, mtimes) and image_size; false decodes every time.
  bool use_cache = true;
  /// Cache root; the entries go to data_cache_dir(cache_dir)/<key>/ (manifest.h). Empty =
  /// default_cache_dir().
  fs::path cache_dir;
};

}  // namespace dataproxy
