// `dataproxy space FILE`: summary, enumeration, costs, validation and NNI/Optuna export of a
// search space.
#include <torch/torch.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "command.h"
#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/model.h"
#include "dataproxy/search_space.h"

namespace dataproxy::cli {
namespace {

namespace po = boost::program_options;

void print_summary(const SearchSpace& sp, const std::string& file) {
  std::cout << sp.name() << " (" << file << "): family " << sp.family() << ", " << sp.size()
            << " configurations\n  content hash " << sp.content_hash() << "\n  parameters:\n";
  for (const auto& p : sp.parameters()) {
    std::cout << "    " << p.name << " in " << json(p.choices).dump();
    if (!p.description.empty()) std::cout << "  (" << p.description << ")";
    std::cout << "\n";
    for (const auto& [name, value] : p.values.items()) {
      std::cout << "      " << name << " = " << value.dump() << "\n";
    }
  }
  std::cout << "  model settings: " << sp.model_settings().dump() << "\n"
            << "  training: " << sp.training().to_json().dump() << "\n";
  if (!sp.notes().empty()) std::cout << "  notes: " << sp.notes() << "\n";
}

void print_costs(const SearchSpace& sp, const InputShape& input, int64_t classes, bool as_json) {
  struct Row {
    std::string id;
    Config config;
    ModelCost cost;
  };
  std::vector<Row> rows;
  for (const auto& c : sp.enumerate()) {
    rows.push_back({sp.config_id(c), c, model_cost(sp, c, input, classes)});
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const Row& a, const Row& b) { return a.cost.macs < b.cost.macs; });
  if (as_json) {
    for (const auto& r : rows) {
      std::cout << json{{"config_id", r.id},
                        {"config", r.config},
                        {"macs", r.cost.macs},
                        {"params", r.cost.params}}
                       .dump()
                << "\n";
    }
    return;
  }
  std::size_t width = 9;
  for (const auto& r : rows) width = std::max(width, r.id.size());
  std::cout << "costs for " << input.channels << "x" << input.height << "x" << input.width
            << " inputs, " << classes << " classes (MACs of one image's forward pass)\n"
            << std::left << std::setw(static_cast<int>(width)) << "config_id" << std::right
            << std::setw(16) << "MACs" << std::setw(14) << "params"
            << "\n";
  for (const auto& r : rows) {
    std::cout << std::left << std::setw(static_cast<int>(width)) << r.id << std::right
              << std::setw(16) << r.cost.macs << std::setw(14) << r.cost.params << "\n";
  }
}

/// The whole space for the Python adapters (`--json` alone): they read nothing from the YAML
/// themselves, so every key a client needs is here, paths made absolute.
json space_document(const SearchSpace& sp, const std::string& file) {
  json doc = sp.to_json();
  for (auto& p : doc["parameters"]) p["type"] = "choice";  // every parameter is categorical
  doc["format"] = "dataproxy-space";
  doc["version"] = 1;
  doc["file"] = fs::absolute(file).lexically_normal().string();
  doc["size"] = sp.size();
  doc["content_hash"] = sp.content_hash();
  doc["nni"] = sp.to_nni();
  doc["optuna"] = sp.to_optuna();
  if (sp.family() == "torchscript") {
    const auto& t = sp.torchscript();
    doc["torchscript"] = {{"module", t.module.string()},
                          {"module_sha256", t.module_sha256},
                          {"function", t.function},
                          {"exports", t.exports.string()},
                          {"seed", t.seed}};
  }
  return doc;
}

void write_json(const std::string& path, const json& j, const char* what) {
  atomic_write(path, j.dump(2) + "\n");
  std::cerr << "wrote " << what << " to " << path << "\n";
}

int run_space(const std::vector<std::string>& args) {
  std::string file, nni_out, optuna_out, to_validate;
  InputShape input;
  int64_t size = 32, classes = 10;
  po::options_description desc(
      "dataproxy space FILE [options]\n\n"
      "Reads a search-space YAML file and prints a summary (without other options), its\n"
      "configurations, their costs, or exports it for NNI and Optuna. See\n"
      "search_spaces/README.md for the file's schema.\n"
      "Options");
  desc.add_options()("help,h", "this help")("file", po::value(&file)->required(),
                                            "search-space YAML file")(
      "enumerate", "print every configuration, one JSON object per line")(
      "costs", "print MACs and parameters of every configuration, lightest first")(
      "json",
      "alone: the whole space as one JSON document (parameters with their type and choices, "
      "model settings, training, the family's own block, NNI and Optuna exports); with "
      "--costs: one JSON object per line instead of a table")(
      "channels", po::value(&input.channels)->default_value(3), "--costs: input channels")(
      "size", po::value(&size)->default_value(32), "--costs: input height and width")(
      "classes", po::value(&classes)->default_value(10), "--costs: number of classes")(
      "nni", po::value(&nni_out), "write NNI's search-space JSON to this file")(
      "optuna", po::value(&optuna_out),
      "write Optuna distributions JSON (optuna.distributions.json_to_distribution per key)")(
      "validate", po::value(&to_validate),
      "check a parameter set given as JSON, e.g. '{\"B\": 16, \"K\": 3, \"M\": 2}'; prints "
      "the canonical configuration and its id, or the error (exit code 2)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_options(args, desc, "space", vm, &pos)) return 0;
  input.height = input.width = size;
  torch::set_num_threads(1);

  const SearchSpace sp = SearchSpace::load(file);
  bool acted = false;
  if (vm.count("validate")) {
    json params;
    try {
      params = json::parse(to_validate);
    } catch (const json::parse_error& e) {
      throw InvalidInput("--validate: '" + to_validate + "' is not JSON (" + e.what() +
                         "); give an object such as '{\"B\": 16, \"K\": 3, \"M\": 2}'");
    }
    const Config c = sp.validate(params);
    std::cout << json{{"config_id", sp.config_id(c)}, {"config", c}}.dump() << "\n";
    acted = true;
  }
  if (vm.count("enumerate")) {
    for (const auto& c : sp.enumerate()) std::cout << c.dump() << "\n";
    acted = true;
  }
  if (vm.count("costs")) {
    print_costs(sp, input, classes, vm.count("json") > 0);
    acted = true;
  }
  if (!nni_out.empty()) {
    write_json(nni_out, sp.to_nni(), "NNI search space");
    acted = true;
  }
  if (!optuna_out.empty()) {
    write_json(optuna_out, sp.to_optuna(), "Optuna distributions");
    acted = true;
  }
  if (!acted && vm.count("json")) {
    std::cout << space_document(sp, file).dump() << "\n";
  } else if (!acted) {
    print_summary(sp, file);
  }
  return 0;
}

}  // namespace
DATAPROXY_REGISTER_COMMAND(space, {"space",
                                   "summarise, enumerate, cost, validate or export a search space",
                                   run_space});
}  // namespace dataproxy::cli
