// Progress and events: a bar for a terminal, JSON Lines for anything else.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>

namespace dataproxy {

/// Receives what long-running stages do. Implementations must be cheap when called often.
class Reporter {
 public:
  virtual ~Reporter() = default;
  /// A unit of work advanced: `done` of `total` (total 0 = unknown) in the step `what`.
  /// `detail` (a JSON object or null) carries numbers shown with it. Keys the bar knows:
  /// "unit" (e.g. "batch"), "loss", "images_per_second", "eta_seconds" (of the whole step;
  /// else estimated from the rate of `done`); other keys are shown as "key value".
  virtual void progress(const std::string& what, int64_t done, int64_t total,
                        const nlohmann::json& detail) = 0;
  /// progress() without details.
  void progress(const std::string& what, int64_t done, int64_t total) {
    progress(what, done, total, nlohmann::json());
  }
  /// A structured event, e.g. {"event": "epoch", "epoch": 3, "test_accuracy": 0.81}.
  /// It must have an "event" key.
  virtual void event(const nlohmann::json& e) = 0;
  /// A human-readable line (warnings, summaries).
  virtual void message(const std::string& text) = 0;
};

/// How to report.
enum class ReportMode {
  automatic,  ///< bar on stderr when stderr is a terminal, else JSON Lines on stdout
  bar,        ///< progress bar and messages on stderr; events as short lines on stderr
  jsonl,      ///< one JSON object per line on stdout (progress throttled to ~1 line/s)
  quiet,      ///< nothing
};

/// Parses "auto", "bar", "jsonl" or "quiet"; throws InvalidInput otherwise.
ReportMode parse_report_mode(const std::string& text);

/// A reporter for `mode`. JSON Lines go to `out` (default std::cout), the bar to `out` (default
/// std::cerr); each line is flushed. JSON Lines: events as given; progress as
/// {"event": "progress", "what", "done", "total", ...detail}; messages as
/// {"event": "message", "text"}. Reporters are thread-safe.
std::unique_ptr<Reporter> make_reporter(ReportMode mode, std::ostream* out = nullptr);

/// A reporter that drops everything.
Reporter& null_reporter();

}  // namespace dataproxy
