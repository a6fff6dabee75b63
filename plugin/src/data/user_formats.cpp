#include "data/user_formats.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "data/cache.h"
#include "data/images.h"
#include "data/npz.h"
#include "dataproxy/error.h"
#include "dataproxy/files.h"

namespace dataproxy::data {
namespace {

bool hidden(const fs::path& p) { return !p.filename().empty() && p.filename().string()[0] == '.'; }

std::string join(const std::vector<std::string>& v, std::size_t max = 12) {
  std::ostringstream os;
  for (std::size_t i = 0; i < v.size() && i < max; ++i) os << (i ? ", " : "") << v[i];
  if (v.size() > max) os << ", ... (" << v.size() << " in all)";
  return os.str();
}

fs::path cache_root(const LoadOptions& o) {
  return o.cache_dir.empty() ? default_cache_dir() : o.cache_dir;
}

/// Decodes through the cache when the options allow it.
DatasetSplits through_cache(const std::string& format, const std::vector<fs::path>& sources,
                            const LoadOptions& o, const std::function<DatasetSplits()>& decode) {
  if (!o.use_cache) {
    const auto start = std::chrono::steady_clock::now();
    DatasetSplits s = decode();
    s.info.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return s;
  }
  return cached_load(data_cache_key(format, sources, o.image_size), cache_root(o), decode);
}

/// The class folders of `split_dir`, sorted, without hidden ones.
std::vector<std::string> class_folders(const fs::path& split_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(split_dir, ec)) {
    if (e.is_directory(ec) && !hidden(e.path())) out.push_back(e.path().filename().string());
  }
  DATAPROXY_CHECK(!ec, DataError, split_dir.string() << ": cannot list: " << ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

/// The image files under `dir` (recursively, symlinks followed), sorted; counts the others.
std::vector<fs::path> image_files(const fs::path& dir, int64_t* ignored, fs::path* example) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (hidden(it->path())) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    if (is_image_file(it->path())) {
      out.push_back(it->path());
    } else {
      if (*ignored == 0) *example = it->path();
      ++*ignored;
    }
  }
  DATAPROXY_CHECK(!ec, DataError, dir.string() << ": cannot list: " << ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

struct FolderSplit {
  std::vector<fs::path> files;
  std::vector<int64_t> labels;
};

std::string hw(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

Dataset stack_split(const std::string& name, const std::vector<torch::Tensor>& chw,
                    const std::vector<int64_t>& labels, int64_t channels, int64_t h, int64_t w) {
  Dataset d;
  d.name = name;
  const auto n = static_cast<int64_t>(chw.size());
  d.images = torch::empty({n, channels, h, w}, torch::kUInt8);
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      auto img = chw[static_cast<std::size_t>(i)];
      if (img.size(0) != channels) img = img.expand({channels, img.size(1), img.size(2)});
      d.images[i].copy_(resize_image(img, h, w));
    }
  });
  d.labels = torch::tensor(labels, torch::kInt64);
  return d;
}

DatasetSplits decode_folder(const fs::path& root, const FolderSplit& train, const FolderSplit& test,
                            const std::vector<std::string>& classes, const LoadOptions& o,
                            const std::vector<std::string>& notes) {
  std::vector<fs::path> all(train.files);
  all.insert(all.end(), test.files.begin(), test.files.end());
  std::vector<torch::Tensor> decoded(all.size());
  at::parallel_for(0, static_cast<int64_t>(all.size()), 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      decoded[static_cast<std::size_t>(i)] =
          decode_image(all[static_cast<std::size_t>(i)]).permute({2, 0, 1});
    }
  });
  std::map<std::pair<int64_t, int64_t>, int64_t> sizes;
  int64_t gray = 0;
  for (const auto& img : decoded) {
    ++sizes[{img.size(1), img.size(2)}];
    gray += img.size(0) == 1;
  }
  const int64_t channels = gray == static_cast<int64_t>(decoded.size()) ? 1 : 3;
  DatasetSplits s;
  s.info.format = "folder";
  s.info.source = root;
  s.info.notes = notes;
  s.info.converted_to_rgb = channels == 3 ? gray : 0;
  int64_t h = o.image_size, w = o.image_size;
  const auto common = std::max_element(sizes.begin(), sizes.end(), [](auto& a, auto& b) {
    return a.second < b.second;  // the first of equally common sizes wins (smallest H, W)
  });
  if (o.image_size > 0) {
    s.info.image_size_rule = "--image-size " + std::to_string(o.image_size);
  } else {
    h = common->first.first;
    w = common->first.second;
    s.info.image_size_rule =
        sizes.size() == 1
            ? "every image is " + hw(h, w)
            : "the most common size, " + hw(h, w) + " (" + std::to_string(common->second) + " of " +
                  std::to_string(decoded.size()) + " images; " + std::to_string(sizes.size()) +
                  " sizes in all); give --image-size N for another";
  }
  for (const auto& [size, count] : sizes) {
    if (size != std::pair{h, w}) s.info.resized += count;
  }
  const auto split_at = static_cast<std::ptrdiff_t>(train.files.size());
  s.train = stack_split("folder/train",
                        std::vector<torch::Tensor>(decoded.begin(), decoded.begin() + split_at),
                        train.labels, channels, h, w);
  s.test = stack_split("folder/test",
                       std::vector<torch::Tensor>(decoded.begin() + split_at, decoded.end()),
                       test.labels, channels, h, w);
  for (Dataset* d : {&s.train, &s.test}) {
    d->num_classes = static_cast<int64_t>(classes.size());
    d->class_names = classes;
  }
  return s;
}

/// The dtype's kind letter: 'u', 'i', 'f', 'b', ...
char dtype_kind(const NpyHeader& h) {
  const auto k = h.descr.find_first_not_of("<>|=");
  return k == std::string::npos ? '?' : h.descr[k];
}

/// Labels as int64 [N] from [N] or [N, 1]; refuses values < 0.
torch::Tensor labels_from(const torch::Tensor& t, const NpyHeader& h, const std::string& where) {
  const char kind = dtype_kind(h);
  DATAPROXY_CHECK(kind == 'i' || kind == 'u', DataError,
                  where << ": labels have dtype '" << h.descr
                        << "'; they must be integers (np.int64, np.uint8, ...): convert them "
                           "with astype(np.int64)");
  DATAPROXY_CHECK(t.dim() == 1 || (t.dim() == 2 && t.size(1) == 1), DataError,
                  where << ": labels have shape " << t.sizes()
                        << "; expected [N] or [N, 1] (one class index per sample, not one-hot)");
  auto labels = t.reshape({-1}).to(torch::kInt64).contiguous();
  if (labels.numel() > 0) {
    const auto neg = (labels < 0).nonzero();
    DATAPROXY_CHECK(neg.numel() == 0, DataError,
                    where << ": label " << (neg.numel() ? labels[neg[0][0]].item<int64_t>() : 0)
                          << " at index " << (neg.numel() ? neg[0][0].item<int64_t>() : 0)
                          << " is negative; labels must be class indices 0..K-1");
  }
  return labels;
}

torch::Tensor images_from(const torch::Tensor& t, const NpyHeader& h, const std::string& where) {
  DATAPROXY_CHECK(t.scalar_type() == torch::kUInt8 && dtype_kind(h) == 'u', DataError,
                  where << ": images have dtype '" << h.descr
                        << "'; they must be uint8 (0..255): for floats in [0, 1] write "
                           "(x * 255).round().clip(0, 255).astype(np.uint8)");
  if (t.dim() == 3) return t.unsqueeze(1).contiguous();
  DATAPROXY_CHECK(t.dim() == 4 && (t.size(3) == 1 || t.size(3) == 3), DataError,
                  where << ": images have shape " << t.sizes()
                        << "; expected N x H x W or N x H x W x C with C = 1 or 3 (Keras layout)"
                        << (t.dim() == 4 && (t.size(1) == 1 || t.size(1) == 3)
                                ? "; this looks channels-first: write x.transpose(0, 2, 3, 1)"
                                : ""));
  return t.permute({0, 3, 1, 2}).contiguous();
}

/// num_classes = largest label + 1, with notes saying so and naming classes without samples.
int64_t classes_from_labels(const Dataset& train, const Dataset& test,
                            std::vector<std::string>* notes) {
  int64_t top = -1;
  for (const Dataset* d : {&train, &test}) {
    if (d->labels.numel() > 0) top = std::max(top, d->labels.max().item<int64_t>());
  }
  const int64_t k = top + 1;
  notes->push_back("num_classes = " + std::to_string(k) + ": the largest label (" +
                   std::to_string(top) + ") + 1");
  if (k > 0) {
    const auto counts = torch::bincount(train.labels, {}, k);
    std::vector<std::string> empty;
    for (int64_t c = 0; c < k; ++c) {
      if (counts[c].item<int64_t>() == 0) empty.push_back(std::to_string(c));
    }
    if (!empty.empty()) notes->push_back("classes without training samples: " + join(empty));
  }
  return k;
}

void apply_image_size(DatasetSplits& s, int64_t size) {
  const int64_t h = s.train.height(), w = s.train.width();
  if (size <= 0) {
    s.info.image_size_rule = "every image is " + hw(h, w);
    return;
  }
  s.info.image_size_rule = "--image-size " + std::to_string(size);
  if (h == size && w == size) return;
  s.train.images = resize_all(s.train.images, size, size);
  s.test.images = resize_all(s.test.images, size, size);
  s.info.resized = s.train.size() + s.test.size();
}

/// dir/<prefix>-<kind>[.gz], or the one file named *<prefix>-<kind>[.gz] (EMNIST's
/// emnist-letters-train-images-idx3-ubyte); empty when none.
fs::path find_idx(const fs::path& dir, const std::vector<std::string>& prefixes,
                  const std::string& kind) {
  std::error_code ec;
  for (const auto& p : prefixes) {
    for (const std::string ext : {"", ".gz"}) {
      if (fs::is_regular_file(dir / (p + "-" + kind + ext), ec))
        return dir / (p + "-" + kind + ext);
    }
  }
  std::vector<fs::path> found;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    for (const auto& p : prefixes) {
      for (const std::string ext : {"", ".gz"}) {
        const std::string tail = "-" + p + "-" + kind + ext;
        if (name.size() > tail.size() &&
            name.compare(name.size() - tail.size(), tail.size(), tail) == 0) {
          found.push_back(e.path());
        }
      }
    }
  }
  std::sort(found.begin(), found.end());
  if (found.size() > 1) {
    std::vector<std::string> names;
    for (const auto& f : found) names.push_back(f.filename().string());
    throw DataError(dir.string() + ": several files could be the " + prefixes[0] + " " + kind +
                    " file (" + join(names) +
                    "); give each variant a folder of its own and pass that as --data-root");
  }
  return found.empty() ? fs::path() : found[0];
}

}  // namespace

torch::Tensor resize_all(const torch::Tensor& images, int64_t height, int64_t width) {
  if (images.size(2) == height && images.size(3) == width) return images;
  auto out = torch::empty({images.size(0), images.size(1), height, width}, torch::kUInt8);
  at::parallel_for(0, images.size(0), 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i].copy_(resize_image(images[i], height, width));
  });
  return out;
}

DatasetSplits load_image_folder(const fs::path& root, const LoadOptions& o) {
  std::error_code ec;
  const std::string layout =
      "the layout is DIR/train/<class>/*.png|jpg|jpeg and DIR/test/<class>/... "
      "(torchvision's ImageFolder)";
  DATAPROXY_CHECK(fs::is_directory(root, ec), DataError,
                  root.string() << ": no such folder; --data-root for --dataset folder is the "
                                   "folder holding train/ and test/ ("
                                << layout << ")");
  for (const char* split : {"train", "test"}) {
    DATAPROXY_CHECK(fs::is_directory(root / split, ec), DataError,
                    (root / split).string() << ": no such folder; " << layout);
  }
  const auto classes = class_folders(root / "train");
  DATAPROXY_CHECK(!classes.empty(), DataError,
                  (root / "train").string() << ": no class folders; " << layout);
  const auto test_classes = class_folders(root / "test");
  for (const auto& c : classes) {
    DATAPROXY_CHECK(std::binary_search(test_classes.begin(), test_classes.end(), c), DataError,
                    (root / "test" / c).string()
                        << ": missing; test/ must have the same class folders as train/ (add "
                           "test images of class '"
                        << c << "', or remove train/" << c << ")");
  }
  for (const auto& c : test_classes) {
    DATAPROXY_CHECK(std::binary_search(classes.begin(), classes.end(), c), DataError,
                    (root / "test" / c).string()
                        << ": a class folder that train/ lacks (train/ has " << join(classes)
                        << "); rename or remove it, or add train/" << c);
  }
  FolderSplit train, test;
  std::vector<fs::path> sources;
  int64_t ignored = 0;
  fs::path example;
  for (auto [split, out] : {std::pair{"train", &train}, std::pair{"test", &test}}) {
    for (std::size_t c = 0; c < classes.size(); ++c) {
      const fs::path dir = root / split / classes[c];
      auto files = image_files(dir, &ignored, &example);
      DATAPROXY_CHECK(!files.empty(), DataError,
                      dir.string() << ": an empty class (no .png, .jpg or .jpeg images); add "
                                      "images or remove the class from both train/ and test/");
      for (auto& f : files) {
        out->files.push_back(f);
        out->labels.push_back(static_cast<int64_t>(c));
      }
    }
    sources.insert(sources.end(), out->files.begin(), out->files.end());
  }
  std::vector<std::string> notes;
  if (ignored > 0) {
    notes.push_back("ignored " + std::to_string(ignored) +
                    " files that are not .png/.jpg/.jpeg (e.g. " + example.string() + ")");
  }
  return through_cache("folder", sources, o,
                       [&] { return decode_folder(root, train, test, classes, o, notes); });
}

DatasetSplits load_npz(const fs::path& file, const LoadOptions& o) {
  std::error_code ec;
  DATAPROXY_CHECK(fs::is_regular_file(file, ec), DataError,
                  file.string() << ": no such file; --data-root for --dataset npz is the .npz "
                                   "file itself (np.savez or np.savez_compressed with x_train, "
                                   "y_train, x_test, y_test)");
  return through_cache("npz", {file}, o, [&] {
    const auto members = read_npz(file);
    std::vector<std::string> have;
    for (const auto& [name, bytes] : members) have.push_back(name);
    auto array = [&](const std::string& name, NpyHeader* h) {
      const auto it = members.find(name);
      DATAPROXY_CHECK(it != members.end(), DataError,
                      file.string() << ": no array '" << name << "' (it holds: "
                                    << (have.empty() ? std::string("none") : join(have))
                                    << "); the Keras layout needs x_train, y_train, x_test, "
                                       "y_test: np.savez(path, x_train=..., y_train=..., ...)");
      return npy_to_tensor(it->second.data(), it->second.size(), file.string() + ":" + name, h);
    };
    DatasetSplits s;
    s.info.format = "npz";
    s.info.source = file;
    for (auto [split, d] : {std::pair{"train", &s.train}, std::pair{"test", &s.test}}) {
      NpyHeader hx, hy;
      const std::string x = std::string("x_") + split, y = std::string("y_") + split;
      d->name = std::string("npz/") + split;
      d->images = images_from(array(x, &hx), hx, file.string() + ":" + x);
      d->labels = labels_from(array(y, &hy), hy, file.string() + ":" + y);
      DATAPROXY_CHECK(d->images.size(0) == d->labels.size(0), DataError,
                      file.string() << ": " << x << " holds " << d->images.size(0) << " images but "
                                    << y << " holds " << d->labels.size(0)
                                    << " labels; they must match one to one");
    }
    DATAPROXY_CHECK(s.train.images.sizes().slice(1) == s.test.images.sizes().slice(1), DataError,
                    file.string() << ": x_train images are " << s.train.images.sizes().slice(1)
                                  << " (C, H, W) but x_test images are "
                                  << s.test.images.sizes().slice(1) << "; both must match");
    s.train.num_classes = s.test.num_classes = classes_from_labels(s.train, s.test, &s.info.notes);
    apply_image_size(s, o.image_size);
    return s;
  });
}

DatasetSplits load_idx_folder(const fs::path& dir, const LoadOptions& o) {
  std::error_code ec;
  DATAPROXY_CHECK(fs::is_directory(dir, ec), DataError,
                  dir.string() << ": no such folder; --data-root for --dataset idx is the folder "
                                  "holding train-images-idx3-ubyte[.gz] and the other MNIST-layout "
                                  "files");
  const std::vector<std::string> train_p{"train"}, test_p{"t10k", "test"};
  const fs::path files[4] = {
      find_idx(dir, train_p, "images-idx3-ubyte"), find_idx(dir, train_p, "labels-idx1-ubyte"),
      find_idx(dir, test_p, "images-idx3-ubyte"), find_idx(dir, test_p, "labels-idx1-ubyte")};
  const char* expected[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                             "t10k-images-idx3-ubyte (or test-)",
                             "t10k-labels-idx1-ubyte (or test-)"};
  for (int i = 0; i < 4; ++i) {
    DATAPROXY_CHECK(!files[i].empty(), DataError,
                    dir.string() << ": no " << expected[i]
                                 << "[.gz]; the idx format needs the four MNIST-layout files "
                                    "train-{images-idx3,labels-idx1}-ubyte and "
                                    "t10k-{images-idx3,labels-idx1}-ubyte, raw or gzipped");
  }
  return through_cache("idx", {files[0], files[1], files[2], files[3]}, o, [&] {
    DatasetSplits s;
    s.info.format = "idx";
    s.info.source = dir;
    s.train = read_idx(files[0], files[1], "idx/train", 256);
    s.test = read_idx(files[2], files[3], "idx/test", 256);
    DATAPROXY_CHECK(s.train.images.sizes().slice(1) == s.test.images.sizes().slice(1), DataError,
                    files[0].string()
                        << " holds " << hw(s.train.height(), s.train.width()) << " images but "
                        << files[2].string() << " holds " << hw(s.test.height(), s.test.width())
                        << "; both splits must have one size");
    s.train.num_classes = s.test.num_classes = classes_from_labels(s.train, s.test, &s.info.notes);
    apply_image_size(s, o.image_size);
    return s;
  });
}

}  // namespace dataproxy::data
