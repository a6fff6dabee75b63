// dataproxy-trial: trains one candidate on a data proxy; launched per trial by NNI or Optuna,
// or by hand. See trial.h for what a trial does and README.md for the command line.
#include <signal.h>
#include <unistd.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/trainer.h"
#include "dataproxy/version.h"
#include "trial.h"

namespace po = boost::program_options;
using dataproxy::InvalidInput;
using dataproxy::json;

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_pruned{false};
// --serve only.
std::atomic<bool> g_shutdown{false};
std::atomic<bool> g_busy{false};

// First signal: finish at the next epoch boundary. Second: leave at once.
extern "C" void on_signal(int) {
  if (g_stop.exchange(true)) ::_exit(130);
}

// A tuner's pruner asks with SIGUSR1: the same stop, recorded as "pruned", not "interrupted".
extern "C" void on_prune_signal(int) {
  if (!g_stop.load()) g_pruned.store(true);
  on_signal(SIGUSR1);
}

// --serve: SIGUSR1 prunes the current candidate only; SIGINT/SIGTERM stop the current one and
// then the server, at once when it is waiting for a request.
extern "C" void on_serve_prune_signal(int) {
  if (!g_stop.load()) g_pruned.store(true);
  g_stop.store(true);
}

extern "C" void on_serve_signal(int) {
  if (g_shutdown.exchange(true) || !g_busy.load()) ::_exit(130);
  g_stop.store(true);
}

void install_serve_signal_handlers() {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a prune signal must not break the wait for the next request
  sa.sa_handler = on_serve_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = on_serve_prune_signal;
  sigaction(SIGUSR1, &sa, nullptr);
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = on_prune_signal;
  sigaction(SIGUSR1, &sa, nullptr);
}

json parse_params(const std::string& text, const std::string& origin) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw InvalidInput(origin + " is not valid JSON (" + e.what() +
                       "); expected an object such as {\"B\": 16, \"K\": 3, \"M\": 2}");
  }
}

int run(int argc, char** argv, double startup_seconds,
        std::chrono::steady_clock::time_point main_started) {
  dataproxy::trial::TrialOptions o;
  o.startup_seconds = startup_seconds;
  o.main_started = main_started;
  std::string manifest, space, data_root, params, params_file, results, report = "auto",
                                                                        memory_format = "auto";
  bool serve = false;
  dataproxy::trial::ListenOptions listen;
  std::string stop_file;
  po::options_description desc(
      "dataproxy-trial: train one candidate on a data proxy (and on the full data for a spot "
      "check)\nUsage: dataproxy-trial --manifest PATH --space YAML --data-root DIR "
      "[--params JSON | --params-file FILE] [options]\n       dataproxy-trial --serve --space "
      "YAML --data-root DIR [options] < requests\nWithout --params and --params-file, a "
      "trial started by NNI (NNI_PLATFORM set) receives its parameters from NNI.\nWith --serve, "
      "each stdin line is a request {\"params\": {...}, \"trial_id\": ..., \"spot_check\": "
      "...}; the data stay in memory between candidates.\nOptions");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("version", "print the version")
      ("manifest", po::value(&manifest), "proxy manifest.json or its folder (or sent by the tuner)")
      ("space", po::value(&space), "search-space YAML file")
      ("data-root", po::value(&data_root), "folder holding the datasets")
      ("serve", po::bool_switch(&serve),
       "train candidate after candidate: one JSON request per stdin line (params and per-trial "
       "settings), JSON Lines out; SIGUSR1 prunes the current candidate only")
      ("listen", po::value(&listen.name),
       "with --serve: take requests on this abstract local socket instead of stdin, one "
       "connection per candidate (what dataproxy-trial-client starts)")
      ("idle-exit", po::value(&listen.idle_exit_s)->default_value(0),
       "with --listen: exit after this many seconds without a request (0 = never)")
      ("stop-file", po::value(&stop_file),
       "with --listen: exit when idle once this file exists or its folder is gone")
      ("params", po::value(&params), "the candidate's parameters as a JSON object")
      ("params-file", po::value(&params_file), "file holding the parameters' JSON object")
      ("spot-check", po::bool_switch(&o.spot_check), "also train on the full data")
      ("results", po::value(&results), "experiment folder: results.jsonl is appended there")
      ("trial-id", po::value(&o.trial_id), "trial id for the record (default: NNI's, or standalone-<pid>)")
      ("framework", po::value(&o.framework), "nni, optuna or standalone (default: from the source of the parameters)")
      ("epochs", po::value(&o.epochs), "training epochs (default: the space's)")
      ("proxy-epochs", po::value(&o.proxy_epochs),
       "epochs of the proxy phase only (default: --epochs); spot checks train --epochs")
      ("proxy-steps", po::value(&o.proxy_steps),
       "optimizer steps of the proxy phase instead of whole epochs (a calibrated length such "
       "as the full data for 5% of the steps); wins over --proxy-epochs")
      ("device", po::value(&o.device)->default_value("auto"), "auto, cpu, cuda or cuda:N")
      ("threads", po::value(&o.threads)->default_value(0), "CPU threads (0 = all cores)")
      ("memory-format", po::value(&memory_format)->default_value("auto"),
       "auto, channels-last or contiguous (auto: channels-last on CUDA; on the CPU by width)")
      ("seed", po::value(&o.seed)->default_value(0), "seed of weights, shuffling and augmentation")
      ("eval-subset", po::value(&o.eval_subset)->default_value(1000),
       "test samples evaluated after each epoch but the last (a fixed, seeded subset); the final "
       "accuracy always uses the whole split; 0 = the whole split every epoch")
      ("parameter-timeout", po::value(&o.parameter_timeout_s)->default_value(600),
       "seconds to wait for NNI's parameters (0 = no limit)")
      ("report", po::value(&report)->default_value("auto"),
       "auto, jsonl, bar or quiet: progress on stderr; JSON Lines on stdout unless quiet");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw InvalidInput(std::string(e.what()) + "; see dataproxy-trial --help");
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "dataproxy-trial " << dataproxy::kVersion << "\n";
    return 0;
  }
  DATAPROXY_CHECK(!space.empty(), InvalidInput, "--space YAML is required");
  DATAPROXY_CHECK(!data_root.empty(), InvalidInput, "--data-root DIR is required");
  DATAPROXY_CHECK(params.empty() || params_file.empty(), InvalidInput,
                  "give --params or --params-file, not both");
  DATAPROXY_CHECK(o.epochs >= 0, InvalidInput, "--epochs must be >= 0, got " << o.epochs);
  DATAPROXY_CHECK(
      o.eval_subset >= 0, InvalidInput,
      "--eval-subset must be >= 0 (0 = the whole split every epoch), got " << o.eval_subset);
  DATAPROXY_CHECK(o.proxy_epochs >= 0, InvalidInput,
                  "--proxy-epochs must be >= 0, got " << o.proxy_epochs);
  DATAPROXY_CHECK(o.proxy_steps >= 0, InvalidInput,
                  "--proxy-steps must be >= 0 (0 = whole epochs), got " << o.proxy_steps);
  const std::vector<std::string> frameworks = {"", "nni", "optuna", "standalone"};
  DATAPROXY_CHECK(std::find(frameworks.begin(), frameworks.end(), o.framework) != frameworks.end(),
                  InvalidInput,
                  "--framework must be nni, optuna or standalone, got '" << o.framework << "'");
  o.manifest = manifest;
  o.space = space;
  o.data_root = data_root;
  o.results = results;
  o.report = dataproxy::parse_report_mode(report);
  o.memory_format = dataproxy::parse_memory_format(memory_format);
  if (!params.empty()) o.params = parse_params(params, "--params");
  if (!params_file.empty()) {
    o.params = parse_params(dataproxy::read_file(params_file), "--params-file " + params_file);
  }
  DATAPROXY_CHECK(serve || (listen.name.empty() && stop_file.empty()), InvalidInput,
                  "--listen and --stop-file need --serve");
  DATAPROXY_CHECK(listen.idle_exit_s >= 0, InvalidInput,
                  "--idle-exit must be >= 0 seconds (0 = never), got " << listen.idle_exit_s);
  if (serve) {
    DATAPROXY_CHECK(o.params == std::nullopt, InvalidInput,
                    "--serve reads the parameters from stdin, one request a line; drop --params "
                    "and --params-file");
    DATAPROXY_CHECK(o.report != dataproxy::ReportMode::quiet, InvalidInput,
                    "--serve answers on stdout; --report quiet would leave it silent");
    install_serve_signal_handlers();
    if (!listen.name.empty()) {
      listen.stop_file = stop_file;
      return dataproxy::trial::serve_socket(o, listen, g_stop, g_pruned, {&g_shutdown, &g_busy});
    }
    return dataproxy::trial::serve(o, std::cin, std::cout, g_stop, g_pruned,
                                   {&g_shutdown, &g_busy});
  }
  return dataproxy::trial::run_trial(o, g_stop, std::cout, &g_pruned);
}

}  // namespace

int main(int argc, char** argv) {
  // First: what the user paid before main() (loading the shared libraries, static set-up).
  const double startup_seconds = dataproxy::trial::process_age_seconds();
  const auto main_started = std::chrono::steady_clock::now();
  install_signal_handlers();
  try {
    return run(argc, argv, startup_seconds, main_started);
  } catch (const dataproxy::Error& e) {
    std::cerr << "dataproxy-trial: error: " << e.what() << std::endl;
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "dataproxy-trial: error: " << e.what() << std::endl;
    return 1;
  }
}
