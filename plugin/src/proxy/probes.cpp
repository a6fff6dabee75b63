#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>

#include "dataproxy/clock.h"
#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/proxy.h"
#include "dataproxy/trainer.h"
#include "dataproxy/version.h"

namespace dataproxy {
namespace {

const char* kProbesFile = "probes.json";
const char* kEvidenceFile = "evidence.pt";

int64_t effective_epochs(const SearchSpace& space, const ProbeOptions& options) {
  return options.epochs > 0 ? options.epochs : space.training().epochs;
}

// Loads a cached entry; returns false (and says why through the reporter) when it is absent or
// unusable, so that the caller trains the probes again and overwrites it.
bool load_cached(const fs::path& dir, int64_t probes, int64_t n_train, int64_t n_test,
                 ProbeEvidence& ev, Reporter& reporter) {
  const fs::path meta = dir / kProbesFile;
  if (!fs::exists(meta)) return false;
  try {
    json j = json::parse(read_file(meta));
    const fs::path tensors = dir / kEvidenceFile;
    if (!fs::exists(tensors) || sha256_file(tensors) != j.at("evidence_sha256")) {
      reporter.message("probe cache " + dir.string() +
                       ": evidence file missing or changed; training the probes again");
      return false;
    }
    std::vector<torch::Tensor> t;
    torch::load(t, tensors.string());
    if (t.size() != 3 || t[0].sizes() != torch::IntArrayRef({probes, n_test}) ||
        t[1].size(0) != n_train || t[2].size(0) != n_test) {
      reporter.message("probe cache " + dir.string() + ": unexpected shapes; training again");
      return false;
    }
    ev.probes.clear();
    for (const auto& p : j.at("probes")) ev.probes.push_back(probe_from_json(p));
    ev.correct = t[0].to(torch::kBool);
    ev.train_features = t[1];
    ev.test_features = t[2];
    ev.from_cache = true;
    return static_cast<int64_t>(ev.probes.size()) == probes;
  } catch (const std::exception& e) {
    reporter.message("probe cache " + dir.string() + " is unreadable (" + e.what() +
                     "); training the probes again");
    return false;
  }
}

}  // namespace

uint64_t probe_training_seed(uint64_t seed) {
  // SplitMix64 of the seed with a tag: candidates train with small seeds (0, 1, 2, ...), and a
  // probe must never repeat one of their runs.
  uint64_t z = seed ^ 0x70726f6265ULL;
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return (z ^ (z >> 31)) >> 1;  // kept below 2^63: seeds travel as int64 through LibTorch
}

ProbeEvidence restrict_evidence(const ProbeEvidence& evidence,
                                const std::vector<int64_t>& test_indices) {
  ProbeEvidence out = evidence;
  const torch::Tensor idx = torch::tensor(test_indices, torch::kInt64);
  out.correct = evidence.correct.index_select(1, idx);
  out.test_features = evidence.test_features.index_select(0, idx);
  for (std::size_t i = 0; i < out.probes.size(); ++i) {
    out.probes[i].test_accuracy =
        out.correct[static_cast<int64_t>(i)].to(torch::kFloat64).mean().item<double>();
  }
  return out;
}

std::vector<Config> MacsProbeChooser::choose(const SearchSpace& space, const InputShape& input,
                                             int64_t num_classes, int64_t count) const {
  std::vector<Config> configs = space.enumerate();
  DATAPROXY_CHECK(count >= 2 && count <= static_cast<int64_t>(configs.size()), InvalidInput,
                  "--probes " << count << " is outside [2, " << configs.size()
                              << "] (the search space '" << space.name() << "' has "
                              << configs.size() << " configurations)");
  struct Item {
    ModelCost cost;
    std::size_t index;
  };
  std::vector<Item> items;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    items.push_back({model_cost(space, configs[i], input, num_classes), i});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.cost.macs != b.cost.macs) return a.cost.macs < b.cost.macs;
    if (a.cost.params != b.cost.params) return a.cost.params < b.cost.params;
    return a.index < b.index;
  });
  std::vector<std::size_t> chosen{0, items.size() - 1};
  const double lo = static_cast<double>(items.front().cost.macs);
  const double hi = static_cast<double>(items.back().cost.macs);
  for (int64_t j = 1; j + 1 < count; ++j) {
    const double target = lo + (hi - lo) * static_cast<double>(j) / static_cast<double>(count - 1);
    std::size_t best = items.size();
    double best_gap = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (std::find(chosen.begin(), chosen.end(), i) != chosen.end()) continue;
      const double gap = std::abs(static_cast<double>(items[i].cost.macs) - target);
      if (best == items.size() || gap < best_gap) {
        best = i;
        best_gap = gap;
      }
    }
    chosen.push_back(best);
  }
  std::sort(chosen.begin(), chosen.end());
  std::vector<Config> out;
  for (std::size_t i : chosen) out.push_back(configs[items[i].index]);
  return out;
}

std::string probe_cache_key(const std::string& train_fingerprint,
                            const std::string& test_fingerprint, const SearchSpace& space,
                            const std::vector<Config>& configs, const ProbeOptions& options) {
  json ids = json::array();
  for (const auto& c : configs) ids.push_back(space.config_id(c));
  json deciding{{"kind", "dataproxy.probes"},
                {"train_fingerprint", train_fingerprint},
                {"test_fingerprint", test_fingerprint},
                {"space_hash", space.content_hash()},
                {"configs", ids},
                {"epochs", effective_epochs(space, options)},
                {"seed", options.seed},
                {"training_seed", probe_training_seed(options.seed)},
                {"tool_version", kVersion}};
  return sha256_hex(deciding.dump());
}

ProbeEvidence obtain_probe_evidence(const SearchSpace& space, const DatasetSplits& data,
                                    const std::string& train_fingerprint,
                                    const std::string& test_fingerprint,
                                    const ProbeOptions& options, const ProbeChooser& chooser,
                                    Reporter& reporter) {
  const Dataset& train = data.train;
  const Dataset& test = data.test;
  DATAPROXY_CHECK(train.size() > 0 && test.size() > 0, InvalidInput,
                  "probes need non-empty train and test splits (got " << train.size() << " and "
                                                                      << test.size() << ")");
  const InputShape input{train.channels(), train.height(), train.width()};
  std::vector<Config> configs = chooser.choose(space, input, train.num_classes, options.count);
  const std::string key =
      probe_cache_key(train_fingerprint, test_fingerprint, space, configs, options);
  const fs::path root =
      options.cache_dir.empty() ? probes_dir(default_cache_dir()) : options.cache_dir;
  const fs::path dir = root / key;
  fs::create_directories(root);
  FileLock lock(root / (key + ".lock"));

  ProbeEvidence ev;
  if (load_cached(dir, static_cast<int64_t>(configs.size()), train.size(), test.size(), ev,
                  reporter)) {
    reporter.event({{"event", "probes_cached"}, {"key", key}, {"dir", dir.string()}});
    ev.stage_seconds = {{"probes", 0.0}, {"features", 0.0}};
    return ev;
  }

  TrainOptions topt;
  topt.device = options.device;
  topt.threads = options.threads;
  topt.seed = probe_training_seed(options.seed);
  topt.epochs = effective_epochs(space, options);
  topt.evaluate_each_epoch = false;
  double train_total = 0;
  double feature_total = 0;
  std::vector<torch::Tensor> correct;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const Config& config = configs[i];
    const ModelCost cost = model_cost(space, config, input, train.num_classes);
    const std::string id = space.config_id(config);
    reporter.event({{"event", "probe_start"},
                    {"index", i},
                    {"of", configs.size()},
                    {"config_id", id},
                    {"macs", cost.macs},
                    {"epochs", topt.epochs}});
    seed_everything(topt.seed);
    auto model = build_model(space, config, input, train.num_classes);
    Trainer trainer(space.training(), topt, reporter);
    TrainResult result = trainer.fit(*model, train, test);
    torch::Tensor predicted = trainer.predict(*model, test);
    correct.push_back(predicted.eq(test.labels.to(torch::kInt64)));
    ProbeRecord rec;
    rec.config = config;
    rec.config_id = id;
    rec.macs = cost.macs;
    rec.params = cost.params;
    rec.test_accuracy = correct.back().to(torch::kFloat64).mean().item<double>();
    rec.train_seconds = result.train_seconds;
    rec.epochs = static_cast<int64_t>(result.epochs.size());
    rec.epoch_seconds = rec.epochs > 0 ? result.train_seconds / rec.epochs : 0;
    train_total += result.total_seconds;
    ev.probes.push_back(rec);
    reporter.event({{"event", "probe_done"},
                    {"index", i},
                    {"config_id", id},
                    {"test_accuracy", rec.test_accuracy},
                    {"train_seconds", rec.train_seconds}});
    if (i + 1 == configs.size()) {
      // The upper probe's intermediate layer is the feature space of the map.
      auto start = std::chrono::steady_clock::now();
      reporter.progress("features", 0, 2);
      ev.test_features = trainer.features(*model, test).to(torch::kFloat32).contiguous();
      reporter.progress("features", 1, 2);
      ev.train_features = trainer.features(*model, train).to(torch::kFloat32).contiguous();
      reporter.progress("features", 2, 2);
      feature_total = seconds_since(start);
    }
  }
  ev.correct = torch::stack(correct);
  ev.stage_seconds = {{"probes", train_total}, {"features", feature_total}};

  std::ostringstream buffer;
  torch::save(
      std::vector<torch::Tensor>{ev.correct.to(torch::kUInt8), ev.train_features, ev.test_features},
      buffer);
  const std::string bytes = buffer.str();
  atomic_write(dir / kEvidenceFile, bytes);
  json probes = json::array();
  for (const auto& p : ev.probes) probes.push_back(probe_to_json(p));
  json meta{{"key", key},
            {"train_fingerprint", train_fingerprint},
            {"test_fingerprint", test_fingerprint},
            {"space", space.name()},
            {"space_hash", space.content_hash()},
            {"chooser", chooser.name()},
            {"epochs", topt.epochs},
            {"seed", options.seed},
            {"training_seed", topt.seed},
            {"tool_version", kVersion},
            {"probes", probes},
            {"evidence_sha256", sha256_hex(bytes)},
            {"stage_seconds", ev.stage_seconds}};
  atomic_write(dir / kProbesFile, meta.dump(2) + "\n");
  return ev;
}

}  // namespace dataproxy
