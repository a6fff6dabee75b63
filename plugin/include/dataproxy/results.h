// The results store: one JSON line per trial, appended under a lock by trial runners.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dataproxy {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// Where a trial's wall time went, in seconds (serialised as "timing"). The phases follow one
/// another; `total` minus their sum is the rest (building models, uploading data).
struct TrialTiming {
  double startup = 0;  ///< process start (from /proc when known, else main()) to data loading
  double data = 0;     ///< loading the dataset and cutting the proxy and ranking splits
  double train = 0;    ///< training, evaluation excluded (proxy and full-data phases)
  double eval = 0;     ///< evaluation after epochs and at the end
  double write = 0;    ///< recording and reporting before this record was appended
  double total = 0;    ///< process start to the record's append
  /// Test samples evaluated after each epoch but the last (0: the whole split each epoch).
  int64_t eval_subset = 0;
  int64_t eval_final = 0;  ///< test samples behind the final accuracy (the whole ranking split)

  json to_json() const;
  static TrialTiming from_json(const json& j);
};

/// One candidate's outcome. Serialised with the field names below (schema "dataproxy.result/1").
struct TrialRecord {
  std::string trial_id;                 ///< framework's id (NNI trial job id, Optuna number...)
  std::optional<int64_t> parameter_id;  ///< NNI parameter_id when NNI started the trial
  std::string framework;                ///< "nni", "optuna", "standalone", "benchmark", "probe"
  json config = json::object();
  std::string config_id;
  std::string status = "complete";  ///< "complete", "pruned", "failed", "interrupted"
  std::optional<double> proxy_accuracy;
  std::optional<double> full_accuracy;  ///< set for spot checks (and probes)
  bool spot_check = false;
  std::vector<double> proxy_curve;  ///< test accuracy per proxy epoch
  double proxy_seconds = 0;         ///< proxy training time
  double full_seconds = 0;          ///< full-data training time (spot checks)
  int64_t macs = 0;
  int64_t params = 0;
  std::string device;
  std::string manifest_key;
  std::string finished;               ///< ISO 8601 UTC
  std::optional<TrialTiming> timing;  ///< wall-time split; absent in records of older versions
  json extra = json::object();

  json to_json() const;
  static TrialRecord from_json(const json& j);
};

/// Results of one experiment: `<dir>/results.jsonl`, one record a line, appended under a lock.
class ResultsStore {
 public:
  /// `path` is the experiment folder or a .jsonl file.
  explicit ResultsStore(const fs::path& path);
  void append(const TrialRecord& record) const;
  /// All records; a torn last line (a killed writer) is skipped, any other bad line throws
  /// DataError naming the line.
  std::vector<TrialRecord> load() const;
  const fs::path& file() const { return file_; }

 private:
  fs::path file_;
};

/// Current time as ISO 8601 UTC, e.g. "2026-11-27T20:26:25Z".
std::string utc_now();

}  // namespace dataproxy
