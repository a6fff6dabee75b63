#include "trial.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "dataproxy/candidate.h"
#include "dataproxy/dataset.h"
#include "dataproxy/error.h"
#include "dataproxy/model.h"
#include "dataproxy/trainer.h"
#include "nni_channel.h"

namespace dataproxy::trial {
namespace {

// JSON Lines on stdout: the contract with the tuners that read it.
class EventStream {
 public:
  EventStream(std::ostream& out, bool enabled) : out_(out), enabled_(enabled) {}
  void emit(const json& event) {
    if (!enabled_) return;
    out_ << event.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    out_.flush();
  }

 private:
  std::ostream& out_;
  bool enabled_;
};

fs::path manifest_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) ? p / "manifest.json" : p;
}

bool same_path(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  const fs::path ca = fs::weakly_canonical(a, ec);
  const fs::path cb = fs::weakly_canonical(b, ec);
  return ca == cb;
}

// A flag given on the command line and also by the tuner must agree.
fs::path pick_path(const fs::path& from_cli, const std::optional<fs::path>& from_tuner,
                   const char* flag, bool is_manifest) {
  if (!from_tuner) return from_cli;
  if (!from_cli.empty()) {
    const fs::path a = is_manifest ? manifest_file(from_cli) : from_cli;
    const fs::path b = is_manifest ? manifest_file(*from_tuner) : *from_tuner;
    DATAPROXY_CHECK(same_path(a, b), InvalidInput,
                    flag << " " << from_cli << " differs from the tuner's \"" << kReservedKey
                         << "\" setting " << *from_tuner << "; drop " << flag
                         << " from the trial command or make them agree");
  }
  return *from_tuner;
}

std::unique_ptr<Reporter> progress_reporter(ReportMode mode) {
  if (mode == ReportMode::bar || (mode == ReportMode::automatic && ::isatty(2))) {
    return make_reporter(ReportMode::bar);
  }
  return nullptr;
}

// The Trainer reports progress every quarter second inside its batch loop: throwing there stops
// a long epoch well within the 5 s NNI allows between SIGINT and SIGKILL.
class StopOnSignal : public Reporter {
 public:
  StopOnSignal(const std::atomic<bool>& stop, Reporter* inner) : stop_(stop), inner_(inner) {}
  using Reporter::progress;
  void progress(const std::string& what, int64_t done, int64_t total, const json& detail) override {
    if (stop_) throw Interrupted("stopped by a signal during " + what);
    if (inner_) inner_->progress(what, done, total, detail);
  }
  void event(const json& e) override {
    if (inner_) inner_->event(e);
  }
  void message(const std::string& text) override {
    if (inner_) inner_->message(text);
  }

 private:
  const std::atomic<bool>& stop_;
  Reporter* inner_;
};

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

json nullable(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json correlation_json(const Correlation& c) { return c.defined ? json(c.value) : json(nullptr); }

}  // namespace

ReservedSettings take_reserved(json& params) {
  ReservedSettings s;
  DATAPROXY_CHECK(params.is_object(), InvalidInput,
                  "the parameters must be a JSON object of parameter name -> value, got "
                      << params.dump().substr(0, 200));
  auto it = params.find(kReservedKey);
  if (it == params.end()) return s;
  const json reserved = *it;
  params.erase(it);
  DATAPROXY_CHECK(reserved.is_object(), InvalidInput,
                  "parameter \"" << kReservedKey << "\" must be an object of trial settings, got "
                                 << reserved.dump().substr(0, 200));
  for (const auto& [key, value] : reserved.items()) {
    if (key == "spot_check") {
      DATAPROXY_CHECK(value.is_boolean(), InvalidInput,
                      kReservedKey << ".spot_check must be true or false, got " << value.dump());
      s.spot_check = value.get<bool>();
    } else if (key == "proxy_epochs") {
      DATAPROXY_CHECK(
          value.is_number_integer() && value.get<int64_t>() > 0, InvalidInput,
          kReservedKey << ".proxy_epochs must be a positive integer, got " << value.dump());
      s.proxy_epochs = value.get<int64_t>();
    } else if (key == "proxy_steps") {
      DATAPROXY_CHECK(
          value.is_number_integer() && value.get<int64_t>() > 0, InvalidInput,
          kReservedKey << ".proxy_steps must be a positive integer, got " << value.dump());
      s.proxy_steps = value.get<int64_t>();
    } else if (key == "serve") {
      // For dataproxy-trial-client (a served trial or one process); the trial itself ignores it.
      DATAPROXY_CHECK(value.is_boolean(), InvalidInput,
                      kReservedKey << ".serve must be true or false, got " << value.dump());
      s.serve = value.get<bool>();
    } else if (key == "manifest" || key == "results") {
      DATAPROXY_CHECK(value.is_string() && !value.get<std::string>().empty(), InvalidInput,
                      kReservedKey << "." << key << " must be a path, got " << value.dump());
      (key == "manifest" ? s.manifest : s.results) = fs::path(value.get<std::string>());
    } else {
      throw InvalidInput(
          std::string(kReservedKey) + " has an unknown key \"" + key +
          "\"; known keys: spot_check, manifest, results, proxy_epochs, proxy_steps, "
          "serve");
    }
  }
  return s;
}

SpotCheckSummary summarize_spot_checks(const std::vector<TrialRecord>& records,
                                       const Manifest& manifest) {
  SpotCheckSummary out;
  for (const CandidatePair& p : pair_candidates(records, pairing_of(manifest))) {
    out.config_ids.push_back(p.config_id);
    out.proxy.push_back(p.proxy);
    out.full.push_back(p.full);
    if (p.full_from_probe) ++out.probes_used;
  }
  out.spearman = spearman(out.proxy, out.full);
  out.kendall = kendall_tau_b(out.proxy, out.full);
  return out;
}

namespace {

json epoch_event(CandidatePhase phase, const EpochStats& s, int64_t epochs) {
  return {{"event", "epoch"},
          {"phase", to_string(phase)},
          {"epoch", s.epoch},
          {"epochs", epochs},
          {"test_accuracy", s.test_accuracy},
          {"eval_samples", s.eval_samples},
          {"eval_seconds", s.eval_seconds},
          {"train_loss", s.train_loss},
          {"train_accuracy", s.train_accuracy},
          {"seconds", s.seconds},
          {"images_per_second", s.images_per_second}};
}

// Per-epoch events, NNI's intermediate metrics, and the stop flag, for train_candidate().
class TrialObserver : public CandidateObserver {
 public:
  TrialObserver(EventStream& events, const std::atomic<bool>& stop,
                nni::MetricReporter* nni_metrics, std::string& phase)
      : events_(events), stop_(stop), nni_metrics_(nni_metrics), phase_(phase) {}
  void phase_started(CandidatePhase phase) override { phase_ = to_string(phase); }
  bool epoch_done(CandidatePhase phase, const EpochStats& s, int64_t epochs) override {
    if (phase == CandidatePhase::kProxy && s.test_accuracy >= 0)
      proxy_curve.push_back(s.test_accuracy);
    train_seconds += s.seconds;
    eval_seconds += s.eval_seconds;
    events_.emit(epoch_event(phase, s, epochs));
    if (phase == CandidatePhase::kProxy && nni_metrics_ && s.test_accuracy >= 0 && !stop_) {
      nni_metrics_->intermediate(s.test_accuracy);
    }
    return !stop_.load();
  }

  // What a candidate stopped by an exception did before it.
  std::vector<double> proxy_curve;
  double train_seconds = 0;
  double eval_seconds = 0;

 private:
  EventStream& events_;
  const std::atomic<bool>& stop_;
  nni::MetricReporter* nni_metrics_;
  std::string& phase_;
};

}  // namespace

// The data of one manifest, loaded once and kept while candidates of that manifest come.
struct TrialSession::Loaded {
  fs::path manifest_file;
  Manifest manifest;
  fs::path data_root;
  DatasetSplits splits;
  Dataset proxy_train, proxy_test, ranking_test;
};

TrialSession::TrialSession(const fs::path& space_file)
    : space_file_(space_file), space_(SearchSpace::load(space_file)) {}
TrialSession::~TrialSession() = default;

const Manifest& TrialSession::manifest(const fs::path& path) {
  const fs::path file = manifest_file(path);
  if (!loaded_ || !same_path(loaded_->manifest_file, file)) {
    Manifest m = load_manifest(path);
    DATAPROXY_CHECK(m.space_hash == space_.content_hash(), InvalidInput,
                    "the manifest " << file << " was built for search space '" << m.space_name
                                    << "' (hash " << m.space_hash.substr(0, 12) << "), not for "
                                    << space_file_ << " (hash "
                                    << space_.content_hash().substr(0, 12)
                                    << "); generate a proxy for this space or pass the space "
                                       "file it was built from");
    loaded_.reset(new Loaded{file, std::move(m), {}, {}, {}, {}, {}});
  }
  return loaded_->manifest;
}

bool TrialSession::data_loaded() const { return loaded_ && !loaded_->data_root.empty(); }

void TrialSession::load_data(const fs::path& data_root) {
  DATAPROXY_CHECK(loaded_, RuntimeFailure, "load_data() before manifest() (a bug)");
  if (data_loaded() && loaded_->data_root == data_root) return;
  Loaded& l = *loaded_;
  l.splits = load_dataset(l.manifest.dataset, data_root, l.manifest.load_options);
  check_dataset(l.manifest, l.splits.train);
  l.proxy_train = proxy_train_set(l.manifest, l.splits.train);
  l.proxy_test = proxy_test_set(l.manifest, l.splits.test);
  l.ranking_test = ranking_test_set(l.manifest, l.splits.test);
  l.data_root = data_root;
}

int run_trial(const TrialOptions& options, const std::atomic<bool>& stop, std::ostream& out,
              const std::atomic<bool>* pruned) {
  TrialSession session(options.space);
  return run_trial(session, options, stop, out, pruned);
}

int run_trial(TrialSession& session, const TrialOptions& options, const std::atomic<bool>& stop,
              std::ostream& out, const std::atomic<bool>* pruned) {
  const Clock::time_point main_started =
      options.main_started == Clock::time_point{} ? Clock::now() : options.main_started;
  TrialTiming timing;
  auto elapsed = [&] {
    return options.startup_seconds + seconds_between(main_started, Clock::now());
  };
  // Closes the split at this moment and puts it on the record.
  auto stamp_timing = [&](TrialRecord& r) {
    timing.total = elapsed();
    r.timing = timing;
  };
  EventStream events(out, options.report != ReportMode::quiet);
  const SearchSpace& space = session.space();

  // Parameters: given, or from NNI.
  nni::TrialEnv env = nni::TrialEnv::from_environment();
  std::unique_ptr<nni::Channel> channel;
  nni::ParameterRecord record;
  std::string framework = options.framework;
  std::string trial_id = options.trial_id;
  if (options.params) {
    record.parameters = *options.params;
    record.parameter_id = options.parameter_id;
  } else {
    DATAPROXY_CHECK(env.active(), InvalidInput,
                    "no parameters: give --params JSON or --params-file FILE (or let NNI start "
                    "the trial, which sets NNI_PLATFORM)");
    nni::ChannelOptions channel_options;
    channel_options.stop = &stop;
    channel_options.parameter_timeout_s = options.parameter_timeout_s;
    channel_options.stdout_stream = &out;
    channel = nni::make_channel(env, channel_options);
    try {
      record = channel->receive_parameter();
    } catch (const Interrupted& e) {
      events.emit({{"event", "interrupted"}, {"phase", "parameters"}, {"message", e.what()}});
      return 130;
    }
    if (framework.empty()) framework = "nni";
    if (trial_id.empty()) trial_id = env.trial_job_id;
  }
  if (framework.empty()) framework = "standalone";
  if (trial_id.empty()) trial_id = "standalone-" + std::to_string(::getpid());

  json params = record.parameters;
  const ReservedSettings reserved = take_reserved(params);
  const Config config = space.validate(params);
  const std::string config_id = space.config_id(config);
  const bool spot_check = options.spot_check || reserved.spot_check.value_or(false);

  const fs::path manifest_path = pick_path(options.manifest, reserved.manifest, "--manifest", true);
  DATAPROXY_CHECK(!manifest_path.empty(), InvalidInput,
                  "no manifest: give --manifest PATH (a manifest.json or its folder, from "
                  "'dataproxy generate'), or let the tuner send it in \""
                      << kReservedKey << "\"");
  const fs::path results_dir = pick_path(options.results, reserved.results, "--results", false);
  const Manifest& manifest = session.manifest(manifest_path);

  const int64_t epochs = options.epochs > 0 ? options.epochs : space.training().epochs;
  const int64_t proxy_epochs =
      options.proxy_epochs > 0 ? options.proxy_epochs : reserved.proxy_epochs.value_or(epochs);
  const int64_t proxy_steps =
      options.proxy_steps > 0 ? options.proxy_steps : reserved.proxy_steps.value_or(0);
  std::unique_ptr<ResultsStore> store;
  if (!results_dir.empty()) store = std::make_unique<ResultsStore>(results_dir);

  // What the record says before training: who asked, and on what.
  TrialRecord rec;
  rec.trial_id = trial_id;
  rec.parameter_id = record.parameter_id;
  rec.framework = framework;
  rec.config = config;
  rec.config_id = config_id;
  rec.spot_check = spot_check;
  rec.manifest_key = manifest.key;
  rec.training.epochs = epochs;
  rec.training.proxy_epochs = proxy_epochs;
  rec.training.seed = options.seed;
  auto describe = [&](TrialRecord& r) {
    r.trial_id = trial_id;
    r.parameter_id = record.parameter_id;
    r.framework = framework;
    r.manifest_key = manifest.key;
    r.data.dataset = manifest.dataset;
    r.data.space = space.name();
    r.data.space_file = options.space.string();
    r.data.space_hash = space.content_hash();
    r.data.manifest = manifest_file(manifest_path).string();
    r.data.method = manifest.method;
    r.data.ratio = manifest.ratio;
    r.data.sampling_seed = static_cast<int64_t>(manifest.seed);
    r.data.max_train = manifest.load_options.max_train;
    r.data.max_test = manifest.load_options.max_test;
    if (options.nni) {
      r.nni = *options.nni;
    } else if (env.active()) {
      r.nni = NniTrial{env.experiment_id, env.trial_job_id, env.seq_id};
    }
  };
  describe(rec);
  std::optional<nni::MetricReporter> nni_metrics;
  if (channel) nni_metrics.emplace(*channel, env.trial_job_id, record.parameter_id);

  events.emit({{"event", "start"},
               {"trial_id", trial_id},
               {"framework", framework},
               {"parameter_id", record.parameter_id ? json(*record.parameter_id) : json()},
               {"config", config},
               {"config_id", config_id},
               {"spot_check", spot_check},
               {"epochs", epochs},
               {"manifest", manifest_file(manifest_path).string()},
               {"manifest_key", manifest.key},
               {"dataset", manifest.dataset},
               {"channel", channel ? json(channel->kind()) : json()}});

  std::string phase = "data";
  bool recorded = false;  // a failure after the record was appended is not recorded again
  auto interrupted = [&]() {
    const bool was_pruned = pruned != nullptr && pruned->load();
    rec.status = was_pruned ? "pruned" : "interrupted";
    if (!rec.proxy_curve.empty() && !rec.proxy_accuracy)
      rec.proxy_accuracy = rec.proxy_curve.back();
    rec.finished = utc_now();
    stamp_timing(rec);
    if (store) store->append(rec);
    recorded = true;
    events.emit({{"event", rec.status},
                 {"trial_id", trial_id},
                 {"phase", phase},
                 {"proxy_epochs_done", rec.proxy_curve.size()},
                 {"recorded", store != nullptr}});
    return was_pruned ? 0 : 130;
  };

  TrialObserver observer(events, stop, nni_metrics ? &*nni_metrics : nullptr, phase);
  timing.eval_subset = options.eval_subset;
  const auto data_started = Clock::now();
  timing.startup = options.startup_seconds + seconds_between(main_started, data_started);
  try {
    session.load_data(options.data_root);
    timing.data = seconds_between(data_started, Clock::now());
    if (stop) return interrupted();
    const TrialSession::Loaded& data = session.loaded();

    std::unique_ptr<Reporter> bar = progress_reporter(options.report);
    StopOnSignal progress(stop, bar.get());
    CandidateOptions candidate;
    candidate.train.device = options.device;
    candidate.train.threads = options.threads;
    candidate.train.memory_format = options.memory_format;
    candidate.train.seed = options.seed;
    candidate.train.eval_subset = options.eval_subset;
    candidate.train.epochs = epochs;
    candidate.proxy_epochs = proxy_epochs;
    candidate.proxy_steps = proxy_steps;
    CandidateData sets;
    sets.proxy = {&data.proxy_train, &data.proxy_test, manifest.proxy_num_classes()};
    if (spot_check) {
      sets.full = {&data.splits.train, &data.ranking_test, data.splits.train.num_classes};
    }
    CandidateOutcome outcome = train_candidate(space, config, sets, candidate, progress, &observer);
    const TrialTiming trained = *outcome.record.timing;
    timing.train = trained.train;
    timing.eval = trained.eval;
    timing.eval_final = trained.eval_final;
    rec = std::move(outcome.record);
    describe(rec);
    if (outcome.stopped || stop) return interrupted();

    // Record first, then report: a tuner that reads the store on the final metric finds it.
    phase = "report";
    const auto report_started = Clock::now();
    rec.status = "complete";
    rec.finished = utc_now();
    std::vector<TrialRecord> all;
    timing.write = seconds_between(report_started, Clock::now());
    stamp_timing(rec);
    if (store) {
      store->append(rec);
      recorded = true;
      all = store->load();
    } else {
      all.push_back(rec);
    }
    const SpotCheckSummary summary = summarize_spot_checks(all, manifest);
    json note;
    for (const ProbeRecord& p : manifest.probes) {
      if (summary.probes_used > 0 && p.epochs != epochs) {
        note = "probes trained " + std::to_string(p.epochs) + " epochs, this trial " +
               std::to_string(epochs) + ": their full accuracies are less comparable";
        break;
      }
    }
    json final_event = {
        {"event", "final"},
        {"status", "complete"},
        {"trial_id", trial_id},
        {"framework", framework},
        {"parameter_id", record.parameter_id ? json(*record.parameter_id) : json()},
        {"config", config},
        {"config_id", config_id},
        {"proxy_accuracy", *rec.proxy_accuracy},
        {"full_accuracy", nullable(rec.full_accuracy)},
        {"spot_check", spot_check},
        {"spearman", correlation_json(summary.spearman)},
        {"kendall", correlation_json(summary.kendall)},
        {"n_spot_checks", static_cast<int64_t>(summary.proxy.size())},
        {"correlation_ids", summary.config_ids},
        {"probes_in_correlation", summary.probes_used},
        {"correlation_note", summary.spearman.defined ? note : json(summary.spearman.note)},
        {"proxy_seconds", rec.proxy_seconds},
        {"full_seconds", rec.full_seconds},
        {"macs", rec.macs},
        {"params", rec.params},
        {"device", rec.device},
        {"manifest_key", manifest.key},
        {"recorded", store != nullptr}};
    // The event's split includes appending the record and reading the store back.
    timing.write = seconds_between(report_started, Clock::now());
    timing.total = elapsed();
    final_event["timing"] = timing.to_json();
    if (nni_metrics) nni_metrics->final(nni::final_metric_value(final_event));
    events.emit(final_event);
    return 0;
  } catch (const Interrupted&) {
    rec.proxy_curve = observer.proxy_curve;
    timing.train = observer.train_seconds;
    timing.eval = observer.eval_seconds;
    return interrupted();
  } catch (const std::exception& e) {
    // A failure after the parameters were accepted is part of the experiment's record.
    if (store && !recorded) {
      rec.status = "failed";
      rec.finished = utc_now();
      rec.error = TrialError{e.what(), phase};
      stamp_timing(rec);
      try {
        store->append(rec);
      } catch (const std::exception& append_error) {
        std::cerr << "dataproxy-trial: warning: could not record the failure: "
                  << append_error.what() << "\n";
      }
    }
    throw;
  }
}

namespace {

// One request line of `--serve` onto a trial's options; throws InvalidInput saying what is wrong.
void apply_request(const std::string& line, TrialOptions& o, Clock::time_point received) {
  json request = json::parse(line, nullptr, false);
  DATAPROXY_CHECK(
      !request.is_discarded() && request.is_object(), InvalidInput,
      "a request must be one JSON object on one line, such as {\"params\": {\"B\": 16}, "
      "\"trial_id\": \"7\"}; got '"
          << line.substr(0, 120) << "'");
  auto count = [&](const char* key, const json& v, int64_t& out) {
    DATAPROXY_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0, InvalidInput,
                    "request key \"" << key << "\" must be an integer >= 0, got " << v.dump());
    out = v.get<int64_t>();
  };
  auto text = [&](const char* key, const json& v) {
    DATAPROXY_CHECK(v.is_string() && !v.get<std::string>().empty(), InvalidInput,
                    "request key \"" << key << "\" must be a non-empty string, got " << v.dump());
    return v.get<std::string>();
  };
  bool has_params = false;
  for (const auto& [key, v] : request.items()) {
    if (key == "params") {
      DATAPROXY_CHECK(v.is_object(), InvalidInput,
                      "request key \"params\" must be an object of parameter name -> value, got "
                          << v.dump().substr(0, 120));
      o.params = v;
      has_params = true;
    } else if (key == "trial_id") {
      o.trial_id = v.is_number_integer() ? std::to_string(v.get<int64_t>()) : text("trial_id", v);
    } else if (key == "framework") {
      o.framework = text("framework", v);
      DATAPROXY_CHECK(
          o.framework == "nni" || o.framework == "optuna" || o.framework == "standalone",
          InvalidInput,
          "request key \"framework\" must be nni, optuna or standalone, got " << v.dump());
    } else if (key == "spot_check") {
      DATAPROXY_CHECK(v.is_boolean(), InvalidInput,
                      "request key \"spot_check\" must be true or false, got " << v.dump());
      o.spot_check = v.get<bool>();
    } else if (key == "epochs") {
      count("epochs", v, o.epochs);
    } else if (key == "proxy_epochs") {
      count("proxy_epochs", v, o.proxy_epochs);
    } else if (key == "proxy_steps") {
      count("proxy_steps", v, o.proxy_steps);
    } else if (key == "eval_subset") {
      count("eval_subset", v, o.eval_subset);
    } else if (key == "seed") {
      int64_t seed = 0;
      count("seed", v, seed);
      o.seed = static_cast<uint64_t>(seed);
    } else if (key == "manifest") {
      o.manifest = text("manifest", v);
    } else if (key == "results") {
      o.results = text("results", v);
    } else if (key == "parameter_id") {
      DATAPROXY_CHECK(v.is_null() || v.is_number_integer(), InvalidInput,
                      "request key \"parameter_id\" must be an integer or null, got " << v.dump());
      o.parameter_id = v.is_null() ? std::nullopt : std::optional<int64_t>(v.get<int64_t>());
    } else if (key == "nni") {
      DATAPROXY_CHECK(v.is_object(), InvalidInput,
                      "request key \"nni\" must be an object {\"experiment_id\", "
                      "\"trial_job_id\", \"seq_id\"}, got "
                          << v.dump().substr(0, 120));
      NniTrial nni;
      for (const auto& [field, value] : v.items()) {
        DATAPROXY_CHECK(
            value.is_string(), InvalidInput,
            "request key \"nni." << field << "\" must be a string, got " << value.dump());
        if (field == "experiment_id") {
          nni.experiment_id = value.get<std::string>();
        } else if (field == "trial_job_id") {
          nni.trial_job_id = value.get<std::string>();
        } else if (field == "seq_id") {
          nni.seq_id = value.get<std::string>();
        } else {
          throw InvalidInput("unknown request key \"nni." + field +
                             "\"; known: experiment_id, trial_job_id, seq_id");
        }
      }
      o.nni = nni;
    } else if (key == "started_boottime") {
      // When the trial began (its client's start, on the boot clock): what it paid before
      // this request (NNI's parameters, waiting for a server) counts as its start-up.
      DATAPROXY_CHECK(v.is_number() && v.get<double>() >= 0, InvalidInput,
                      "request key \"started_boottime\" must be a number >= 0 (seconds on "
                      "CLOCK_BOOTTIME), got "
                          << v.dump());
      const double before = boot_clock_seconds() - v.get<double>();
      o.startup_seconds = before >= 0 && before < 3600 ? before : 0;
      o.main_started = received;
    } else {
      throw InvalidInput("unknown request key \"" + key +
                         "\"; known keys: params, trial_id, framework, spot_check, epochs, "
                         "proxy_epochs, proxy_steps, seed, eval_subset, manifest, results, "
                         "parameter_id, nni, "
                         "started_boottime");
    }
  }
  DATAPROXY_CHECK(has_params, InvalidInput,
                  "the request has no \"params\" (the candidate's parameters, e.g. {\"params\": "
                  "{\"B\": 16, \"K\": 3, \"M\": 2}})");
}

}  // namespace

namespace {

// One request of a server: its trial's JSON Lines, ending in a terminal event, on `out`.
void serve_one(TrialSession& session, const TrialOptions& defaults, const std::string& line,
               int64_t line_no, bool paid_startup, std::ostream& out, std::atomic<bool>& stop,
               std::atomic<bool>& pruned, const ServeFlags& flags) {
  const auto received = Clock::now();
  TrialOptions o = defaults;
  o.params.reset();
  if (paid_startup) {
    // Start-up and data were paid by the first candidate; this one pays from its request.
    o.startup_seconds = 0;
    o.main_started = received;
  }
  if (flags.busy) flags.busy->store(true);
  try {
    apply_request(line, o, received);
    run_trial(session, o, stop, out, &pruned);
  } catch (const std::exception& e) {
    const auto* error = dynamic_cast<const Error*>(&e);
    out << json{{"event", "error"},
                {"line", line_no},
                {"trial_id", o.trial_id},
                {"message", e.what()},
                {"exit_code", error ? error->exit_code() : 1}}
               .dump(-1, ' ', false, json::error_handler_t::replace)
        << std::endl;
  }
  if (flags.busy) flags.busy->store(false);
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

}  // namespace

int serve(const TrialOptions& defaults, std::istream& in, std::ostream& out,
          std::atomic<bool>& stop, std::atomic<bool>& pruned, const ServeFlags& flags) {
  TrialSession session(defaults.space);
  auto shutting_down = [&] { return flags.shutdown && flags.shutdown->load(); };
  bool paid_startup = false;
  std::string line;
  int64_t line_no = 0;
  while (!shutting_down() && std::getline(in, line)) {
    ++line_no;
    if (blank(line)) continue;
    // A prune signal for the previous candidate may arrive after its result: it must not
    // stop this one.
    stop = false;
    pruned = false;
    serve_one(session, defaults, line, line_no, paid_startup, out, stop, pruned, flags);
    if (session.data_loaded()) paid_startup = true;
  }
  return shutting_down() ? 130 : 0;
}

int serve_socket(const TrialOptions& defaults, const ListenOptions& listen, std::atomic<bool>& stop,
                 std::atomic<bool>& pruned, const ServeFlags& flags) {
  const int listener = listen_local(listen.name);
  TrialSession session(defaults.space);
  auto shutting_down = [&] { return flags.shutdown && flags.shutdown->load(); };
  auto told_to_stop = [&] {
    if (listen.stop_file.empty()) return false;
    std::error_code ec;
    // The marker, or its folder gone (the experiment's folder was deleted).
    return fs::exists(listen.stop_file, ec) || !fs::exists(listen.stop_file.parent_path(), ec);
  };
  std::cerr << "dataproxy-trial: serving on @" << listen.name << " (pid " << ::getpid() << ")"
            << std::endl;
  bool paid_startup = false;
  int64_t served = 0;
  auto idle_since = Clock::now();
  while (!shutting_down()) {
    pollfd p{listener, POLLIN, 0};
    const int ready = ::poll(&p, 1, 250);
    if (ready <= 0) {
      if (told_to_stop()) {
        std::cerr << "dataproxy-trial: " << listen.stop_file << " says stop; exiting" << std::endl;
        break;
      }
      if (listen.idle_exit_s > 0 &&
          seconds_between(idle_since, Clock::now()) > listen.idle_exit_s) {
        std::cerr << "dataproxy-trial: idle for " << listen.idle_exit_s << " s; exiting"
                  << std::endl;
        break;
      }
      continue;
    }
    const int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    if (!peer_is_same_user(conn)) {
      std::cerr << "dataproxy-trial: refused a connection from another user" << std::endl;
      ::close(conn);
      continue;
    }
    SocketStreambuf buffer(conn);
    std::ostream out(&buffer);
    out << json{{"event", "accepted"}, {"pid", ::getpid()}, {"served", served}}.dump() << std::endl;
    LineReader reader(conn);
    std::string line;
    LineReader::Result got;
    do {
      got = reader.read(line, 30000);
    } while (got == LineReader::Result::kLine && blank(line));
    if (got == LineReader::Result::kLine) {
      stop = false;
      pruned = false;
      // While the candidate trains, the client may ask to stop it; a client that is gone
      // (killed, or NNI stopped the trial) stops it too.
      std::atomic<bool> done{false};
      std::thread watcher([&] {
        std::string control;
        while (!done) {
          const LineReader::Result r = reader.read(control, 100);
          if (r == LineReader::Result::kTimeout) continue;
          if (r == LineReader::Result::kEnd) {
            stop = true;
            return;
          }
          const json c = json::parse(control, nullptr, false);
          const std::string what =
              c.is_object() && c.contains("control") && c["control"].is_string()
                  ? c["control"].get<std::string>()
                  : "";
          if (what == "prune") pruned = !stop.load();
          if (what == "interrupt" || what == "prune") stop = true;
        }
      });
      serve_one(session, defaults, line, ++served, paid_startup, out, stop, pruned, flags);
      done = true;
      watcher.join();
      if (session.data_loaded()) paid_startup = true;
    }
    ::close(conn);
    idle_since = Clock::now();
  }
  ::close(listener);
  return shutting_down() ? 130 : 0;
}

}  // namespace dataproxy::trial
