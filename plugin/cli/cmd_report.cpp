// `dataproxy report`: the ranking-preservation report of an experiment's results store
// (report.json and a self-contained report.html). Safe while trials still append: it reads a
// snapshot and ignores a torn last line. --watch regenerates it until SIGINT/SIGTERM.
#include <boost/program_options.hpp>

#include <chrono>
#include <csignal>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "dataproxy/error.h"
#include "dataproxy/report.h"

namespace dataproxy::cli {
namespace {

namespace po = boost::program_options;

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }

// Installs SIGINT/SIGTERM handlers for the life of the object, then restores the old ones.
class StopSignals {
 public:
  StopSignals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

void print_summary(const json& report, const fs::path& out) {
  std::cout << "report: " << (out / "report.html").string() << " (" << report["records"].dump()
            << " records, " << report["ranking"]["n"].dump() << " spot checks) -- "
            << report["verdict"]["headline"].get<std::string>() << std::endl;
}

int run_report(const std::vector<std::string>& args) {
  ReportOptions o;
  fs::path results, manifest, out;
  double watch = 0;
  po::options_description desc(
      "dataproxy report --results PATH [options]\n\n"
      "Writes report.json and a self-contained report.html: proxy vs full-data accuracy,\n"
      "rank correlations with bootstrap intervals, pairwise agreement, and the cost ledger.\n"
      "Options");
  desc.add_options()("help,h", "this help")(
      "results", po::value(&results)->required(),
      "results store: an experiment folder or its results.jsonl")(
      "manifest", po::value(&manifest),
      "proxy manifest.json (or its folder) for the probes and stage times; default: "
      "manifest.json beside the results store, else the cached proxy named by the records' "
      "manifest key, else none")("out", po::value(&out),
                                 "output folder (default: the results store's folder)")(
      "title", po::value(&o.title)->default_value(o.title), "page heading")(
      "bootstrap", po::value(&o.bootstrap.resamples)->default_value(o.bootstrap.resamples),
      "bootstrap resamples for the confidence intervals")(
      "confidence",
      po::value(&o.bootstrap.confidence)->default_value(o.bootstrap.confidence, "0.95"),
      "confidence level of the intervals")(
      "seed", po::value(&o.bootstrap.seed)->default_value(o.bootstrap.seed), "bootstrap seed")(
      "top-k", po::value(&o.top_k)->default_value(o.top_k), "k of the top-k overlap")(
      "min-spot-checks", po::value(&o.min_spot_checks)->default_value(o.min_spot_checks),
      "fewer spot checks than this: the verdict asks for more")(
      "watch", po::value(&watch)->default_value(0),
      "regenerate every SECONDS until interrupted (Ctrl-C); 0 = once");
  po::variables_map vm;
  if (!parse_options(args, desc, "report", vm)) return 0;
  DATAPROXY_CHECK(watch >= 0, InvalidInput, "--watch must be >= 0 seconds, got " << watch);
  fs::path shown_out = out.empty() ? ResultsStore(results).file().parent_path() : out;

  if (watch == 0) {
    print_summary(write_report(results, manifest, out, o), shown_out);
    return 0;
  }

  o.refresh_seconds = std::max<int64_t>(1, static_cast<int64_t>(watch + 0.5));
  StopSignals signals;
  g_stop = 0;
  std::string last_problem;
  while (!g_stop) {
    try {
      print_summary(write_report(results, manifest, out, o), shown_out);
      last_problem.clear();
    } catch (const InvalidInput& e) {
      // The store may not exist yet, or a line may be repaired while we wait: keep watching.
      if (e.what() != last_problem) std::cerr << "dataproxy report: " << e.what() << std::endl;
      last_problem = e.what();
    }
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(watch);
    while (!g_stop && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::cerr << "dataproxy report: stopped watching" << std::endl;
  return 0;
}

}  // namespace
DATAPROXY_REGISTER_COMMAND(report, {"report",
                                    "ranking-preservation report (HTML + JSON) of a results store",
                                    run_report});
}  // namespace dataproxy::cli
