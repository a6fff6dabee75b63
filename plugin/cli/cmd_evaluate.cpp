// `dataproxy evaluate`: trains configurations of a search space on the full data or on proxies,
// all in this one process, and appends one TrialRecord per (proxy, configuration) to a results
// store. The ranking benchmark drives it; users can run it for spot checks by hand.
#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "command.h"
#include "dataproxy/candidate.h"
#include "dataproxy/dataset.h"
#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/manifest.h"
#include "dataproxy/model.h"
#include "dataproxy/progress.h"
#include "dataproxy/results.h"
#include "dataproxy/search_space.h"
#include "dataproxy/trainer.h"
#include "dataproxy/version.h"

namespace dataproxy::cli {
namespace {

namespace po = boost::program_options;

/// Options of `dataproxy evaluate`; flags map one to one onto these fields.
struct EvaluateOptions {
  fs::path space;                   ///< search-space YAML
  std::string dataset;              ///< name for load_dataset(); taken from the manifest if empty
  fs::path data_root;               ///< folder for load_dataset()
  std::vector<fs::path> manifests;  ///< proxies to train on, in order; empty = the full data
  std::string configs = "all";      ///< "all" or a JSON list of parameter objects / config ids
  int64_t max_train = -1;           ///< -1 = not given (the manifest's slice, or all)
  int64_t max_test = -1;            ///< -1 = not given
  int64_t image_size = -1;          ///< -1 = not given (the manifest's, or the data's size)
  int64_t epochs = 0;               ///< 0 = the space's training epochs
  int64_t steps = 0;                ///< exactly this many optimizer steps; 0 = whole epochs
  bool record_correct = false;      ///< per-test-sample correctness in each record
  uint64_t seed = 0;                ///< training seed (init, shuffling, augmentation)
  int threads = 0;                  ///< CPU threads; 0 = all cores
  std::string memory_format = "auto";
  std::string device = "auto";   ///< "auto", "cpu", "cuda", "cuda:N"
  fs::path results;              ///< results store folder or .jsonl; empty = none
  bool eval_each_epoch = false;  ///< test accuracy after every epoch (slower)
  /// Test samples evaluated after each epoch but the last (TrainOptions::eval_subset); 0 = all.
  int64_t eval_subset = 1000;
  std::string report = "quiet";  ///< progress of training: auto, bar, jsonl, quiet
};

/// The configurations named by --configs, validated against the space.
std::vector<Config> select_configs(const SearchSpace& space, const std::string& text) {
  std::vector<Config> all = space.enumerate();
  if (text == "all") return all;
  json list;
  try {
    list = json::parse(text);
  } catch (const json::exception& e) {
    throw InvalidInput("--configs must be \"all\" or a JSON list, got '" + text.substr(0, 80) +
                       "' (" + e.what() + ")");
  }
  DATAPROXY_CHECK(list.is_array() && !list.empty(), InvalidInput,
                  "--configs must be \"all\" or a non-empty JSON list of parameter objects or "
                  "config ids (e.g. [\"B8_K3_M2\"]), got '"
                      << text.substr(0, 80) << "'");
  std::vector<Config> chosen;
  for (const auto& item : list) {
    if (item.is_string()) {
      const auto id = item.get<std::string>();
      auto it = std::find_if(all.begin(), all.end(),
                             [&](const Config& c) { return space.config_id(c) == id; });
      DATAPROXY_CHECK(it != all.end(), InvalidInput,
                      "--configs: no configuration of space '"
                          << space.name() << "' has id '" << id << "' (ids look like '"
                          << space.config_id(all.front()) << "')");
      chosen.push_back(*it);
    } else {
      chosen.push_back(space.validate(item));
    }
  }
  return chosen;
}

/// One data set to train on: the full splits or a proxy of them.
struct Target {
  std::optional<Manifest> manifest;
  fs::path manifest_path;
  Dataset train;
  Dataset test;
  int64_t num_classes = 0;
};

void check_slice(const char* flag, int64_t given, int64_t in_manifest, const fs::path& path) {
  DATAPROXY_CHECK(given < 0 || given == in_manifest, InvalidInput,
                  flag << " " << given << " differs from the slice the proxy " << path.string()
                       << " was built on (" << in_manifest << "); leave " << flag
                       << " out or regenerate the proxy with it");
}

json record_line(const TrialRecord& r) {
  json j = r.to_json();
  j["event"] = "trial";
  return j;
}

int run_evaluate(const std::vector<std::string>& args) {
  EvaluateOptions o;
  std::string space, data_root, results, configs_text;
  std::vector<std::string> manifests;
  po::options_description desc(
      "dataproxy evaluate: train configurations of a space on the full data or on proxies, in "
      "one process; one JSON line per trained configuration on stdout");
  desc.add_options()("help,h", "this help")("space", po::value(&space)->required(),
                                            "search-space YAML file")(
      "dataset", po::value(&o.dataset), "dataset name (default: the manifest's)")(
      "data-root", po::value(&data_root), "folder holding the dataset (required to train)")(
      "list-configs", "print the selected configurations (JSON lines) and exit; trains nothing")(
      "manifest", po::value(&manifests)->composing(),
      "proxy manifest.json (or its folder); repeat to evaluate several proxies; none = the "
      "full data")("configs", po::value(&o.configs)->default_value("all"),
                   "\"all\" or a JSON list of parameter objects or config ids")(
      "max-train", po::value(&o.max_train)->default_value(-1),
      "first N training samples (default: the manifest's slice, or all)")(
      "max-test", po::value(&o.max_test)->default_value(-1),
      "first N test samples (default: the manifest's slice, or all)")(
      "image-size", po::value(&o.image_size)->default_value(-1),
      "resize every image to N x N pixels (default: the manifest's, or the data's size)")(
      "epochs", po::value(&o.epochs)->default_value(0), "epochs; 0 = the space's")(
      "steps", po::value(&o.steps)->default_value(0),
      "train exactly this many optimizer steps (the schedule spans them; the last epoch may be "
      "partial) instead of whole epochs; 0 = whole epochs")(
      "record-correct", po::bool_switch(&o.record_correct),
      "add each evaluated test sample's correctness to the record (correct.bits: base64 "
      "of the bits, first sample in the highest bit)")("seed", po::value(&o.seed)->default_value(0),
                                                       "training seed")(
      "threads", po::value(&o.threads)->default_value(0), "CPU threads; 0 = all cores")(
      "device", po::value(&o.device)->default_value("auto"), "auto, cpu, cuda or cuda:N")(
      "memory-format", po::value(&o.memory_format)->default_value("auto"),
      "auto, channels-last or contiguous (auto: channels-last on CUDA; on the CPU by width)")(
      "results", po::value(&results), "results store (folder or .jsonl) to append records to")(
      "eval-each-epoch", po::bool_switch(&o.eval_each_epoch),
      "evaluate after every epoch (records the curve; slower)")(
      "eval-subset", po::value(&o.eval_subset)->default_value(1000),
      "with --eval-each-epoch: test samples evaluated after each epoch but the last (a fixed, "
      "seeded subset; the final accuracy always uses the whole split); 0 = the whole split")(
      "report", po::value(&o.report)->default_value("quiet"),
      "training progress: auto, bar, jsonl or quiet");
  po::variables_map vm;
  if (!parse_options(args, desc, "evaluate", vm)) return 0;
  o.space = space;
  if (vm.count("list-configs")) {
    const SearchSpace s = SearchSpace::load(o.space);
    for (const Config& c : select_configs(s, o.configs)) {
      std::cout << json{{"event", "config"}, {"config_id", s.config_id(c)}, {"config", c}}.dump()
                << "\n";
    }
    return 0;
  }
  DATAPROXY_CHECK(!data_root.empty(), InvalidInput,
                  "--data-root is required to train (the folder holding the dataset)");
  o.data_root = data_root;
  o.results = results;
  for (const auto& m : manifests) o.manifests.emplace_back(m);
  DATAPROXY_CHECK(o.epochs >= 0, InvalidInput, "--epochs must be >= 0, got " << o.epochs);
  DATAPROXY_CHECK(o.steps >= 0, InvalidInput, "--steps must be >= 0, got " << o.steps);
  DATAPROXY_CHECK(o.steps == 0 || o.epochs == 0, InvalidInput,
                  "--steps " << o.steps << " and --epochs " << o.epochs
                             << " both set the training length; give one of them");
  DATAPROXY_CHECK(o.threads >= 0, InvalidInput, "--threads must be >= 0, got " << o.threads);

  const auto started = std::chrono::steady_clock::now();
  auto reporter = make_reporter(parse_report_mode(o.report));
  const SearchSpace search_space = SearchSpace::load(o.space);
  const std::vector<Config> configs = select_configs(search_space, o.configs);
  std::optional<ResultsStore> store;
  if (!o.results.empty()) store.emplace(o.results);

  std::vector<Manifest> loaded;
  for (const auto& path : o.manifests) loaded.push_back(load_manifest(path));
  LoadOptions load;
  load.max_train = std::max<int64_t>(o.max_train, 0);
  load.max_test = std::max<int64_t>(o.max_test, 0);
  load.image_size = std::max<int64_t>(o.image_size, 0);
  std::string dataset = o.dataset;
  for (std::size_t i = 0; i < loaded.size(); ++i) {
    const Manifest& m = loaded[i];
    if (dataset.empty()) dataset = m.dataset;
    DATAPROXY_CHECK(m.dataset == dataset, InvalidInput,
                    "proxy " << o.manifests[i].string() << " was built on dataset '" << m.dataset
                             << "', not '" << dataset
                             << "'; evaluate proxies of one dataset per call");
    check_slice("--max-train", o.max_train, m.load_options.max_train, o.manifests[i]);
    check_slice("--max-test", o.max_test, m.load_options.max_test, o.manifests[i]);
    check_slice("--image-size", o.image_size, m.load_options.image_size, o.manifests[i]);
    if (i == 0) {
      load = m.load_options;
    } else {
      DATAPROXY_CHECK(m.load_options.max_train == load.max_train &&
                          m.load_options.max_test == load.max_test &&
                          m.load_options.image_size == load.image_size,
                      InvalidInput,
                      "proxies " << o.manifests[0].string() << " and " << o.manifests[i].string()
                                 << " were built on different slices or image sizes of the data; "
                                    "evaluate them in separate calls");
    }
    if (m.space_hash != search_space.content_hash()) {
      reporter->message("note: proxy " + o.manifests[i].string() + " was built for space '" +
                        m.space_name + "', not for " + o.space.string() +
                        "; evaluating the space's configurations on it anyway");
    }
  }
  DATAPROXY_CHECK(
      !dataset.empty(), InvalidInput,
      "--dataset is required when no --manifest is given (one of: " << [] {
        std::string s;
        for (const auto& n : dataset_names()) s += (s.empty() ? "" : ", ") + n;
        return s;
      }() << ")");

  const DatasetSplits data = load_dataset(dataset, o.data_root, load);
  std::vector<Target> targets;
  if (loaded.empty()) {
    targets.push_back({std::nullopt, {}, data.train, data.test, data.train.num_classes});
  } else {
    for (std::size_t i = 0; i < loaded.size(); ++i) {
      check_dataset(loaded[i], data.train);
      Target t{loaded[i], o.manifests[i], proxy_train_set(loaded[i], data.train),
               proxy_test_set(loaded[i], data.test), loaded[i].proxy_num_classes()};
      targets.push_back(std::move(t));
    }
  }

  CandidateOptions copts;
  copts.train.device = o.device;
  copts.train.memory_format = parse_memory_format(o.memory_format);
  copts.train.threads = o.threads;
  copts.train.seed = o.seed;
  copts.train.epochs = o.epochs;
  copts.train.max_steps = o.steps;
  copts.train.evaluate_each_epoch = o.eval_each_epoch;
  copts.train.eval_subset = o.eval_subset;
  copts.record_correct = o.record_correct;
  const int64_t epochs = o.epochs > 0 ? o.epochs : search_space.training().epochs;

  int64_t trained = 0;
  for (const Target& t : targets) {
    const bool proxy = t.manifest.has_value();
    CandidateData sets;
    (proxy ? sets.proxy : sets.full) = {&t.train, &t.test, t.num_classes};
    for (const Config& config : configs) {
      const auto candidate_started = std::chrono::steady_clock::now();
      TrialRecord rec = train_candidate(search_space, config, sets, copts, *reporter).record;
      rec.framework = "benchmark";
      rec.trial_id =
          (proxy ? t.manifest->key.substr(0, 12) : std::string("full")) + "/" + rec.config_id +
          (o.steps > 0 ? "/k" + std::to_string(o.steps) : "/e" + std::to_string(epochs)) + "/s" +
          std::to_string(o.seed);
      rec.timing->total =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - candidate_started)
              .count();
      rec.data.dataset = dataset;
      rec.data.space = search_space.name();
      rec.data.space_file = o.space.string();
      rec.data.space_hash = search_space.content_hash();
      rec.data.max_train = load.max_train;
      rec.data.max_test = load.max_test;
      if (proxy) {
        rec.manifest_key = t.manifest->key;
        rec.data.manifest = fs::absolute(t.manifest_path).string();
        rec.data.method = t.manifest->method;
        rec.data.ratio = t.manifest->ratio;
        rec.data.sampling_seed = static_cast<int64_t>(t.manifest->seed);
      }
      if (store) store->append(rec);
      std::cout << record_line(rec).dump() << std::endl;
      ++trained;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << json{{"event", "summary"},
                    {"trained", trained},
                    {"configs", configs.size()},
                    {"targets", targets.size()},
                    {"seconds", seconds},
                    {"results", store ? store->file().string() : std::string()}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace
DATAPROXY_REGISTER_COMMAND(evaluate,
                           {"evaluate",
                            "train configurations on the full data or on proxies, one process, "
                            "one result record each",
                            run_evaluate});
}  // namespace dataproxy::cli
