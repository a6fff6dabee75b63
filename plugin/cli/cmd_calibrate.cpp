// `dataproxy calibrate`: measures, on the user's data and space, which proxy keeps the ranking,
// prints a table and a recommendation, and writes calibration.json. The last line on stdout is
// {"event":"calibration",...} with the recommended choice (null when none meets the target).
#include <boost/program_options.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "command.h"
#include "dataproxy/calibrate.h"
#include "dataproxy/error.h"
#include "dataproxy/progress.h"
#include "dataproxy/trainer.h"

namespace dataproxy::cli {
namespace {

namespace po = boost::program_options;

int run_calibrate(const std::vector<std::string>& args) {
  CalibrateOptions o;
  std::string space, data_root, cache, results, out, report = "auto", memory_format = "auto";
  std::vector<std::string> choices;
  int threads = 0;
  po::options_description desc(
      "usage: dataproxy calibrate --space YAML --dataset NAME --data-root DIR [options]\n"
      "Trains a few candidates spread over the space by MACs on the full data and on each proxy\n"
      "choice, scores every choice against the full-data ranking, and recommends the cheapest\n"
      "one whose lower bound meets --target. Cached: a rerun trains nothing.\noptions");
  desc.add_options()("help,h", "this help")("space", po::value(&space)->required(),
                                            "search-space YAML")(
      "dataset", po::value(&o.dataset)->required(), "dataset name, e.g. fashion-mnist")(
      "data-root", po::value(&data_root)->required(), "folder holding the dataset")(
      "image-size", po::value(&o.load_options.image_size)->default_value(0),
      "resize every image to N x N pixels; 0 = keep (folder: the most common size)")(
      "max-train", po::value(&o.load_options.max_train)->default_value(0),
      "use only the first N train samples; 0 = all")(
      "max-test", po::value(&o.load_options.max_test)->default_value(0),
      "use only the first N test samples; 0 = all")(
      "any-size", "accept dataset files with other than the official sample counts")(
      "choice", po::value(&choices)->composing(),
      "a proxy choice METHOD:RATIO[:LENGTH] (LENGTH = training as a multiple of the space's "
      "epochs, as optimizer steps when not whole epochs: random:1:0.05 is the full data for 5% "
      "of the steps); "
      "repeat; default: importance and random at 0.1, 0.05, 0.02, lengths 1 and 2, and "
      "random:1:0.1, random:1:0.05, random:1:0.02")(
      "candidates", po::value(&o.candidates)->default_value(o.candidates),
      "calibration candidates, the two probes included (>= 4)")(
      "seeds", po::value(&o.seeds)->default_value(o.seeds), "proxy seeds per choice")(
      "target", po::value(&o.target)->default_value(o.target, "0.9"),
      "Spearman the lower bound must reach, in (-1, 1]")(
      "confidence", po::value(&o.confidence)->default_value(o.confidence, "0.9"),
      "two-sided level of the interval whose low end is the bound")(
      "expected-trials", po::value(&o.expected_trials)->default_value(0),
      "trials the search will run: calibration stays within --budget-share of their full-data "
      "cost; 0 = no budget")("budget-share",
                             po::value(&o.budget_share)->default_value(o.budget_share, "0.1"),
                             "share of the full-data search calibration may spend")(
      "epochs", po::value(&o.train.epochs)->default_value(0),
      "full-data epochs (and the base of each choice's length); 0 = the space's")(
      "probe-epochs", po::value(&o.probes.epochs)->default_value(0),
      "probe training epochs; 0 = --epochs, else the space's (keep it so: the probes are "
      "calibration candidates too)")("probe-seed", po::value(&o.probes.seed)->default_value(0),
                                     "probe training seed")(
      "selection-split", po::value(&o.selection.split)->default_value(o.selection.split),
      "half-test or paper-test (see dataproxy generate --help)")(
      "selection-fraction", po::value(&o.selection.fraction)->default_value(o.selection.fraction),
      "share of the test split used for selection")("seed", po::value(&o.seed)->default_value(0),
                                                    "split seed and first proxy seed")(
      "cache", po::value(&cache), "cache root (default: $DATAPROXY_CACHE or ~/.cache/dataproxy)")(
      "results", po::value(&results),
      "results store (folder or .jsonl) that receives the full-data runs as spot checks")(
      "out", po::value(&out), "folder for calibration.json")(
      "device", po::value(&o.train.device)->default_value("auto"), "auto, cpu, cuda or cuda:N")(
      "threads", po::value(&threads)->default_value(0), "CPU threads; 0 = all cores")(
      "memory-format", po::value(&memory_format)->default_value(memory_format),
      "auto, channels-last or contiguous")("report", po::value(&report)->default_value(report),
                                           "auto, bar, jsonl or quiet");
  po::variables_map vm;
  if (!parse_options(args, desc, "calibrate", vm)) return 0;
  o.space = space;
  o.data_root = data_root;
  o.cache_dir = cache;
  o.results = results;
  o.out = out;
  o.load_options.official_sizes = vm.count("any-size") == 0;
  for (const auto& c : choices) o.choices.push_back(ProxyChoice::parse(c));
  o.train.threads = configure_threads(threads);
  o.train.memory_format = parse_memory_format(memory_format);
  o.probes.device = o.train.device;
  o.probes.threads = o.train.threads;
  o.importance.knn.threads = o.train.threads;
  auto reporter = make_reporter(parse_report_mode(report), &std::cerr);

  const CalibrationResult r = calibrate(o, *reporter);
  std::cerr << format_calibration(r, o.target);
  json line{
      {"event", "calibration"},
      {"recommended", r.recommended ? json(r.scores[*r.recommended].choice.name()) : json(nullptr)},
      {"best", r.scores.empty() ? json(nullptr) : json(r.scores[r.best].choice.name())},
      {"trained", r.trained},
      {"seconds", r.seconds},
      {"selection_seed", r.selection_seed},
      {"out", o.out.empty() ? json(nullptr) : json((o.out / "calibration.json").string())}};
  std::cout << line.dump() << std::endl;
  return 0;
}

}  // namespace
DATAPROXY_REGISTER_COMMAND(calibrate, {"calibrate",
                                       "measure which proxy keeps the ranking on your data and "
                                       "space, and recommend one",
                                       run_calibrate});
}  // namespace dataproxy::cli
