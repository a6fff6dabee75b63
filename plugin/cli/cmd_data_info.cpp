// `dataproxy data-info NAME --root DIR`: sizes, shapes, class counts and fingerprints.
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

int run_data_info(const std::vector<std::string>& args) {
  LoadOptions o;
  std::string name, root = "data";
  po::options_description desc(
      "dataproxy data-info NAME [--root DIR] [options]\n\n"
      "Loads a dataset and prints its splits: sizes, shapes, class counts, fingerprints.\n"
      "Options");
  desc.add_options()("help,h", "this help")(
      "name", po::value(&name)->required(),
      "dataset: cifar10, cifar100, cifar100-coarse or fashion-mnist")(
      "root", po::value(&root)->default_value(root), "data folder")(
      "max-train", po::value(&o.max_train)->default_value(0), "first N training samples; 0 = all")(
      "max-test", po::value(&o.max_test)->default_value(0), "first N test samples; 0 = all")(
      "any-size", "accept files with other than the official sample counts")(
      "json", "one JSON object on stdout instead of text");
  po::positional_options_description pos;
  pos.add("name", 1);
  po::variables_map vm;
  if (!parse_options(args, desc, "data-info", vm, &pos)) return 0;
  o.official_sizes = !vm.count("any-size");
  torch::set_num_threads(1);
  const auto start = std::chrono::steady_clock::now();
  const auto splits = load_dataset(name, root, o);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const nlohmann::json out = {{"dataset", name},
                              {"root", root},
                              {"load_seconds", load_s},
                              {"train", describe(splits.train)},
                              {"test", describe(splits.test)}};
  if (vm.count("json")) {
    std::cout << out.dump() << std::endl;
  } else {
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
