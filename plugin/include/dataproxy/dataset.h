// Datasets: in-memory image classification data, the readers for the formats we support,
// and the fingerprint that identifies a dataset in proxy manifests.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dataproxy/load_options.h"

namespace dataproxy {

namespace fs = std::filesystem;

/// A fingerprint() already known (from the decode cache), with the tensors it was computed
/// for: fingerprint() trusts it only while images, labels and num_classes are still those
/// (same storage, shape and class count), so a Dataset whose tensors were replaced never
/// reports a stale value. Changing pixels in place is not detected: clear() it first.
struct KnownFingerprint {
  std::string sha256;  ///< empty = unknown (fingerprint() hashes the data)
  fs::path memo;       ///< file where load_dataset() keeps this data's fingerprints; empty = none
  std::string slot;    ///< the entry for these tensors in `memo`, e.g. "train/4000"
  const void* images = nullptr;       ///< images.data_ptr() it was computed for
  const void* labels = nullptr;       ///< labels.data_ptr() it was computed for
  std::vector<int64_t> images_shape;  ///< images.sizes()
  int64_t labels_size = -1;           ///< labels.numel()
  int64_t num_classes = -1;           ///< num_classes

  void clear() { *this = KnownFingerprint{}; }
};

/// One split of an image classification dataset, held in memory.
struct Dataset {
  std::string name;                      ///< e.g. "cifar10/train"
  torch::Tensor images;                  ///< uint8 [N, C, H, W], contiguous, CPU
  torch::Tensor labels;                  ///< int64 [N], values in [0, num_classes)
  int64_t num_classes = 0;               ///< number of label values the format allows
  std::vector<std::string> class_names;  ///< empty or num_classes entries
  /// Set by load_dataset() from its cache; fingerprint() fills it in (hence mutable).
  mutable KnownFingerprint known_fingerprint;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  int64_t channels() const { return images.size(1); }
  int64_t height() const { return images.size(2); }
  int64_t width() const { return images.size(3); }
  /// Samples per class, int64 [num_classes].
  torch::Tensor class_counts() const;
};

/// How load_dataset() got the data: the format, the image size, the decode cache.
struct LoadInfo {
  std::string format;              ///< "cifar10", "fashion-mnist", "folder", "npz", "idx", ...
  fs::path source;                 ///< the folder or file the data came from
  std::string image_size_rule;     ///< how the image size was chosen (folder, --image-size)
  int64_t resized = 0;             ///< images resized to the common size (0 = none)
  int64_t converted_to_rgb = 0;    ///< grayscale images converted to RGB (0 = none)
  std::vector<std::string> notes;  ///< further facts for the user (how num_classes was found)
  fs::path cache_entry;            ///< the decode cache entry's folder; empty when not cached
  bool cache_hit = false;          ///< read from the cache entry without decoding
  double seconds = 0;              ///< time to decode, or to read the cache entry
};

/// A train and a test split of one dataset.
struct DatasetSplits {
  Dataset train;
  Dataset test;
  LoadInfo info;  ///< how they were loaded
};

/// Which CIFAR-100 label to use.
enum class Cifar100Label { fine, coarse };

/// Readers. Each validates sizes, magic numbers and label ranges, and throws DataError naming
/// the file and what is wrong; a dataset is never silently short.
Dataset read_cifar10_batches(const std::vector<fs::path>& files, const std::string& name);
Dataset read_cifar100_file(const fs::path& file, Cifar100Label label, const std::string& name);
/// IDX images (magic 0x803) and labels (0x801), raw or gzip-compressed (detected by content).
/// Labels must lie in [0, num_classes).
Dataset read_idx(const fs::path& images, const fs::path& labels, const std::string& name,
                 int64_t num_classes = 10);

/// Class names of a named dataset ("cifar10", "fashion-mnist"); empty when not built in.
std::vector<std::string> builtin_class_names(const std::string& name);

/// Loads a named dataset from `root`:
///  - "cifar10": root/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin (or root itself)
///  - "cifar100", "cifar100-coarse": root/cifar-100-binary/{train,test}.bin (or root itself);
///    class names from {fine,coarse}_label_names.txt next to them when present
///  - "fashion-mnist": root/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
///    (or root itself)
/// and data a user already has (decoded once, then read from the cache, see LoadOptions):
///  - "folder": torchvision's ImageFolder layout, root/{train,test}/<class>/*.{png,jpg,jpeg};
///    classes are train's folder names in sorted order, test must have the same folders
///  - "npz": root is a NumPy .npz file (np.savez or np.savez_compressed) with Keras's arrays
///    x_train, y_train, x_test, y_test: uint8 images N x H x W [x C], integer labels
///  - "idx": root holds MNIST-layout files (MNIST, EMNIST, KMNIST):
///    {train,t10k|test}-{images-idx3,labels-idx1}-ubyte[.gz], any sample counts
/// For the last three, num_classes is the largest label + 1 (folder: the number of folders).
DatasetSplits load_dataset(const std::string& name, const fs::path& root,
                           const LoadOptions& options = {});

/// Names load_dataset() accepts.
std::vector<std::string> dataset_names();

/// SHA-256 over shape, class count, images and labels (not the name): identifies the exact
/// data a proxy was built from. Returns dataset.known_fingerprint when it still applies; when
/// load_dataset() attached a memo to it, a computed fingerprint is kept there for later loads.
std::string fingerprint(const Dataset& dataset);

/// Records fingerprint(dataset) as known for its current tensors (computing it when `sha256`
/// is empty), so later calls return it without hashing.
void remember_fingerprint(Dataset& dataset, const std::string& sha256 = {});

/// The samples at `indices` (int64 [K]), in that order; throws InvalidInput when an index is
/// out of range. The result has no known fingerprint.
Dataset subset(const Dataset& dataset, const torch::Tensor& indices);

// Views of a dataset through a proxy manifest (manifest.h). They live with the data, not in the
// torch-free manifest library.
struct Manifest;

/// Checks that `train` (the full train split) is the data the manifest was built from; throws
/// InvalidInput saying which fingerprint differs and what to do.
void check_dataset(const Manifest& manifest, const Dataset& train);

/// The proxy training set: the selected samples with labels remapped to [0, proxy classes).
Dataset proxy_train_set(const Manifest& manifest, const Dataset& full_train);
/// The samples candidates are ranked on: the evaluation split of `full_test`, restricted to the
/// kept classes, labels remapped the same way.
Dataset proxy_test_set(const Manifest& manifest, const Dataset& full_test);
/// The evaluation split of `full_test` with its original labels (full-data spot checks).
Dataset ranking_test_set(const Manifest& manifest, const Dataset& full_test);

}  // namespace dataproxy
