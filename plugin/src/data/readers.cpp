#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "data/cache.h"
#include "data/raw_tensor.h"
#include "data/user_formats.h"
#include "dataproxy/dataset.h"
#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/manifest.h"

namespace dataproxy {
namespace {

/// Labels, uint8 as the formats store them, as the int64 tensor a Dataset holds.
torch::Tensor label_tensor(data::Bytes&& labels) {
  const auto n = static_cast<int64_t>(labels.size());
  return data::to_tensor(std::move(labels), {n}).to(torch::kInt64);
}

void attach_memos(DatasetSplits& s, const fs::path& entry, const LoadOptions& options);

/// The tensors `d` holds now, as KnownFingerprint records them (no fingerprint yet).
KnownFingerprint identity_of(const Dataset& d) {
  KnownFingerprint k;
  k.images = d.images.data_ptr();
  k.labels = d.labels.data_ptr();
  k.images_shape = d.images.sizes().vec();
  k.labels_size = d.labels.numel();
  k.num_classes = d.num_classes;
  return k;
}

Dataset keep_first(Dataset d, int64_t n) {
  if (n > 0 && n < d.size()) {
    d.images = d.images.narrow(0, 0, n).clone();
    d.labels = d.labels.narrow(0, 0, n).clone();
    d.known_fingerprint.clear();
  }
  return d;
}

/// root/sub when it exists, else root itself.
fs::path data_dir(const fs::path& root, const std::string& sub, const std::string& probe) {
  std::error_code ec;
  if (fs::is_directory(root / sub, ec)) return root / sub;
  if (fs::exists(root / probe, ec) || fs::exists(root / (probe + ".gz"), ec)) return root;
  return root / sub;
}

std::vector<std::string> read_names_file(const fs::path& file, std::size_t expected) {
  std::vector<std::string> names;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (!in.eof() || names.size() != expected) return {};
  return names;
}

/// Names the first missing file with what to do about it, before any reading starts.
void require_files(const std::string& name, const fs::path& root,
                   const std::vector<fs::path>& files) {
  for (const auto& f : files) {
    std::error_code ec;
    if (fs::is_regular_file(f, ec)) continue;
    const bool fetchable = name == "cifar10" || name == "fashion-mnist";
    std::ostringstream hint;
    if (fetchable) {
      hint << "fetch it with `dataproxy fetch-data " << name << " --data-root " << root.string()
           << "`";
    } else {
      hint << "CIFAR-100 cannot be fetched by dataproxy: place the official binary version "
              "(cifar-100-binary/ with train.bin and test.bin) under "
           << root.string();
    }
    throw DataError(f.string() + ": no such file; " + hint.str());
  }
}

void check_count(const Dataset& d, int64_t expected, const fs::path& where,
                 const LoadOptions& options) {
  DATAPROXY_CHECK(!options.official_sizes || d.size() == expected, DataError,
                  where.string() << ": " << d.size() << " samples in " << d.name
                                 << ", expected the official " << expected
                                 << " (a file was cut short or replaced: run `dataproxy "
                                    "fetch-data` with --force)");
}

Dataset read_cifar10(const std::vector<fs::path>& files, const std::string& name,
                     std::vector<int64_t>* counts) {
  DATAPROXY_CHECK(!files.empty(), InvalidInput,
                  "read_cifar10_batches: no files given for " << name);
  auto raw = data::raw::read_cifar10(files, counts);
  Dataset d;
  d.name = name;
  d.images = data::to_tensor(std::move(raw.images));
  d.labels = label_tensor(std::move(raw.labels));
  d.num_classes = 10;
  d.class_names = builtin_class_names("cifar10");
  return d;
}

}  // namespace

torch::Tensor Dataset::class_counts() const {
  if (!labels.defined() || labels.numel() == 0) return torch::zeros({num_classes}, torch::kInt64);
  return torch::bincount(labels, {}, num_classes).to(torch::kInt64);
}

std::vector<std::string> builtin_class_names(const std::string& name) {
  if (name == "cifar10") {
    return {"airplane", "automobile", "bird",  "cat",  "deer",
            "dog",      "frog",       "horse", "ship", "truck"};
  }
  if (name == "fashion-mnist") {
    return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  }
  return {};
}

Dataset read_cifar10_batches(const std::vector<fs::path>& files, const std::string& name) {
  return read_cifar10(files, name, nullptr);
}

Dataset read_cifar100_file(const fs::path& file, Cifar100Label label, const std::string& name) {
  auto raw = data::raw::read_cifar100(file, label == Cifar100Label::fine);
  Dataset d;
  d.name = name;
  d.images = data::to_tensor(std::move(raw.images));
  d.labels = label_tensor(std::move(raw.labels));
  d.num_classes = label == Cifar100Label::fine ? 100 : 20;
  return d;
}

Dataset read_idx(const fs::path& images, const fs::path& labels, const std::string& name,
                 int64_t num_classes) {
  auto raw = data::raw::read_idx(images, labels, num_classes);
  Dataset d;
  d.name = name;
  d.labels = label_tensor(std::move(raw.labels));
  d.images = data::to_tensor(std::move(raw.images));
  d.num_classes = num_classes;
  return d;
}

std::vector<std::string> dataset_names() {
  return {"cifar10", "cifar100", "cifar100-coarse", "fashion-mnist", "folder", "npz", "idx"};
}

DatasetSplits load_dataset(const std::string& name, const fs::path& root,
                           const LoadOptions& options) {
  DATAPROXY_CHECK(options.max_train >= 0 && options.max_test >= 0, InvalidInput,
                  "max_train and max_test must be >= 0 (0 keeps all), got "
                      << options.max_train << " and " << options.max_test);
  DATAPROXY_CHECK(options.image_size >= 0 && options.image_size <= 4096, InvalidInput,
                  "image size " << options.image_size
                                << " is outside 0..4096 pixels (0 keeps the data's size)");
  DatasetSplits s;
  const auto start = std::chrono::steady_clock::now();
  std::vector<fs::path> sources;  // the files read, for the fingerprint memo's key
  if (name == "folder" || name == "npz" || name == "idx") {
    s = name == "folder" ? data::load_image_folder(root, options)
        : name == "npz"  ? data::load_npz(root, options)
                         : data::load_idx_folder(root, options);
    s.train = keep_first(std::move(s.train), options.max_train);
    s.test = keep_first(std::move(s.test), options.max_test);
    if (!s.info.cache_entry.empty()) attach_memos(s, s.info.cache_entry, options);
    return s;
  }
  if (name == "cifar10") {
    const auto dir = data_dir(root, "cifar-10-batches-bin", "data_batch_1.bin");
    std::vector<fs::path> train_files;
    for (int i = 1; i <= 5; ++i)
      train_files.push_back(dir / ("data_batch_" + std::to_string(i) + ".bin"));
    require_files(name, root, train_files);
    require_files(name, root, {dir / "test_batch.bin"});
    std::vector<int64_t> counts;
    s.train = read_cifar10(train_files, "cifar10/train", &counts);
    for (std::size_t i = 0; i < counts.size() && options.official_sizes; ++i) {
      DATAPROXY_CHECK(counts[i] == 10000, DataError,
                      train_files[i].string()
                          << ": " << counts[i]
                          << " records, expected the official 10000 (cut short or replaced: run "
                             "`dataproxy fetch-data cifar10 --force`)");
    }
    s.test = read_cifar10_batches({dir / "test_batch.bin"}, "cifar10/test");
    sources = train_files;
    sources.push_back(dir / "test_batch.bin");
    check_count(s.train, 50000, dir, options);
    check_count(s.test, 10000, dir / "test_batch.bin", options);
  } else if (name == "cifar100" || name == "cifar100-coarse") {
    const auto dir = data_dir(root, "cifar-100-binary", "train.bin");
    const auto kind = name == "cifar100" ? Cifar100Label::fine : Cifar100Label::coarse;
    require_files(name, root, {dir / "train.bin", dir / "test.bin"});
    s.train = read_cifar100_file(dir / "train.bin", kind, name + "/train");
    s.test = read_cifar100_file(dir / "test.bin", kind, name + "/test");
    sources = {dir / "train.bin", dir / "test.bin"};
    check_count(s.train, 50000, dir / "train.bin", options);
    check_count(s.test, 10000, dir / "test.bin", options);
    const auto names = read_names_file(
        dir / (kind == Cifar100Label::fine ? "fine_label_names.txt" : "coarse_label_names.txt"),
        static_cast<std::size_t>(s.train.num_classes));
    s.train.class_names = s.test.class_names = names;
  } else if (name == "fashion-mnist") {
    const auto dir = data_dir(root, "fashion-mnist", "train-images-idx3-ubyte");
    auto file = [&](const std::string& base) {
      std::error_code ec;
      return fs::exists(dir / base, ec) ? dir / base : dir / (base + ".gz");
    };
    require_files(name, root,
                  {file("train-images-idx3-ubyte"), file("train-labels-idx1-ubyte"),
                   file("t10k-images-idx3-ubyte"), file("t10k-labels-idx1-ubyte")});
    s.train = read_idx(file("train-images-idx3-ubyte"), file("train-labels-idx1-ubyte"),
                       "fashion-mnist/train");
    s.test = read_idx(file("t10k-images-idx3-ubyte"), file("t10k-labels-idx1-ubyte"),
                      "fashion-mnist/test");
    check_count(s.train, 60000, file("train-images-idx3-ubyte"), options);
    check_count(s.test, 10000, file("t10k-images-idx3-ubyte"), options);
    s.train.class_names = s.test.class_names = builtin_class_names(name);
    sources = {file("train-images-idx3-ubyte"), file("train-labels-idx1-ubyte"),
               file("t10k-images-idx3-ubyte"), file("t10k-labels-idx1-ubyte")};
  } else {
    std::ostringstream known;
    for (const auto& n : dataset_names()) known << " " << n;
    throw InvalidInput("unknown dataset '" + name + "'; known:" + known.str());
  }
  s.info.format = name;
  s.info.source = root;
  s.info.image_size_rule =
      "every image is " + std::to_string(s.train.height()) + "x" + std::to_string(s.train.width());
  if (options.image_size > 0) {
    s.info.image_size_rule = "--image-size " + std::to_string(options.image_size);
    if (s.train.height() != options.image_size || s.train.width() != options.image_size) {
      s.train.images = data::resize_all(s.train.images, options.image_size, options.image_size);
      s.test.images = data::resize_all(s.test.images, options.image_size, options.image_size);
      s.info.resized = s.train.size() + s.test.size();
    }
  }
  s.train = keep_first(std::move(s.train), options.max_train);
  s.test = keep_first(std::move(s.test), options.max_test);
  if (options.use_cache) {
    const fs::path cache = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
    attach_memos(s, data_cache_dir(cache) / data::data_cache_key(name, sources, options.image_size),
                 options);
  }
  s.info.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

namespace {

bool same_tensors(const KnownFingerprint& k, const Dataset& d) {
  return d.images.defined() && d.labels.defined() && k.images == d.images.data_ptr() &&
         k.labels == d.labels.data_ptr() && k.images_shape == d.images.sizes().vec() &&
         k.labels_size == d.labels.numel() && k.num_classes == d.num_classes &&
         d.images.scalar_type() == torch::kUInt8 && d.labels.scalar_type() == torch::kInt64 &&
         d.images.is_contiguous() && d.labels.is_contiguous();
}

/// Keeps `sha256` in the memo file; a memo that cannot be written only costs a later hash.
void write_memo(const fs::path& memo, const std::string& slot, const std::string& sha256) {
  try {
    FileLock lock(memo.string() + ".lock");
    nlohmann::json j = nlohmann::json::object();
    std::error_code ec;
    if (fs::exists(memo, ec)) {
      j = nlohmann::json::parse(read_file(memo), nullptr, false);
      if (!j.is_object()) j = nlohmann::json::object();
    }
    j[slot] = sha256;
    atomic_write(memo, j.dump(1));
  } catch (const std::exception&) {
  }
}

/// Fingerprints of these splits (whole, or the first max_train / max_test samples) computed by
/// an earlier load of the same source files are kept in entry/fingerprints.json; found ones are
/// known at once, missing ones are written there by fingerprint() when first computed.
void attach_memos(DatasetSplits& s, const fs::path& entry, const LoadOptions& options) {
  const fs::path memo = entry / "fingerprints.json";
  nlohmann::json known = nlohmann::json::object();
  std::error_code ec;
  if (fs::exists(memo, ec)) {
    try {
      known = nlohmann::json::parse(read_file(memo), nullptr, false);
    } catch (const std::exception&) {
    }
  }
  for (auto [split, d, max] : {std::tuple{"train", &s.train, options.max_train},
                               std::tuple{"test", &s.test, options.max_test}}) {
    // The slot names the slice; a maximum at or above the size is the whole split.
    const std::string slot =
        std::string(split) + (max > 0 && max <= d->size() ? "/" + std::to_string(max) : "");
    std::string sha = d->known_fingerprint.sha256;
    if (sha.empty() && known.is_object() && known.contains(slot) && known[slot].is_string()) {
      sha = known[slot].get<std::string>();
    }
    d->known_fingerprint = identity_of(*d);
    d->known_fingerprint.sha256 = sha;
    d->known_fingerprint.memo = memo;
    d->known_fingerprint.slot = slot;
  }
}

bool still_applies(const KnownFingerprint& k, const Dataset& d) {
  return !k.sha256.empty() && same_tensors(k, d);
}

}  // namespace

void remember_fingerprint(Dataset& dataset, const std::string& sha256) {
  dataset.known_fingerprint.clear();
  const std::string value = sha256.empty() ? fingerprint(dataset) : sha256;
  dataset.known_fingerprint = identity_of(dataset);
  dataset.known_fingerprint.sha256 = value;
}

std::string fingerprint(const Dataset& dataset) {
  DATAPROXY_CHECK(dataset.images.defined() && dataset.labels.defined(), InvalidInput,
                  "fingerprint: dataset '" << dataset.name << "' has no images or labels");
  if (still_applies(dataset.known_fingerprint, dataset)) return dataset.known_fingerprint.sha256;
  const bool memo =
      !dataset.known_fingerprint.memo.empty() && same_tensors(dataset.known_fingerprint, dataset);
  const auto images = dataset.images.to(torch::kCPU, torch::kUInt8).contiguous();
  const auto labels = dataset.labels.to(torch::kCPU, torch::kInt64).contiguous();
  std::ostringstream head;
  head << "dataproxy-dataset-v1 images";
  for (auto s : images.sizes()) head << ' ' << s;
  head << " labels " << labels.numel() << " classes " << dataset.num_classes << '\n';
  Sha256 h;
  h.update(head.str());
  h.update(images.data_ptr<uint8_t>(), static_cast<std::size_t>(images.numel()));
  // Labels as little-endian int64 whatever the host order, so fingerprints are portable.
  const auto* l = labels.data_ptr<int64_t>();
  std::vector<uint8_t> le(static_cast<std::size_t>(labels.numel()) * 8);
  for (int64_t i = 0; i < labels.numel(); ++i) {
    const auto v = static_cast<uint64_t>(l[i]);
    for (int b = 0; b < 8; ++b) le[static_cast<std::size_t>(i) * 8 + b] = uint8_t(v >> (8 * b));
  }
  h.update(le.data(), le.size());
  const std::string out = h.hex();
  if (memo) {
    dataset.known_fingerprint.sha256 = out;
    write_memo(dataset.known_fingerprint.memo, dataset.known_fingerprint.slot, out);
  }
  return out;
}

Dataset subset(const Dataset& dataset, const torch::Tensor& indices) {
  DATAPROXY_CHECK(indices.dim() == 1, InvalidInput,
                  "subset: indices must be 1-D, got " << indices.dim() << " dimensions");
  auto idx = indices.to(torch::kInt64).to(dataset.labels.device());
  if (idx.numel() > 0) {
    const auto lo = idx.min().item<int64_t>();
    const auto hi = idx.max().item<int64_t>();
    DATAPROXY_CHECK(lo >= 0 && hi < dataset.size(), InvalidInput,
                    "subset: index out of range 0.." << dataset.size() - 1 << " of " << dataset.name
                                                     << " (got " << lo << ".." << hi << ")");
  }
  Dataset d = dataset;
  d.images = dataset.images.index_select(0, idx.to(dataset.images.device()));
  d.labels = dataset.labels.index_select(0, idx);
  d.known_fingerprint.clear();
  return d;
}

}  // namespace dataproxy
