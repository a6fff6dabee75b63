#include "dataproxy/progress.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <sstream>

#include "dataproxy/clock.h"
#include "dataproxy/error.h"

namespace dataproxy {
namespace {

using Clock = std::chrono::steady_clock;

class NullReporter final : public Reporter {
 public:
  using Reporter::progress;
  void progress(const std::string&, int64_t, int64_t, const nlohmann::json&) override {}
  void event(const nlohmann::json&) override {}
  void message(const std::string&) override {}
};

class JsonlReporter final : public Reporter {
 public:
  explicit JsonlReporter(std::ostream& out) : out_(out) {}

  using Reporter::progress;
  void progress(const std::string& what, int64_t done, int64_t total,
                const nlohmann::json& detail) override {
    std::lock_guard<std::mutex> lock(mutex_);
    // Throttled so that a fast loop does not flood a log or a tuner's pipe.
    if (emitted_ && seconds_since(last_) < 1.0) return;
    emitted_ = true;
    last_ = Clock::now();
    nlohmann::json e = {{"event", "progress"}, {"what", what}, {"done", done}, {"total", total}};
    if (detail.is_object()) {
      for (const auto& [key, value] : detail.items()) e[key] = value;
    }
    write(e);
  }
  void event(const nlohmann::json& e) override {
    DATAPROXY_CHECK(e.is_object() && e.contains("event"), InvalidInput,
                    "reporter event without an \"event\" key: " << e.dump());
    std::lock_guard<std::mutex> lock(mutex_);
    write(e);
  }
  void message(const std::string& text) override {
    std::lock_guard<std::mutex> lock(mutex_);
    write({{"event", "message"}, {"text", text}});
  }

 private:
  void write(const nlohmann::json& e) {
    // Replace invalid UTF-8 rather than throw: a report line must never stop a run.
    out_ << e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    out_.flush();
  }

  std::ostream& out_;
  std::mutex mutex_;
  bool emitted_ = false;
  Clock::time_point last_;
};

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<int64_t>(std::llround(seconds));
  std::ostringstream os;
  os << std::setfill('0');
  if (s >= 3600)
    os << s / 3600 << ':' << std::setw(2) << (s / 60) % 60;
  else
    os << s / 60;
  os << ':' << std::setw(2) << s % 60;
  return os.str();
}

std::string format_value(const nlohmann::json& v) {
  if (v.is_number_float()) {
    std::ostringstream os;
    double x = v.get<double>();
    os << std::setprecision(std::fabs(x) >= 100 ? 0 : 4)
       << (std::fabs(x) >= 100 ? std::fixed : std::defaultfloat) << x;
    return os.str();
  }
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string format_percent(const nlohmann::json& v) {
  if (!v.is_number()) return "-";
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << 100.0 * v.get<double>() << '%';
  return os.str();
}

class BarReporter final : public Reporter {
 public:
  explicit BarReporter(std::ostream& out) : out_(out) {}

  using Reporter::progress;
  void progress(const std::string& what, int64_t done, int64_t total,
                const nlohmann::json& detail) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (what != what_ || done < done_) {
      what_ = what;
      step_start_ = Clock::now();
      start_done_ = done;
    }
    done_ = done;
    bool finished = total > 0 && done >= total;
    if (drawn_ && !finished && seconds_since(last_draw_) < 0.1) return;
    last_draw_ = Clock::now();

    std::ostringstream line;
    line << what;
    line << "  ";
    if (detail.is_object() && detail.contains("unit")) line << format_value(detail["unit"]) << ' ';
    line << done;
    if (total > 0) {
      line << '/' << total << " [";
      const int width = 24;
      auto filled = static_cast<int>(width * std::min<double>(1.0, double(done) / total));
      line << std::string(filled, '=') << (filled < width ? ">" : "")
           << std::string(std::max(0, width - filled - 1), ' ') << ']';
    }
    double eta = -1;
    if (detail.is_object()) {
      for (const auto& [key, value] : detail.items()) {
        if (key == "unit") continue;
        if (key == "eta_seconds") {
          if (value.is_number()) eta = value.get<double>();
        } else if (key == "images_per_second") {
          line << "  " << format_value(value) << " img/s";
        } else {
          line << "  " << key << ' ' << format_value(value);
        }
      }
    }
    double elapsed = seconds_since(step_start_);
    if (eta < 0 && total > 0 && done > start_done_ && elapsed > 0) {
      eta = (total - done) * elapsed / double(done - start_done_);
    }
    if (eta >= 0) line << "  ETA " << format_duration(eta);
    std::string text = line.str();
    if (text.size() > terminal_width()) text.resize(terminal_width());
    out_ << "\r\033[K" << text;
    out_.flush();
    drawn_ = true;
  }

  void event(const nlohmann::json& e) override {
    DATAPROXY_CHECK(e.is_object() && e.contains("event"), InvalidInput,
                    "reporter event without an \"event\" key: " << e.dump());
    std::ostringstream line;
    if (e["event"] == "epoch") {
      line << "epoch " << format_value(e.value("epoch", nlohmann::json()));
      if (e.contains("epochs")) line << '/' << format_value(e["epochs"]);
      line << ": loss " << format_value(e.value("train_loss", nlohmann::json())) << ", train "
           << format_percent(e.value("train_accuracy", nlohmann::json())) << ", test "
           << format_percent(e.value("test_accuracy", nlohmann::json())) << ", "
           << format_duration(e.value("seconds", 0.0)) << ", "
           << format_value(e.value("images_per_second", nlohmann::json())) << " img/s";
    } else {
      line << format_value(e["event"]) << ':';
      for (const auto& [key, value] : e.items()) {
        if (key != "event") line << ' ' << key << ' ' << format_value(value);
      }
    }
    message(line.str());
  }

  void message(const std::string& text) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (drawn_) out_ << "\r\033[K";
    out_ << text << '\n';
    out_.flush();
    drawn_ = false;
  }

 private:
  static std::size_t terminal_width() {
    // Leaves the last column free so that a full line never wraps.
    if (const char* columns = std::getenv("COLUMNS")) {
      int c = std::atoi(columns);
      if (c > 20) return static_cast<std::size_t>(c - 1);
    }
    return 119;
  }

  std::ostream& out_;
  std::mutex mutex_;
  std::string what_;
  int64_t done_ = 0, start_done_ = 0;
  bool drawn_ = false;
  Clock::time_point step_start_, last_draw_;
};

}  // namespace

ReportMode parse_report_mode(const std::string& text) {
  if (text == "auto" || text == "automatic") return ReportMode::automatic;
  if (text == "bar") return ReportMode::bar;
  if (text == "jsonl") return ReportMode::jsonl;
  if (text == "quiet") return ReportMode::quiet;
  throw InvalidInput("unknown report mode '" + text + "': use one of auto, bar, jsonl, quiet");
}

std::unique_ptr<Reporter> make_reporter(ReportMode mode, std::ostream* out) {
  if (mode == ReportMode::automatic) {
    mode = ::isatty(STDERR_FILENO) ? ReportMode::bar : ReportMode::jsonl;
  }
  switch (mode) {
    case ReportMode::bar:
      return std::make_unique<BarReporter>(out ? *out : std::cerr);
    case ReportMode::jsonl:
      return std::make_unique<JsonlReporter>(out ? *out : std::cout);
    default:
      return std::make_unique<NullReporter>();
  }
}

Reporter& null_reporter() {
  static NullReporter reporter;
  return reporter;
}

}  // namespace dataproxy
