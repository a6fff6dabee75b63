// NNI's trial channels, spoken from C++: how a trial launched by NNI receives its parameters and
// reports its metrics. Three transports, chosen from the environment NNI sets (as nni 3.0's own
// Python client chooses them):
//  - HTTP command channel (NNI 3.x local training service): NNI_TRIAL_COMMAND_CHANNEL=http://...
//  - stdout channel (reuse mode, remote, kubeflow, ...): parameters in $NNI_SYS_DIR/parameter.cfg,
//    metrics as stdout lines NNISDK_MEb'<metric json>'
//  - file channel (NNI 2.x local): parameter.cfg, metrics appended to $NNI_SYS_DIR/.nni/metrics
//    as "ME" + 6-digit byte length + the JSON line.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

namespace dataproxy::nni {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// One parameter set as NNI hands it to a trial.
struct ParameterRecord {
  std::optional<int64_t> parameter_id;  ///< key of every metric the trial reports (NNI #5693)
  std::string parameter_source;         ///< "algorithm", "customized", ...
  int64_t parameter_index = 0;
  json parameters = json::object();  ///< the candidate, as the tuner produced it
};

/// Parses NNI's parameter JSON text ({"parameter_id": 0, "parameters": {...}, ...}), as found in
/// parameter.cfg or inside an HTTP "parameter" command. `origin` names the source in errors.
/// Throws InvalidInput saying what is malformed.
ParameterRecord parse_parameter_record(const std::string& text, const std::string& origin);

/// Parses the body of an HTTP command channel answer: {"type": "parameter", "parameter": "<json
/// text>"}. Throws InvalidInput for another type or a malformed body.
ParameterRecord parse_parameter_command(const std::string& body, const std::string& origin);

/// One metric report.
struct Metric {
  std::string type = "PERIODICAL";  ///< "PERIODICAL" or "FINAL"
  std::optional<int64_t> parameter_id;
  std::string trial_job_id;
  int64_t sequence = 0;  ///< 0, 1, 2... for PERIODICAL; 0 for FINAL
  /// A finite number, or an object whose "default" is a finite number (NNI's dispatcher stops
  /// the whole experiment on anything else). Other keys may hold numbers, strings, bools, null.
  json value;
};

/// The FINAL metric value of a trial from its "final" event: {"default": proxy_accuracy, ...}
/// with the event's accuracies, correlation and cost. The same whether the trial reports itself
/// or dataproxy-trial-client relays a served trial's event.
json final_metric_value(const json& final_event);

/// Throws RuntimeFailure unless `value` is what NNI accepts as a metric value (see Metric).
void check_metric_value(const json& value);

/// The metric JSON text NNI expects: {"parameter_id", "trial_job_id", "type", "sequence",
/// "value": "<value as JSON text>"}. Non-finite numbers inside an object value become null.
std::string encode_metric(const Metric& metric);

/// "ME" + 6-digit zero-padded byte length of (metric + "\n") + metric + "\n": a record of the
/// 2.x metrics file.
std::string encode_file_metric(const std::string& metric_json);

/// "NNISDK_MEb'" + metric + "'": a metric line of the stdout channel (no newline).
std::string encode_stdout_metric(const std::string& metric_json);

/// Reads NNI's trial environment.
struct TrialEnv {
  std::string platform;         ///< NNI_PLATFORM; empty when not launched by NNI
  std::string trial_job_id;     ///< NNI_TRIAL_JOB_ID
  std::string experiment_id;    ///< NNI_EXP_ID
  std::string command_channel;  ///< NNI_TRIAL_COMMAND_CHANNEL
  fs::path sys_dir;             ///< NNI_SYS_DIR
  fs::path output_dir;          ///< NNI_OUTPUT_DIR
  bool reuse_mode = false;      ///< REUSE_MODE is "true"/"True"
  std::string seq_id;           ///< NNI_TRIAL_SEQ_ID

  /// True when NNI launched this process (NNI_PLATFORM set and not "unittest").
  bool active() const { return !platform.empty() && platform != "unittest"; }
  /// The environment of this process; `getenv` may be replaced in tests.
  static TrialEnv from_environment(const std::function<const char*(const char*)>& getenv = nullptr);
};

/// Options for the channels.
struct ChannelOptions {
  /// Set by a signal handler: a channel waiting for parameters throws Interrupted.
  const std::atomic<bool>* stop = nullptr;
  int connect_attempts = 5;               ///< tries per HTTP request when the connection fails
  double retry_delay_s = 0.25;            ///< first delay between tries; doubles each time
  double request_timeout_s = 30;          ///< one HTTP request, transfer included
  double parameter_timeout_s = 600;       ///< longest wait for a parameter set; 0 = no limit
  double poll_interval_s = 0.5;           ///< file channels: how often parameter.cfg is looked for
  std::ostream* stdout_stream = nullptr;  ///< stdout channel target (default std::cout)
};

/// A transport between the trial and NNI.
class Channel {
 public:
  virtual ~Channel() = default;
  /// Asks for and waits for this trial's parameter set. Ask once per trial.
  virtual ParameterRecord receive_parameter() = 0;
  /// Sends one metric (already encoded with encode_metric).
  virtual void send_metric(const std::string& metric_json) = 0;
  /// "http", "stdout" or "file".
  virtual std::string kind() const = 0;
};

/// The HTTP command channel at `url` (libcurl; proxies from http_proxy are bypassed).
std::unique_ptr<Channel> make_http_channel(const std::string& url, const TrialEnv& env,
                                           const ChannelOptions& options);
/// The legacy channels: parameter.cfg in env.sys_dir, metrics to the metrics file (`stdout` false)
/// or to the stdout stream.
std::unique_ptr<Channel> make_legacy_channel(const TrialEnv& env, bool use_stdout,
                                             const ChannelOptions& options);
/// The channel `env` calls for; throws InvalidInput when env.active() is false or the
/// environment is incomplete or names a channel this runner cannot speak.
std::unique_ptr<Channel> make_channel(const TrialEnv& env, const ChannelOptions& options);

/// Reports a trial's metrics over a channel, numbering the intermediate ones and keying all by
/// the parameter_id the trial received.
class MetricReporter {
 public:
  MetricReporter(Channel& channel, std::string trial_job_id, std::optional<int64_t> parameter_id)
      : channel_(channel), trial_job_id_(std::move(trial_job_id)), parameter_id_(parameter_id) {}
  /// One PERIODICAL metric; the sequence counts up from 0.
  void intermediate(const json& value);
  /// The FINAL metric (sequence 0).
  void final(const json& value);

 private:
  Channel& channel_;
  std::string trial_job_id_;
  std::optional<int64_t> parameter_id_;
  int64_t sequence_ = 0;
};

}  // namespace dataproxy::nni
