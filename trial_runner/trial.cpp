#include "trial.h"

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

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

double process_age_seconds() {
  std::ifstream in("/proc/self/stat");
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  // Field 2 (the command name) may hold spaces and parentheses: fields resume after the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 1));
  std::string value;
  for (int field = 3; field <= 22 && (fields >> value); ++field) {
  }
  if (!fields) return 0;
  const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  timespec now{};
  if (ticks_per_second <= 0 || ::clock_gettime(CLOCK_BOOTTIME, &now) != 0) return 0;
  const double started = std::stod(value) / static_cast<double>(ticks_per_second);
  const double age =
      static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec) - started;
  // A container's own clock namespace could put the boot clock elsewhere: trust sane values only.
  return age >= 0 && age < 3600 ? age : 0;
}

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
    } else if (key == "manifest" || key == "results") {
      DATAPROXY_CHECK(value.is_string() && !value.get<std::string>().empty(), InvalidInput,
                      kReservedKey << "." << key << " must be a path, got " << value.dump());
      (key == "manifest" ? s.manifest : s.results) = fs::path(value.get<std::string>());
    } else {
      throw InvalidInput(std::string(kReservedKey) + " has an unknown key \"" + key +
                         "\"; known keys: spot_check, manifest, results, proxy_epochs");
    }
  }
  return s;
}

SpotCheckSummary summarize_spot_checks(const std::vector<TrialRecord>& records,
                                       const Manifest& manifest) {
  struct Sums {
    double proxy = 0, full = 0;
    int64_t n_proxy = 0, n_full = 0;
  };
  std::map<std::string, Sums> by_config;
  for (const TrialRecord& r : records) {
    if (r.status != "complete" || r.manifest_key != manifest.key || r.config_id.empty()) continue;
    Sums& s = by_config[r.config_id];
    if (r.proxy_accuracy) {
      s.proxy += *r.proxy_accuracy;
      ++s.n_proxy;
    }
    if (r.spot_check && r.full_accuracy) {
      s.full += *r.full_accuracy;
      ++s.n_full;
    }
  }
  std::map<std::string, double> probe_full;
  for (const ProbeRecord& p : manifest.probes) probe_full[p.config_id] = p.test_accuracy;

  SpotCheckSummary out;
  for (const auto& [config_id, s] : by_config) {
    if (s.n_proxy == 0) continue;
    double full;
    if (s.n_full > 0) {
      full = s.full / static_cast<double>(s.n_full);
    } else if (auto it = probe_full.find(config_id); it != probe_full.end()) {
      full = it->second;
      ++out.probes_used;
    } else {
      continue;
    }
    out.config_ids.push_back(config_id);
    out.proxy.push_back(s.proxy / static_cast<double>(s.n_proxy));
    out.full.push_back(full);
  }
  out.spearman = spearman(out.proxy, out.full);
  out.kendall = kendall_tau_b(out.proxy, out.full);
  return out;
}

namespace {

json epoch_event(const char* phase, const EpochStats& s, int64_t epochs) {
  return {{"event", "epoch"},
          {"phase", phase},
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

}  // namespace

int run_trial(const TrialOptions& options, const std::atomic<bool>& stop, std::ostream& out,
              const std::atomic<bool>* pruned) {
  const Clock::time_point main_started =
      options.main_started == Clock::time_point{} ? Clock::now() : options.main_started;
  TrialTiming timing;
  Clock::time_point data_started = main_started;
  // Closes the split at this moment and puts it on the record.
  auto stamp_timing = [&](TrialRecord& r) {
    timing.total = options.startup_seconds + seconds_between(main_started, Clock::now());
    r.timing = timing;
  };
  EventStream events(out, options.report != ReportMode::quiet);
  const SearchSpace space = SearchSpace::load(options.space);

  // Parameters: given, or from NNI.
  nni::TrialEnv env = nni::TrialEnv::from_environment();
  std::unique_ptr<nni::Channel> channel;
  nni::ParameterRecord record;
  std::string framework = options.framework;
  std::string trial_id = options.trial_id;
  if (options.params) {
    record.parameters = *options.params;
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
  const Manifest manifest = load_manifest(manifest_path);
  DATAPROXY_CHECK(manifest.space_hash == space.content_hash(), InvalidInput,
                  "the manifest " << manifest_file(manifest_path) << " was built for search space '"
                                  << manifest.space_name << "' (hash "
                                  << manifest.space_hash.substr(0, 12) << "), not for "
                                  << options.space << " (hash "
                                  << space.content_hash().substr(0, 12)
                                  << "); generate a proxy for this space or pass the space file "
                                     "it was built from");

  const int64_t epochs = options.epochs > 0 ? options.epochs : space.training().epochs;
  const int64_t proxy_epochs =
      options.proxy_epochs > 0 ? options.proxy_epochs : reserved.proxy_epochs.value_or(epochs);
  std::unique_ptr<ResultsStore> store;
  if (!results_dir.empty()) store = std::make_unique<ResultsStore>(results_dir);

  TrialRecord rec;
  rec.trial_id = trial_id;
  rec.parameter_id = record.parameter_id;
  rec.framework = framework;
  rec.config = config;
  rec.config_id = config_id;
  rec.spot_check = spot_check;
  rec.manifest_key = manifest.key;
  rec.extra = {{"epochs", epochs},
               {"proxy_epochs", proxy_epochs},
               {"seed", options.seed},
               {"manifest", manifest_file(manifest_path).string()},
               {"space", options.space.string()}};
  if (env.active()) {
    rec.extra["nni"] = {{"experiment_id", env.experiment_id},
                        {"trial_job_id", env.trial_job_id},
                        {"seq_id", env.seq_id}};
  }
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
  auto interrupted = [&]() {
    const bool was_pruned = pruned != nullptr && pruned->load();
    rec.status = was_pruned ? "pruned" : "interrupted";
    if (!rec.proxy_curve.empty()) rec.proxy_accuracy = rec.proxy_curve.back();
    rec.finished = utc_now();
    stamp_timing(rec);
    if (store) store->append(rec);
    events.emit({{"event", rec.status},
                 {"trial_id", trial_id},
                 {"phase", phase},
                 {"proxy_epochs_done", rec.proxy_curve.size()},
                 {"recorded", store != nullptr}});
    return was_pruned ? 0 : 130;
  };

  timing.eval_subset = options.eval_subset;
  data_started = Clock::now();
  timing.startup = options.startup_seconds + seconds_between(main_started, data_started);
  try {
    const DatasetSplits splits =
        load_dataset(manifest.dataset, options.data_root, manifest.load_options);
    check_dataset(manifest, splits.train);
    const Dataset proxy_train = proxy_train_set(manifest, splits.train);
    const Dataset proxy_test = proxy_test_set(manifest, splits.test);
    const Dataset ranking_test = ranking_test_set(manifest, splits.test);
    timing.data = seconds_between(data_started, Clock::now());
    if (stop) return interrupted();

    const InputShape shape{splits.train.channels(), splits.train.height(), splits.train.width()};
    const ModelCost cost = model_cost(space, config, shape, manifest.proxy_num_classes());
    rec.macs = cost.macs;
    rec.params = cost.params;

    std::unique_ptr<Reporter> bar = progress_reporter(options.report);
    StopOnSignal progress(stop, bar.get());
    TrainOptions train_options;
    train_options.device = options.device;
    train_options.threads = options.threads;
    train_options.memory_format = options.memory_format;
    train_options.seed = options.seed;
    train_options.eval_subset = options.eval_subset;
    train_options.epochs = proxy_epochs;
    Trainer proxy_trainer(space.training(), train_options, progress);
    train_options.epochs = epochs;
    Trainer trainer(space.training(), train_options, progress);

    // Proxy phase.
    phase = "proxy";
    seed_everything(options.seed);
    auto model = build_model(space, config, shape, manifest.proxy_num_classes());
    const TrainResult proxy_result =
        proxy_trainer.fit(*model, proxy_train, proxy_test, [&](const EpochStats& s) {
          rec.proxy_curve.push_back(s.test_accuracy);
          timing.train += s.seconds;
          timing.eval += s.eval_seconds;
          events.emit(epoch_event("proxy", s, proxy_epochs));
          if (nni_metrics && s.test_accuracy >= 0 && !stop) {
            nni_metrics->intermediate(s.test_accuracy);
          }
          return !stop.load();
        });
    rec.device = proxy_result.device;
    rec.extra["memory_format"] = to_string(proxy_result.memory_format);
    rec.proxy_seconds = proxy_result.train_seconds;
    if (stop) return interrupted();
    rec.proxy_accuracy = proxy_result.final_accuracy;
    timing.eval_final = proxy_result.final_eval_samples;

    // Full-data phase (spot check).
    std::vector<double> full_curve;
    if (spot_check) {
      phase = "full";
      seed_everything(options.seed);
      auto full_model = build_model(space, config, shape, splits.train.num_classes);
      const TrainResult full_result =
          trainer.fit(*full_model, splits.train, ranking_test, [&](const EpochStats& s) {
            full_curve.push_back(s.test_accuracy);
            timing.train += s.seconds;
            timing.eval += s.eval_seconds;
            events.emit(epoch_event("full", s, epochs));
            return !stop.load();
          });
      rec.extra["full_curve"] = full_curve;
      if (stop) return interrupted();
      rec.full_accuracy = full_result.final_accuracy;
      rec.full_seconds = full_result.train_seconds;
    }

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
    timing.total = options.startup_seconds + seconds_between(main_started, Clock::now());
    final_event["timing"] = timing.to_json();
    if (nni_metrics) {
      json metric = {{"default", *rec.proxy_accuracy}};
      for (const char* key :
           {"proxy_accuracy", "full_accuracy", "spot_check", "spearman", "kendall", "n_spot_checks",
            "config_id", "proxy_seconds", "full_seconds", "macs", "manifest_key"}) {
        metric[key] = final_event[key];
      }
      nni_metrics->final(metric);
    }
    events.emit(final_event);
    return 0;
  } catch (const Interrupted&) {
    return interrupted();
  } catch (const std::exception& e) {
    // A failure after the parameters were accepted is part of the experiment's record.
    if (store && rec.status != "complete") {
      rec.status = "failed";
      rec.finished = utc_now();
      rec.extra["error"] = e.what();
      rec.extra["phase"] = phase;
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

}  // namespace dataproxy::trial
