// The results store: one JSON line per trial, appended under a lock by trial runners.
#pragma once

#include <nlohmann/json.hpp>

#include "dataproxy/clock.h"

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
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

/// How a candidate was trained (serialised as "training"). Zero or empty: not known (older
/// records, or a caller that does not train).
struct TrainingInfo {
  /// Epochs of a full-data run (the space's or the caller's); in step mode, the epochs the last
  /// phase's steps spanned.
  int64_t epochs = 0;
  int64_t proxy_epochs = 0;        ///< epochs of the proxy phase; 0 = no proxy phase
  int64_t steps = 0;               ///< optimizer steps of the last phase trained
  int64_t samples_seen = 0;        ///< training images of the last phase (steps x batch)
  uint64_t seed = 0;               ///< seed of the weights, shuffling and augmentation
  int threads = 0;                 ///< CPU threads in force
  std::string memory_format;       ///< "channels-last" or "contiguous": the layout used
  std::string tool_version;        ///< dataproxy version that trained it
  std::vector<double> full_curve;  ///< test accuracy of the evaluated full-data epochs

  json to_json() const;
  static TrainingInfo from_json(const json& j);
};

/// What a candidate was trained and evaluated on (serialised as "data"). Zero or empty: not
/// known. The sizes are those of the last phase trained.
struct DataInfo {
  std::string dataset;        ///< load_dataset() name
  std::string space;          ///< the search space's name
  std::string space_file;     ///< the search-space YAML as given
  std::string space_hash;     ///< SearchSpace::content_hash()
  std::string manifest;       ///< the proxy's manifest.json (its key is TrialRecord::manifest_key)
  std::string method;         ///< the proxy's selection method
  double ratio = 0;           ///< the proxy's fraction of the training data
  int64_t sampling_seed = 0;  ///< the proxy's seed
  int64_t max_train = 0;      ///< first N training samples loaded; 0 = all
  int64_t max_test = 0;       ///< first N test samples loaded; 0 = all
  int64_t train_size = 0;     ///< samples trained on
  int64_t test_size = 0;      ///< samples behind the final accuracy
  int64_t num_classes = 0;    ///< the network's outputs

  json to_json() const;
  static DataInfo from_json(const json& j);
};

/// Per-test-sample correctness of the final evaluation (serialised as "correct").
struct Correctness {
  std::string on;    ///< "test" (the full data's test split) or "evaluation" (a proxy's)
  std::string bits;  ///< base64 of the bits, first sample in the highest bit (numpy.packbits)
};

/// Why a trial failed (serialised as "error").
struct TrialError {
  std::string message;
  std::string phase;  ///< "data", "proxy", "full" or "report"
};

/// The NNI trial that produced a record (serialised as "nni").
struct NniTrial {
  std::string experiment_id;
  std::string trial_job_id;
  std::string seq_id;
};

/// One candidate's outcome. Serialised with the field names below (schema "dataproxy.result/2";
/// records of "dataproxy.result/1", whose untyped "extra" object held the groups below under
/// flat keys, load into the same fields).
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
  TrainingInfo training;
  DataInfo data;
  std::optional<Correctness> correct;  ///< when asked for (`dataproxy evaluate --record-correct`)
  std::optional<TrialError> error;     ///< status "failed" only
  std::optional<NniTrial> nni;         ///< when NNI started the trial
  bool calibration = false;            ///< a full-data run of `dataproxy calibrate`
  bool probe = false;                  ///< with `calibration`: the run is one of the probes

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

/// What pairing needs of a proxy's manifest: its key and its probes' full-data accuracies.
struct PairingManifest {
  std::string key;  ///< empty: every record's proxy accuracy counts, whatever its manifest
  std::vector<std::pair<std::string, double>> probes;  ///< (config_id, full-data accuracy)
};

/// One configuration with both accuracies.
struct CandidatePair {
  std::string config_id;
  double proxy = 0;              ///< mean over its complete proxy trainings on the manifest
  double full = 0;               ///< mean over its complete full-data trainings, else its probe's
  int64_t proxy_runs = 0;        ///< records behind `proxy`
  int64_t full_runs = 0;         ///< records behind `full`; 0 when it came from a probe
  bool full_from_probe = false;  ///< no full-data training was recorded: the probe's accuracy
};

/// The configurations whose accuracy is known both on the proxy and on the full data, by
/// config_id: the points of every proxy-vs-full correlation (the trial runner's running one
/// and the report's). Only "complete" records with a config_id count (pruned, failed and
/// interrupted ones do not). A proxy accuracy counts when the record was trained on
/// `manifest.key`; a full-data accuracy (a spot check, a probe or calibration run, `dataproxy
/// evaluate` on the full data) counts whatever proxy the record names, since the full data do
/// not depend on it. Repeats are averaged. A configuration with no full-data record takes its
/// probe's accuracy from the manifest. Sorted by config_id.
std::vector<CandidatePair> pair_candidates(const std::vector<TrialRecord>& records,
                                           const PairingManifest& manifest);

}  // namespace dataproxy
