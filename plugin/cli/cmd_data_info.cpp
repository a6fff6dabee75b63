// `dataproxy data-info NAME --data-root DIR`: format, sizes, shapes, class counts, image size,
// decode cache entry and fingerprints.
#include <torch/torch.h>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "command.h"
#include "dataproxy/dataset.h"
#include "dataproxy/error.h"

namespace dataproxy::cli {
namespace {

namespace po = boost::program_options;

nlohmann::json describe(const Dataset& d) {
  const auto counts = d.class_counts();
  std::vector<int64_t> per_class(counts.data_ptr<int64_t>(),
                                 counts.data_ptr<int64_t>() + counts.numel());
  return {{"name", d.name},
          {"size", d.size()},
          {"shape", d.images.sizes().vec()},
          {"num_classes", d.num_classes},
          {"class_names", d.class_names},
          {"class_counts", per_class},
          {"fingerprint", fingerprint(d)}};
}

nlohmann::json describe(const LoadInfo& i) {
  return {{"format", i.format},
          {"source", i.source.string()},
          {"image_size_rule", i.image_size_rule},
          {"resized", i.resized},
          {"converted_to_rgb", i.converted_to_rgb},
          {"notes", i.notes},
          {"cache_entry",
           i.cache_entry.empty() ? nlohmann::json() : nlohmann::json(i.cache_entry.string())},
          {"cache_hit", i.cache_hit},
          {"seconds", i.seconds}};
}

void print_load(const LoadInfo& i, const Dataset& train) {
  std::cout << "format " << i.format << " from " << i.source.string() << "\n"
            << "  image size " << train.height() << "x" << train.width() << ", " << train.channels()
            << (train.channels() == 1 ? " channel" : " channels") << " (" << i.image_size_rule
            << ")";
  if (i.resized > 0) std::cout << "; " << i.resized << " images resized";
  if (i.converted_to_rgb > 0) {
    std::cout << "; " << i.converted_to_rgb << " grayscale images converted to RGB";
  }
  std::cout << "\n";
  for (const auto& n : i.notes) std::cout << "  " << n << "\n";
  if (!i.cache_entry.empty()) {
    std::cout << "  cache entry " << i.cache_entry.string()
              << (i.cache_hit ? " (read, not decoded)" : " (decoded and written now)") << "\n";
  }
}

void print(const nlohmann::json& j) {
  std::cout << j["name"].get<std::string>() << ": " << j["size"] << " samples, shape "
            << j["shape"].dump() << ", " << j["num_classes"] << " classes\n"
            << "  fingerprint " << j["fingerprint"].get<std::string>() << "\n  per class:";
  const auto& names = j["class_names"];
  for (std::size_t c = 0; c < j["class_counts"].size(); ++c) {
    std::cout << (c % 5 == 0 ? "\n    " : "  ") << c;
    if (c < names.size()) std::cout << " " << names[c].get<std::string>();
    std::cout << "=" << j["class_counts"][c];
  }
  std::cout << "\n";
}

/// `--root` was this command's spelling before every command took `--data-root`; it stays as a
/// hidden alias.
std::vector<std::string> root_alias(std::vector<std::string> args) {
  for (auto& a : args) {
    if (a == "--root") a = "--data-root";
    if (a.rfind("--root=", 0) == 0) a = "--data-root=" + a.substr(7);
  }
  return args;
}

int run_data_info(const std::vector<std::string>& args) {
  LoadOptions o;
  std::string name, root = "data", cache;
  po::options_description desc(
      "dataproxy data-info NAME [--data-root DIR] [options]\n\n"
      "Loads a dataset and prints its format, image size, decode cache entry and splits: sizes,\n"
      "shapes, class counts, fingerprints.\n"
      "Options");
  desc.add_options()("help,h", "this help")(
      "name", po::value(&name)->required(),
      "dataset: cifar10, cifar100, cifar100-coarse, fashion-mnist, or your own data: folder "
      "(DIR/{train,test}/<class>/*.png|jpg), npz (--data-root FILE.npz), idx (MNIST layout)")(
      "data-root", po::value(&root)->default_value(root), "data folder (npz: the .npz file)")(
      "image-size", po::value(&o.image_size)->default_value(0),
      "resize every image to N x N pixels; 0 = keep (folder: the most common size)")(
      "cache", po::value(&cache),
      "cache root for decoded data (default: $DATAPROXY_CACHE or ~/.cache/dataproxy)")(
      "no-cache", "decode without reading or writing the cache")(
      "max-train", po::value(&o.max_train)->default_value(0), "first N training samples; 0 = all")(
      "max-test", po::value(&o.max_test)->default_value(0), "first N test samples; 0 = all")(
      "any-size", "accept files with other than the official sample counts")(
      "json", "one JSON object on stdout instead of text");
  po::positional_options_description pos;
  pos.add("name", 1);
  po::variables_map vm;
  if (!parse_options(root_alias(args), desc, "data-info", vm, &pos)) return 0;
  o.official_sizes = !vm.count("any-size");
  o.use_cache = !vm.count("no-cache");
  o.cache_dir = cache;
  torch::set_num_threads(1);
  const auto start = std::chrono::steady_clock::now();
  const auto splits = load_dataset(name, root, o);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const nlohmann::json out = {{"dataset", name},
                              {"root", root},
                              {"load_seconds", load_s},
                              {"load", describe(splits.info)},
                              {"train", describe(splits.train)},
                              {"test", describe(splits.test)}};
  if (vm.count("json")) {
    std::cout << out.dump() << std::endl;
  } else {
    print_load(splits.info, splits.train);
    print(out["train"]);
    print(out["test"]);
    std::cout << "loaded in " << load_s << " s\n";
  }
  return 0;
}

}  // namespace
DATAPROXY_REGISTER_COMMAND(data_info, {"data-info",
                                       "sizes, shapes, class counts and fingerprints of a dataset",
                                       run_data_info});
}  // namespace dataproxy::cli
