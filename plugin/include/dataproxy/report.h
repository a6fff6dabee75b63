// The ranking-preservation report of one experiment: does the proxy rank candidates as the
// full data does, how sure are we, and what did it save? Written as report.json and one
// self-contained report.html (inline SVG and script; no network needed to view it).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dataproxy/manifest.h"
#include "dataproxy/results.h"
#include "dataproxy/stats.h"

namespace dataproxy {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// Options of the report; `dataproxy report` flags map onto these fields one to one.
struct ReportOptions {
  std::string title = "Data proxy ranking report";  ///< page heading (--title)
  BootstrapOptions bootstrap;  ///< intervals of the correlations (--bootstrap, --seed)
  int64_t top_k = 3;           ///< k of the top-k overlap (--top-k)
  /// Fewer candidates with both accuracies than this: the verdict says the evidence is too thin
  /// and asks for more spot checks (--min-spot-checks).
  int64_t min_spot_checks = 5;
  /// The pairwise heatmap shows at most this many candidates, the best by full accuracy.
  int64_t max_heatmap = 120;
  /// When > 0 the page reloads itself this often, in seconds (set by --watch); 0 = never.
  int64_t refresh_seconds = 0;
};

/// One candidate: every record of one configuration (same config_id) merged.
struct Candidate {
  std::string id;  ///< config_id, else the trial id
  json config = json::object();
  std::vector<std::string> frameworks;   ///< distinct frameworks of its records, "probe" included
  std::optional<double> proxy_accuracy;  ///< mean over complete proxy trainings
  std::optional<double> full_accuracy;   ///< mean over spot checks and probes
  double proxy_seconds = 0;              ///< mean proxy training time (0 when none)
  std::optional<double> full_seconds;    ///< mean measured full-data training time
  int64_t macs = 0;
  int64_t params = 0;
  int64_t records = 0;      ///< results-store records of this configuration
  bool spot_check = false;  ///< has a full-data accuracy
  bool probe = false;       ///< one of the manifest's probe networks
  bool searched = false;    ///< trained on the proxy by the search (not only a probe)
  std::string status;       ///< "complete" if any record completed, else the last status
};

/// Merges records by configuration, and adds the manifest's probes (framework "probe") as
/// full-data points. `manifest` may be null (no manifest).
std::vector<Candidate> merge_candidates(const std::vector<TrialRecord>& records,
                                        const Manifest* manifest);

/// Where the report's inputs came from; shown on the page.
struct ReportSources {
  std::string results;      ///< the results store read
  std::string manifest;     ///< the manifest read, empty when none
  std::string calibration;  ///< calibration.json read (`dataproxy calibrate`), empty when none
};

/// The report's "calibration" section from a calibration.json object: each choice's Spearman
/// with its interval and cost, the recommendation, and what calibration spent. Throws DataError
/// naming `origin` when the object is not a calibration.
json calibration_summary(const json& calibration, const std::string& origin);

/// The report's data (the content of report.json): candidates ranked by proxy accuracy, the
/// ranking statistics with intervals, the pairwise matrix, the verdict, and the cost ledger.
/// `manifest` may be null (no manifest).
json build_report(const std::vector<TrialRecord>& records, const Manifest* manifest,
                  const ReportOptions& options, const ReportSources& sources = {});

/// The self-contained HTML page for build_report()'s JSON.
std::string render_report_html(const json& report);

/// Loads the store (a snapshot: a torn last line is ignored) and the manifest (load_manifest():
/// verified like every other reader's, side files included), then writes
/// report.json and report.html into `out_dir` (empty: the store's folder) atomically. An empty
/// `manifest` means: manifest.json beside the store, else the cached proxy
/// (proxy_manifest_file(default_cache_dir(), key)) when every record names the same key, else
/// none. Throws InvalidInput when the store is missing or has no records. Returns the JSON.
json write_report(const fs::path& results, const fs::path& manifest, const fs::path& out_dir,
                  const ReportOptions& options);

}  // namespace dataproxy
