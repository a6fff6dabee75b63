#include <chrono>
#include <ctime>
#include <iomanip>
#include <memory>
#include <sstream>

#include "dataproxy/clock.h"
#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/proxy.h"
#include "dataproxy/version.h"

namespace dataproxy {
namespace {

json probe_settings(const SearchSpace& space, const ProbeOptions& probes,
                    const ProbeChooser& chooser) {
  return json{{"count", probes.count},
              {"chooser", chooser.name()},
              {"epochs", probes.epochs > 0 ? probes.epochs : space.training().epochs},
              {"seed", probes.seed}};
}

void report_summary(const Manifest& m, bool cache_hit, Reporter& reporter) {
  std::ostringstream os;
  os << "proxy " << m.key.substr(0, 12) << (cache_hit ? " (cached)" : "") << ": " << m.method
     << ", ratio " << m.ratio << ", " << m.indices.size() << " of " << m.train_size
     << " train samples, " << m.proxy_num_classes() << " of " << m.num_classes << " classes";
  os << "\n  selection split " << m.selection.split << ": " << m.selection.selection.size()
     << " test samples chose the proxy, " << m.selection.evaluation.size() << " rank candidates";
  if (m.selection.split == "paper-test") {
    os << " (the same samples: candidates are ranked on the samples that chose the proxy)";
  }
  if (!m.case_counts.empty()) os << "\n  cases " << m.case_counts.dump();
  for (const auto& p : m.probes) {
    os << "\n  probe " << p.config_id << ": " << p.macs << " MACs, ranking accuracy " << std::fixed
       << std::setprecision(4) << p.test_accuracy << ", " << std::setprecision(1) << p.train_seconds
       << " s" << std::defaultfloat;
  }
  os << "\n  per class " << json(m.class_counts).dump();
  os << "\n  stage seconds " << m.stage_seconds.dump();
  reporter.message(os.str());
  reporter.event({{"event", "proxy_summary"},
                  {"key", m.key},
                  {"cache_hit", cache_hit},
                  {"size", m.indices.size()},
                  {"case_counts", m.case_counts},
                  {"class_counts", m.class_counts},
                  {"stage_seconds", m.stage_seconds}});
}

}  // namespace

GenerateResult generate_proxy(const ProxyOptions& options, Reporter& reporter) {
  SearchSpace space = SearchSpace::load(options.space);
  DATAPROXY_CHECK(!options.dataset.empty(), InvalidInput,
                  "no dataset given; pass --dataset (one of the names `dataproxy fetch-data` "
                  "knows, e.g. cifar10)");
  DATAPROXY_CHECK(options.ratio > 0 && options.ratio <= 1, InvalidInput,
                  "ratio " << options.ratio
                           << " is outside (0, 1]: give the fraction of the training set to "
                              "keep, e.g. --ratio 0.1 for 10%");
  reporter.progress("load data", 0, 1);
  DatasetSplits data = load_dataset(options.dataset, options.data_root, options.load_options);
  reporter.progress("load data", 1, 1);
  return generate_proxy(options, space, data, reporter);
}

GenerateResult generate_proxy(const ProxyOptions& options, const SearchSpace& space,
                              const DatasetSplits& data, Reporter& reporter) {
  const Dataset& train = data.train;
  const Dataset& test = data.test;
  std::shared_ptr<const SelectionMethod> method = options.method;
  if (!method) method = make_importance(ImportanceOptions{});
  std::shared_ptr<const ProbeChooser> chooser_ptr = options.probe_chooser;
  if (!chooser_ptr) chooser_ptr = std::make_shared<MacsProbeChooser>();
  const ProbeChooser& chooser = *chooser_ptr;
  const TestSplit split = split_test_samples(test.labels, options.selection, options.seed);
  const int64_t count = proxy_size(options.ratio, train.size());
  if (options.label_reduction != 0) {
    DATAPROXY_CHECK(options.label_reduction >= options.ratio && options.label_reduction <= 1,
                    InvalidInput,
                    "--label-reduction " << options.label_reduction
                                         << " must lie in [ratio, 1] (ratio is " << options.ratio
                                         << "): it is the fraction of the data the kept classes "
                                            "hold before sampling, e.g. 0.2 for a 0.1 proxy");
  }
  const bool with_probes = method->needs_probes() || options.record_probes;

  auto start = std::chrono::steady_clock::now();
  Manifest m;
  m.tool_version = kVersion;
  m.dataset = options.dataset.empty() ? train.name : options.dataset;
  m.train_fingerprint = fingerprint(train);
  m.test_fingerprint = fingerprint(test);
  m.train_size = train.size();
  m.test_size = test.size();
  m.num_classes = train.num_classes;
  m.load_options = options.load_options;
  m.space_name = space.name();
  m.space_hash = space.content_hash();
  m.method = method->name();
  m.settings = method->settings();
  m.settings["label_reduction"] = options.label_reduction;
  if (with_probes) m.settings["probes"] = probe_settings(space, options.probes, chooser);
  m.ratio = options.ratio;
  m.seed = options.seed;
  m.selection.split = options.selection.split;
  m.selection.fraction = options.selection.split == "paper-test" ? 1.0 : options.selection.fraction;
  m.selection.seed =
      options.selection.seed >= 0 ? static_cast<uint64_t>(options.selection.seed) : options.seed;
  m.selection.selection = split.selection;
  m.selection.evaluation = split.evaluation;
  m.key = manifest_key(m);
  const double fingerprint_seconds = seconds_since(start);

  const fs::path cache = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
  const fs::path dir = proxy_dir(cache, m.key);
  reporter.event({{"event", "proxy_key"}, {"key", m.key}, {"dir", dir.string()}});
  // A cache that cannot be written (read-only) still serves the proxies it holds: an entry's
  // manifest.json is written last and atomically, so a present one is whole without the lock.
  std::unique_ptr<FileLock> lock;
  std::string unwritable;
  try {
    fs::create_directories(proxies_dir(cache));
    lock = std::make_unique<FileLock>(proxy_lock_file(cache, m.key));
  } catch (const std::exception& e) {
    unwritable = e.what();
  }

  GenerateResult result;
  result.path = fs::absolute(proxy_manifest_file(cache, m.key));
  std::error_code ec;
  if (!options.rebuild && fs::exists(result.path, ec)) {
    result.manifest = load_manifest(result.path);
    result.cache_hit = true;
    result.probes_from_cache = true;
    report_summary(result.manifest, true, reporter);
    return result;
  }
  DATAPROXY_CHECK(lock, RuntimeFailure,
                  "the cache folder " << cache.string() << " cannot be written (" << unwritable
                                      << ") and holds no proxy " << m.key.substr(0, 12)
                                      << (options.rebuild ? " that --rebuild could replace" : "")
                                      << "; point --cache at a writable folder (a read-only "
                                         "cache serves only the proxies already in it)");

  m.stage_seconds = {{"fingerprint", fingerprint_seconds}};
  ProbeEvidence evidence;
  ProbeEvidence selection_evidence;
  if (with_probes) {
    ProbeOptions popt = options.probes;
    if (popt.cache_dir.empty()) popt.cache_dir = probes_dir(cache);
    evidence = obtain_probe_evidence(space, data, m.train_fingerprint, m.test_fingerprint, popt,
                                     chooser, reporter);
    result.probes_from_cache = evidence.from_cache;
    result.probes_trained = evidence.from_cache ? 0 : static_cast<int64_t>(evidence.probes.size());
    m.stage_seconds.update(evidence.stage_seconds);
    // Probes are full-data runs: scored, like candidates, on the ranking samples.
    selection_evidence = restrict_evidence(evidence, split.selection);
    const ProbeEvidence ranking = restrict_evidence(evidence, split.evaluation);
    m.probes = ranking.probes;
    for (std::size_t i = 0; i < m.probes.size(); ++i) {
      m.probes[i].selection_accuracy = selection_evidence.probes[i].test_accuracy;
    }
    m.summary["probes_from_cache"] = evidence.from_cache;
    if (!method->needs_probes()) {
      std::vector<double> acc;
      for (const auto& p : selection_evidence.probes) acc.push_back(p.test_accuracy);
      m.case_counts =
          compute_importance(selection_evidence.correct, acc, CaseWeights{}).case_counts;
    }
  }

  const Dataset selection_set = subset(test, torch::tensor(split.selection, torch::kInt64));
  SelectionContext ctx{train, selection_set, with_probes ? &selection_evidence : nullptr, reporter,
                       options.seed};
  json summary = json::object();
  torch::Tensor importance = method->score(ctx, summary, m.stage_seconds);
  if (summary.contains("case_counts")) {
    m.case_counts = summary["case_counts"];
    summary.erase("case_counts");
  }
  m.summary.update(summary);

  start = std::chrono::steady_clock::now();
  torch::Tensor labels = train.labels.to(torch::kInt64);
  if (options.label_reduction > 0) {
    m.kept_classes =
        reduce_labels(importance, labels, train.num_classes, options.label_reduction, options.seed);
  } else {
    for (int64_t c = 0; c < train.num_classes; ++c) m.kept_classes.push_back(c);
  }
  m.label_remap = label_remap(m.kept_classes, train.num_classes);
  torch::Tensor candidates =
      torch::tensor(m.label_remap, torch::kInt64).index_select(0, labels).ge(0);
  torch::Tensor picked = method->draw(ctx, importance, candidates, count);
  DATAPROXY_CHECK(picked.size(0) == count, RuntimeFailure,
                  "method '" << m.method << "' picked " << picked.size(0) << " samples instead of "
                             << count << " (a bug in the method; please report it)");
  m.stage_seconds["sampling"] = seconds_since(start);
  m.indices.assign(picked.data_ptr<int64_t>(), picked.data_ptr<int64_t>() + picked.size(0));
  torch::Tensor per_class = torch::bincount(labels.index_select(0, picked), {}, train.num_classes);
  m.class_counts.assign(per_class.data_ptr<int64_t>(),
                        per_class.data_ptr<int64_t>() + per_class.size(0));
  const torch::Tensor sel_importance = importance.index_select(0, picked);
  m.summary["selected_importance_mean"] = sel_importance.mean().item<double>();
  m.summary["importance_mean"] = importance.mean().item<double>();
  m.created = utc_now();

  save_manifest(m, dir);
  result.manifest = load_manifest(dir);
  report_summary(result.manifest, false, reporter);
  return result;
}

}  // namespace dataproxy
