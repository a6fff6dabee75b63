// Datasets: in-memory image classification data, the readers for the formats we support,
// and the fingerprint that identifies a dataset in proxy manifests.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace dataproxy {

namespace fs = std::filesystem;

/// One split of an image classification dataset, held in memory.
struct Dataset {
  std::string name;                      ///< e.g. "cifar10/train"
  torch::Tensor images;                  ///< uint8 [N, C, H, W], contiguous, CPU
  torch::Tensor labels;                  ///< int64 [N], values in [0, num_classes)
  int64_t num_classes = 0;               ///< number of label values the format allows
  std::vector<std::string> class_names;  ///< empty or num_classes entries

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  int64_t channels() const { return images.size(1); }
  int64_t height() const { return images.size(2); }
  int64_t width() const { return images.size(3); }
  /// Samples per class, int64 [num_classes].
  torch::Tensor class_counts() const;
};

/// A train and a test split of one dataset.
struct DatasetSplits {
  Dataset train;
  Dataset test;
};

/// Which CIFAR-100 label to use.
enum class Cifar100Label { fine, coarse };

/// Options for load_dataset().
struct LoadOptions {
  int64_t max_train = 0;  ///< keep only the first N training samples; 0 keeps all
  int64_t max_test = 0;   ///< keep only the first N test samples; 0 keeps all
  /// Require the official sample counts (CIFAR: 50000 train / 10000 test, 10000 per batch
  /// file; Fashion-MNIST: 60000 / 10000), so that a file cut at a record boundary is caught.
  /// Turn off for custom-size files in the same formats.
  bool official_sizes = true;
};

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
DatasetSplits load_dataset(const std::string& name, const fs::path& root,
                           const LoadOptions& options = {});

/// Names load_dataset() accepts.
std::vector<std::string> dataset_names();

/// SHA-256 over shape, class count, images and labels (not the name): identifies the exact
/// data a proxy was built from.
std::string fingerprint(const Dataset& dataset);

/// The samples at `indices` (int64 [K]), in that order; throws InvalidInput when an index is
/// out of range.
Dataset subset(const Dataset& dataset, const torch::Tensor& indices);

}  // namespace dataproxy
