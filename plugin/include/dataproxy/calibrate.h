// Calibration: on the user's own data and search space, which proxy keeps the ranking. A few
// candidates spread over the space by MACs are trained on the full data and on each proxy
// choice; each choice is scored against the full-data ranking, and the cheapest one whose lower
// bound meets the target is recommended, before the search spends anything.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dataproxy/dataset.h"
#include "dataproxy/progress.h"
#include "dataproxy/proxy.h"
#include "dataproxy/trainer.h"

namespace dataproxy {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// One proxy a search could train on.
struct ProxyChoice {
  std::string method = "importance";  ///< a name from selection_methods()
  double ratio = 0.05;                ///< fraction of the train split, in (0, 1]
  /// Proxy training as a multiple of the space's epochs, > 0: whole epochs where that comes to
  /// a whole number, else as many optimizer steps (random:1:0.05 is the full data for 5% of the
  /// space's steps).
  double length = 1;
  /// e.g. "importance:0.05:1" (method:ratio:length; length may be left out).
  std::string name() const;
  /// Parses name()'s form; throws InvalidInput saying what is wrong.
  static ProxyChoice parse(const std::string& text);
};

/// The default choices: importance and random at 10%, 5% and 2%, at the space's length and 2x,
/// and the full data for 10%, 5% and 2% of the space's steps (random:1:0.1 and so on).
std::vector<ProxyChoice> default_proxy_choices();

/// Everything calibrate() needs; `dataproxy calibrate` flags map one to one onto these fields.
struct CalibrateOptions {
  fs::path space;                    ///< search-space YAML
  std::string dataset;               ///< name for load_dataset()
  fs::path data_root;                ///< folder for load_dataset()
  LoadOptions load_options;          ///< slice of the data
  std::vector<ProxyChoice> choices;  ///< empty = default_proxy_choices()
  int64_t candidates = 6;            ///< calibration candidates, the probes included; >= 4
  int64_t seeds = 3;                 ///< proxy seeds per choice (sampling and training); >= 1
  double target = 0.9;               ///< Spearman a choice's lower bound must reach, in (-1, 1]
  double confidence = 0.9;           ///< two-sided level of the interval whose low end is the bound
  /// Trials the search is expected to run; sizes the budget. 0 = no budget (plan as given).
  int64_t expected_trials = 0;
  /// Share of the full-data search of expected_trials that calibration may spend, in (0, 1].
  double budget_share = 0.1;
  ImportanceOptions importance;     ///< settings of "importance" choices
  ProbeOptions probes;              ///< probe training (the first two candidates)
  SelectionSplitOptions selection;  ///< one split for every choice: candidates rank on one set
  uint64_t seed = 0;                ///< split seed (unless selection.seed), first proxy seed
  TrainOptions train;               ///< device, threads, memory format of every training
  fs::path cache_dir;               ///< cache root; empty = default_cache_dir()
  fs::path results;  ///< results store that receives the full-data runs as spot checks
  fs::path out;      ///< folder for calibration.json; empty = not written
};

/// How one choice ranked the calibration candidates.
struct ChoiceScore {
  ProxyChoice choice;
  std::vector<double> spearman;   ///< per seed (NaN where undefined)
  std::vector<double> kendall;    ///< per seed
  std::vector<double> agreement;  ///< per seed: pairs ordered as on the full data
  double spearman_mean = 0;
  double spearman_low = 0;  ///< interval over candidates and seeds (bootstrap)
  double spearman_high = 0;
  double kendall_mean = 0;
  double agreement_mean = 0;
  bool defined = false;  ///< false when every seed's Spearman is undefined
  /// Compute of one proxy trial in full-data trials of the same candidate (ratio x length).
  int64_t epochs = 0;  ///< proxy training epochs (full_epochs x length, at least 1)
  int64_t steps = 0;   ///< optimizer steps when the length is not whole epochs; 0 = by epochs
  double cost_per_trial = 0;
  /// One-off compute in mean full-data trials: the probes, for methods that need them.
  double fixed_cost = 0;
  /// fixed_cost + expected trials x cost_per_trial (100 trials when none were given).
  double search_cost = 0;
  bool meets_target = false;
  std::vector<std::string> manifests;  ///< one per seed
};

/// What calibrate() found and spent.
struct CalibrationResult {
  std::vector<std::string> candidate_ids;  ///< lightest first
  std::vector<int64_t> candidate_macs;
  std::vector<double> full_accuracy;       ///< per candidate, on the evaluation split
  std::vector<ChoiceScore> scores;         ///< in plan order
  std::optional<std::size_t> recommended;  ///< cheapest choice meeting the target
  std::size_t best = 0;                    ///< highest mean Spearman
  int64_t seeds = 0;                       ///< seeds used (the budget may lower them)
  int64_t trained = 0;                     ///< trainings run by this call (0 on a cached rerun)
  double seconds = 0;                      ///< training seconds spent by this call
  double planned_cost = 0;                 ///< the plan's compute in mean full-data trials
  double budget = 0;                    ///< what the budget allowed in the same unit; 0 = no budget
  std::vector<std::string> plan_notes;  ///< how the plan was cut to fit the budget
  uint64_t selection_seed = 0;          ///< the split every choice and the search must share
  int64_t full_epochs = 0;              ///< epochs of the full-data runs (the lengths' base)
  json to_json() const;
};

/// Runs the calibration (cached: a rerun with the same inputs trains nothing). Throws
/// InvalidInput for bad options, a space with fewer configurations than candidates, or a
/// budget that cannot buy the smallest plan.
CalibrationResult calibrate(const CalibrateOptions& options, Reporter& reporter = null_reporter());

/// The printed table and verdict of a result.
std::string format_calibration(const CalibrationResult& result, double target);

}  // namespace dataproxy
