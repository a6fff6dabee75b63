// `dataproxy generate`: builds a data proxy (or finds it in the cache) and prints, as the last
// line on stdout, {"event":"manifest","path":...,"key":...,"cache_hit":...}.
#include <boost/program_options.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "command.h"
#include "dataproxy/error.h"
#include "dataproxy/progress.h"
#include "dataproxy/proxy.h"
#include "dataproxy/trainer.h"

namespace dataproxy::cli {
namespace {

namespace po = boost::program_options;

int run_generate(const std::vector<std::string>& args) {
  ProxyOptions o;
  std::string space, data_root, cache, weights = "2,1,6,1", report = "auto";
  std::string method = selection_methods().front().name, draw = "per-class";
  ImportanceOptions importance;
  int threads = 0;
  po::options_description desc(
      "usage: dataproxy generate --space YAML --dataset NAME --data-root DIR --ratio R [options]\n"
      "Builds a data proxy (Park 2021, Algorithm 1) or finds it in the cache. The last line on\n"
      "stdout is {\"event\":\"manifest\",\"path\":...,\"key\":...,\"cache_hit\":...}.\noptions");
  desc.add_options()("help,h", "this help")("space", po::value(&space)->required(),
                                            "search-space YAML (drives the probe choice)")(
      "dataset", po::value(&o.dataset)->required(),
      "dataset name, e.g. cifar10, fashion-mnist, or your own data: folder, npz, idx")(
      "data-root", po::value(&data_root)->required(),
      "folder holding the dataset (npz: the .npz file)")(
      "image-size", po::value(&o.load_options.image_size)->default_value(0),
      "resize every image to N x N pixels; 0 = keep (folder: the most common size)")(
      "ratio", po::value(&o.ratio)->required(), "fraction of the train split to keep, in (0, 1]")(
      "method", po::value(&method)->default_value(method),
      "selection method: importance, random or stratified (`dataproxy methods` lists them)")(
      "draw", po::value(&draw)->default_value(draw),
      "importance: per-class (each class keeps its share; the paper's section 4) or global")(
      "seed", po::value(&o.seed)->default_value(0),
      "sampling seed (also seeds the selection split)")(
      "selection-split", po::value(&o.selection.split)->default_value(o.selection.split),
      "half-test: a seeded half of the test split computes importance and the other half ranks "
      "the candidates; paper-test: the whole test split does both, as in the paper (leaks)")(
      "selection-fraction", po::value(&o.selection.fraction)->default_value(o.selection.fraction),
      "share of the test split used for selection (half-test)")(
      "selection-seed", po::value(&o.selection.seed)->default_value(-1),
      "seed of the selection split; -1 = --seed")(
      "cache", po::value(&cache), "cache root (default: $DATAPROXY_CACHE or ~/.cache/dataproxy)")(
      "max-train", po::value(&o.load_options.max_train)->default_value(0),
      "use only the first N train samples; 0 = all")(
      "max-test", po::value(&o.load_options.max_test)->default_value(0),
      "use only the first N test samples; 0 = all")(
      "any-size", "accept dataset files with other than the official sample counts")(
      "probes", po::value(&o.probes.count)->default_value(2),
      "probe networks: lightest, heaviest, and the rest spaced evenly by MACs")(
      "probe-epochs", po::value(&o.probes.epochs)->default_value(0),
      "probe training epochs; 0 = the space's")(
      "probe-seed", po::value(&o.probes.seed)->default_value(0),
      "probe training seed (changing --seed alone trains nothing)")(
      "with-probes", "train/load probes for the baselines too, to record their accuracies")(
      "weights", po::value(&weights)->default_value(weights),
      "importance of cases c1,c2,c3,c4 (all > 0)")(
      "pca-dim", po::value(&importance.pca_dim)->default_value(importance.pca_dim),
      "PCA components of the features; 0 = no PCA")(
      "pca-fit", po::value(&importance.pca_fit)->default_value(importance.pca_fit),
      "fit the PCA on the \"test\" samples or on \"all\"")(
      "knn-exact", "exact (brute-force) nearest neighbours instead of hnswlib")(
      "knn-ef", po::value(&importance.knn.ef_search)->default_value(importance.knn.ef_search),
      "hnswlib query candidate list (recall vs speed)")(
      "label-reduction", po::value(&o.label_reduction)->default_value(0),
      "keep the most important classes holding this fraction first (paper 3.3); 0 = off")(
      "class-floor", po::value(&importance.class_floor)->default_value(0),
      "at least N samples of each kept class; 0 = none")(
      "device", po::value(&o.probes.device)->default_value("auto"), "auto, cpu, cuda or cuda:N")(
      "threads", po::value(&threads)->default_value(0), "CPU threads; 0 = all cores")(
      "rebuild", "build again even when the cache holds a valid proxy")(
      "report", po::value(&report)->default_value("auto"), "auto, bar, jsonl or quiet");
  po::variables_map vm;
  if (!parse_options(args, desc, "generate", vm)) return 0;
  o.space = space;
  o.data_root = data_root;
  o.cache_dir = cache;
  o.load_options.cache_dir = cache;
  importance.weights = CaseWeights::parse(weights);
  importance.knn.exact = vm.count("knn-exact") > 0;
  importance.knn.threads = threads;
  importance.draw = parse_sample_draw(draw);
  o.method = make_selection_method(method, importance);
  o.load_options.official_sizes = vm.count("any-size") == 0;
  o.record_probes = vm.count("with-probes") > 0;
  o.rebuild = vm.count("rebuild") > 0;
  o.probes.threads = threads;
  configure_threads(threads);
  auto reporter = make_reporter(parse_report_mode(report));

  GenerateResult r = generate_proxy(o, *reporter);
  json line{{"event", "manifest"},
            {"path", r.path.string()},
            {"key", r.manifest.key},
            {"cache_hit", r.cache_hit},
            {"method", r.manifest.method},
            {"ratio", r.manifest.ratio},
            {"size", r.manifest.indices.size()},
            {"selection_split", r.manifest.selection.split},
            {"evaluation_size", r.manifest.selection.evaluation.size()},
            {"num_classes", r.manifest.proxy_num_classes()},
            {"probes_trained", r.probes_trained}};
  std::cout << line.dump() << std::endl;
  return 0;
}

int run_methods(const std::vector<std::string>& args) {
  po::options_description desc(
      "usage: dataproxy methods [--json]\nThe proxy selection methods, the default "
      "first.\noptions");
  desc.add_options()("help,h", "this help")("json", "one JSON list instead of a table");
  po::variables_map vm;
  if (!parse_options(args, desc, "methods", vm)) return 0;
  json list = json::array();
  for (const auto& m : selection_methods()) {
    list.push_back({{"name", m.name}, {"needs_probes", m.needs_probes}, {"summary", m.summary}});
  }
  if (vm.count("json")) {
    std::cout << list.dump() << std::endl;
  } else {
    for (const auto& m : selection_methods()) {
      std::cout << m.name << (m.needs_probes ? " (trains probes)" : "") << ": " << m.summary
                << "\n";
    }
  }
  return 0;
}

}  // namespace
DATAPROXY_REGISTER_COMMAND(methods, {"methods", "list the proxy selection methods", run_methods});
DATAPROXY_REGISTER_COMMAND(generate, {"generate", "build a data proxy (or find it in the cache)",
                                      run_generate});
}  // namespace dataproxy::cli
