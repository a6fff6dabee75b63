// One trial: a candidate configuration trained on a data proxy (and, for a spot check, on the
// full data), reported as JSON Lines, to NNI when NNI started it, and to the results store.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dataproxy/manifest.h"
#include "dataproxy/progress.h"
#include "dataproxy/results.h"
#include "dataproxy/search_space.h"
#include "dataproxy/stats.h"
#include "dataproxy/trainer.h"
#include "local_socket.h"

namespace dataproxy::trial {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// Key of the parameters that carries per-trial settings from a tuner, not a hyperparameter.
inline constexpr const char* kReservedKey = "_dataproxy";

/// Settings a tuner sends with the parameters under "_dataproxy".
struct ReservedSettings {
  std::optional<bool> spot_check;       ///< train on the full data too
  std::optional<fs::path> manifest;     ///< the proxy to train on
  std::optional<fs::path> results;      ///< the experiment's results folder
  std::optional<int64_t> proxy_epochs;  ///< proxy-phase epochs (a calibrated proxy length)
  /// Proxy-phase optimizer steps (a calibrated length that is not whole epochs).
  std::optional<int64_t> proxy_steps;
  std::optional<bool> serve;  ///< dataproxy-trial-client: use a trial server
};

/// Removes "_dataproxy" from `params` and parses it; throws InvalidInput for a value that is not
/// an object, an unknown key or a value of the wrong type.
ReservedSettings take_reserved(json& params);

/// Everything that decides a trial.
struct TrialOptions {
  fs::path manifest;   ///< manifest.json or its folder; empty: from the parameters' "_dataproxy"
  fs::path space;      ///< search-space YAML
  fs::path data_root;  ///< folder holding the datasets
  /// The candidate's parameters; nullopt: receive them from NNI's channel (NNI_PLATFORM set).
  std::optional<json> params;
  /// With `params`: the NNI parameter_id and trial they came with (a served NNI trial, whose
  /// client received them); nullopt: none, or from this process's NNI environment.
  std::optional<int64_t> parameter_id;
  std::optional<NniTrial> nni;
  bool spot_check = false;  ///< also train on the full data
  fs::path results;         ///< experiment folder (results.jsonl); empty: no store
  std::string trial_id;     ///< empty: NNI's trial job id, else "standalone-<pid>"
  std::string framework;    ///< "nni", "optuna", "standalone"; empty: from the source
  int64_t epochs = 0;       ///< 0 = the space's training epochs
  /// Epochs of the proxy phase only (a calibrated proxy length); 0 = `epochs`. Spot checks on
  /// the full data always train `epochs`.
  int64_t proxy_epochs = 0;
  /// Optimizer steps of the proxy phase, the learning-rate schedule spanning them (a calibrated
  /// length that is not whole epochs, e.g. the full data for 5% of the steps); 0 = by epochs.
  /// Wins over proxy_epochs.
  int64_t proxy_steps = 0;
  std::string device = "auto";                       ///< "auto", "cpu", "cuda" or "cuda:N"
  int threads = 0;                                   ///< CPU threads; 0 = all cores
  MemoryFormat memory_format = MemoryFormat::kAuto;  ///< layout of activations and weights
  /// Test samples evaluated after each epoch but the last (TrainOptions::eval_subset);
  /// 0 = the whole split every epoch.
  int64_t eval_subset = 1000;
  /// Seconds from the process's start to main() (process_start_seconds()); 0 when unknown.
  double startup_seconds = 0;
  /// When main() began; the default (the clock's epoch) means "when run_trial() began".
  std::chrono::steady_clock::time_point main_started{};
  uint64_t seed = 0;                          ///< initial weights, shuffling, augmentation
  ReportMode report = ReportMode::automatic;  ///< progress on stderr; quiet drops stdout events
  double parameter_timeout_s = 600;           ///< longest wait for NNI's parameters
};

/// Proxy and full-data accuracy pairs of one proxy: one point per configuration whose full-data
/// accuracy is known (spot checks, else a probe), with its mean proxy accuracy over complete
/// trials of that manifest.
struct SpotCheckSummary {
  std::vector<std::string> config_ids;
  std::vector<double> proxy;
  std::vector<double> full;
  Correlation spearman;
  Correlation kendall;
  int64_t probes_used = 0;  ///< points whose full accuracy came from a probe
};

/// pair_candidates() of `records` against `manifest`, correlated: the tuner's running view,
/// the same pairs as the report's.
SpotCheckSummary summarize_spot_checks(const std::vector<TrialRecord>& records,
                                       const Manifest& manifest);

/// What stays in memory from one trial to the next in one process: the search space, the last
/// manifest used, and its data (the decoded splits and the proxy and ranking sets cut from them).
class TrialSession {
 public:
  struct Loaded;
  explicit TrialSession(const fs::path& space_file);
  ~TrialSession();
  TrialSession(const TrialSession&) = delete;
  TrialSession& operator=(const TrialSession&) = delete;

  const SearchSpace& space() const { return space_; }
  /// The manifest at `path` (a manifest.json or its folder), loaded unless it is the last one;
  /// throws InvalidInput when it was built for another space.
  const Manifest& manifest(const fs::path& path);
  /// Whether the last manifest's data are in memory.
  bool data_loaded() const;
  /// Loads the last manifest's data from `data_root` unless they are in memory.
  void load_data(const fs::path& data_root);
  const Loaded& loaded() const { return *loaded_; }

 private:
  fs::path space_file_;
  SearchSpace space_;
  std::unique_ptr<Loaded> loaded_;
};

/// Runs one trial. Events go to `out` as JSON Lines; `stop` is set by the signal handler, and
/// `pruned` (optional) with it when the stop is a tuner's pruning decision.
/// Returns the exit code (0 done or pruned, 130 interrupted); throws dataproxy::Error on failure.
int run_trial(const TrialOptions& options, const std::atomic<bool>& stop, std::ostream& out,
              const std::atomic<bool>* pruned = nullptr);
/// The same, reusing what `session` holds (options.space must be the session's space file).
int run_trial(TrialSession& session, const TrialOptions& options, const std::atomic<bool>& stop,
              std::ostream& out, const std::atomic<bool>* pruned = nullptr);

/// Flags of the server: the process's own settings, which requests cannot change.
struct ServeFlags {
  /// Set by SIGINT/SIGTERM: finish the current candidate as interrupted, then stop serving.
  const std::atomic<bool>* shutdown = nullptr;
  /// Set while a candidate trains; a shutdown signal while idle may end the process at once.
  std::atomic<bool>* busy = nullptr;
};

/// `dataproxy-trial --serve`: trains candidate after candidate in this process. Each line of
/// `in` is one request, a JSON object: "params" (required: the candidate's parameters, with
/// "_dataproxy" as from a tuner) and optional per-trial settings "trial_id", "framework",
/// "spot_check", "epochs", "proxy_epochs", "proxy_steps", "seed", "eval_subset", "manifest",
/// "results" (the command-line flags of one trial). `defaults` holds the rest (space, data root,
/// device, threads, ...), and the request's settings default to it. For each request, `out` gets
/// the JSON Lines of one trial ending in one line whose "event" is "final", "pruned", "interrupted"
/// or "error" (a bad request or a failed trial: "message" and "exit_code"; the server goes on).
/// `stop`/`pruned` end the current candidate only and are cleared before the next request.
/// Returns 0 at the end of `in`, 130 after a shutdown signal.
int serve(const TrialOptions& defaults, std::istream& in, std::ostream& out,
          std::atomic<bool>& stop, std::atomic<bool>& pruned, const ServeFlags& flags);

/// Where and how long `serve_socket()` listens.
struct ListenOptions {
  std::string name;        ///< abstract Unix socket name (see local_socket.h)
  double idle_exit_s = 0;  ///< exit after this long without a connection; 0 = never
  /// Exit, when idle, once this file exists or its folder is gone (the NNI tuner writes it when
  /// the experiment ends); empty: not watched.
  fs::path stop_file;
};

/// `dataproxy-trial --serve --listen NAME`: the same server on a local socket, one candidate at
/// a time. Per connection: the server sends {"event": "accepted", "pid", "served"}, reads one
/// request line (as serve()'s), answers with that trial's JSON Lines ending in its terminal
/// event, and closes. While the candidate trains, a line {"control": "interrupt"} (or
/// "prune") from the client stops it, and so does the client hanging up. Connections from other
/// users are refused. Returns 0 when idle too long or told to stop, 130 after a shutdown signal.
int serve_socket(const TrialOptions& defaults, const ListenOptions& listen, std::atomic<bool>& stop,
                 std::atomic<bool>& pruned, const ServeFlags& flags);

}  // namespace dataproxy::trial
