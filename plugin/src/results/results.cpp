#include "dataproxy/results.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <type_traits>

#include "dataproxy/error.h"
#include "dataproxy/files.h"

namespace dataproxy {
namespace {

constexpr const char* kSchema = "dataproxy.result/2";
// Records before the typed groups: their "extra" object is mapped onto them (legacy_extra()).
constexpr const char* kSchemaV1 = "dataproxy.result/1";

json optional_to_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void wrong_type(const char* key, const char* want, const json& got) {
  throw DataError(std::string("result record field \"") + key + "\" must be " + want + ", got " +
                  got.dump().substr(0, 80));
}

void read_string(const json& j, const char* key, std::string& out) {
  if (const json* v = field(j, key)) {
    if (!v->is_string()) wrong_type(key, "a string", *v);
    out = v->get<std::string>();
  }
}

void read_double(const json& j, const char* key, double& out) {
  if (const json* v = field(j, key)) {
    if (!v->is_number()) wrong_type(key, "a number", *v);
    out = v->get<double>();
  }
}

void read_optional_double(const json& j, const char* key, std::optional<double>& out) {
  out.reset();
  if (const json* v = field(j, key)) {
    if (!v->is_number()) wrong_type(key, "a number or null", *v);
    out = v->get<double>();
  }
}

void read_int(const json& j, const char* key, int64_t& out) {
  if (const json* v = field(j, key)) {
    if (!v->is_number_integer()) wrong_type(key, "an integer", *v);
    out = v->get<int64_t>();
  }
}

void read_object(const json& j, const char* key, json& out) {
  if (const json* v = field(j, key)) {
    if (!v->is_object()) wrong_type(key, "an object", *v);
    out = *v;
  }
}

void read_uint(const json& j, const char* key, uint64_t& out) {
  if (const json* v = field(j, key)) {
    if (!v->is_number_integer() || v->get<int64_t>() < 0) wrong_type(key, "an integer >= 0", *v);
    out = v->get<uint64_t>();
  }
}

void read_bool(const json& j, const char* key, bool& out) {
  if (const json* v = field(j, key)) {
    if (!v->is_boolean()) wrong_type(key, "true or false", *v);
    out = v->get<bool>();
  }
}

void read_numbers(const json& j, const char* key, std::vector<double>& out) {
  if (const json* v = field(j, key)) {
    if (!v->is_array()) wrong_type(key, "an array of numbers", *v);
    out.clear();
    for (const auto& x : *v) {
      if (!x.is_number()) wrong_type(key, "an array of numbers", *v);
      out.push_back(x.get<double>());
    }
  }
}

const json& group(const json& j, const char* key) {
  static const json empty = json::object();
  const json* v = field(j, key);
  if (!v) return empty;
  if (!v->is_object()) wrong_type(key, "an object", *v);
  return *v;
}

// Version 1 kept these fields in "extra" under keys that differed between the programs that
// wrote them: `dataproxy-trial`, `dataproxy evaluate` ("train_seed", "space" a name beside
// "space_hash", "curve", "data") and `dataproxy calibrate` ("kind", "manifest" a key,
// "evaluation_size"). Keys of a type this does not expect are left out, not refused.
void legacy_extra(const json& extra, TrialRecord& r) {
  auto text = [&](const char* key, std::string& out) {
    if (auto it = extra.find(key); it != extra.end() && it->is_string())
      out = it->get<std::string>();
  };
  auto integer = [&](const char* key, auto& out) {
    if (auto it = extra.find(key); it != extra.end() && it->is_number_integer()) {
      out = it->get<std::remove_reference_t<decltype(out)>>();
    }
  };
  auto flag = [&](const char* key, bool& out) {
    if (auto it = extra.find(key); it != extra.end() && it->is_boolean()) out = it->get<bool>();
  };
  auto curve = [&](const char* key, std::vector<double>& out) {
    auto it = extra.find(key);
    if (it == extra.end() || !it->is_array()) return;
    out.clear();
    for (const auto& x : *it)
      if (x.is_number()) out.push_back(x.get<double>());
  };
  std::string data_kind, calibrate_kind;
  text("data", data_kind);
  text("kind", calibrate_kind);
  TrainingInfo& t = r.training;
  integer("epochs", t.epochs);
  integer("proxy_epochs", t.proxy_epochs);
  if (t.proxy_epochs == 0 && (data_kind == "proxy" || calibrate_kind == "proxy")) {
    t.proxy_epochs = t.epochs;
  }
  integer("steps", t.steps);
  integer("samples_seen", t.samples_seen);
  integer("seed", t.seed);
  integer("train_seed", t.seed);
  integer("threads", t.threads);
  text("memory_format", t.memory_format);
  text("tool_version", t.tool_version);
  curve("full_curve", t.full_curve);
  if (data_kind == "full") curve("curve", t.full_curve);

  DataInfo& d = r.data;
  text("dataset", d.dataset);
  text("space_hash", d.space_hash);
  text("space", extra.contains("space_hash") ? d.space : d.space_file);
  if (calibrate_kind.empty()) text("manifest", d.manifest);
  text("method", d.method);
  if (auto it = extra.find("ratio"); it != extra.end() && it->is_number()) {
    d.ratio = it->get<double>();
  }
  integer("sampling_seed", d.sampling_seed);
  integer("max_train", d.max_train);
  integer("max_test", d.max_test);
  integer("train_size", d.train_size);
  integer("test_size", d.test_size);
  integer("evaluation_size", d.test_size);
  integer("num_classes", d.num_classes);

  if (extra.contains("correct_bits")) {
    Correctness c;
    text("correct_on", c.on);
    text("correct_bits", c.bits);
    r.correct = c;
  }
  if (extra.contains("error")) {
    TrialError e;
    text("error", e.message);
    text("phase", e.phase);
    r.error = e;
  }
  if (auto it = extra.find("nni"); it != extra.end() && it->is_object()) {
    NniTrial n;
    if (auto v = it->find("experiment_id"); v != it->end() && v->is_string()) n.experiment_id = *v;
    if (auto v = it->find("trial_job_id"); v != it->end() && v->is_string()) n.trial_job_id = *v;
    if (auto v = it->find("seq_id"); v != it->end() && v->is_string()) n.seq_id = *v;
    r.nni = n;
  }
  flag("calibration", r.calibration);
  flag("probe", r.probe);
}

std::string errno_text() { return std::strerror(errno); }

void write_all(int fd, const std::string& buf, const fs::path& path) {
  const char* data = buf.data();
  std::size_t size = buf.size();
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw RuntimeFailure("cannot append to " + path.string() + ": " + errno_text() +
                           " (check free disk space and permissions)");
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Offset just past the last '\n' of the file (0 when there is none).
off_t end_of_last_line(int fd, off_t size) {
  char buf[4096];
  off_t end = size;
  while (end > 0) {
    off_t start = end > static_cast<off_t>(sizeof buf) ? end - static_cast<off_t>(sizeof buf) : 0;
    ssize_t n = ::pread(fd, buf, static_cast<std::size_t>(end - start), start);
    if (n <= 0) return size;  // unreadable: leave the file alone
    for (ssize_t i = n - 1; i >= 0; --i) {
      if (buf[i] == '\n') return start + i + 1;
    }
    end = start;
  }
  return 0;
}

}  // namespace

json TrialTiming::to_json() const {
  return {{"startup", startup},
          {"data", data},
          {"train", train},
          {"eval", eval},
          {"write", write},
          {"total", total},
          {"eval_subset", eval_subset},
          {"eval_final", eval_final}};
}

TrialTiming TrialTiming::from_json(const json& j) {
  TrialTiming t;
  read_double(j, "startup", t.startup);
  read_double(j, "data", t.data);
  read_double(j, "train", t.train);
  read_double(j, "eval", t.eval);
  read_double(j, "write", t.write);
  read_double(j, "total", t.total);
  read_int(j, "eval_subset", t.eval_subset);
  read_int(j, "eval_final", t.eval_final);
  return t;
}

json TrainingInfo::to_json() const {
  return {{"epochs", epochs},
          {"proxy_epochs", proxy_epochs},
          {"steps", steps},
          {"samples_seen", samples_seen},
          {"seed", seed},
          {"threads", threads},
          {"memory_format", memory_format},
          {"tool_version", tool_version},
          {"full_curve", full_curve}};
}

TrainingInfo TrainingInfo::from_json(const json& j) {
  TrainingInfo t;
  read_int(j, "epochs", t.epochs);
  read_int(j, "proxy_epochs", t.proxy_epochs);
  read_int(j, "steps", t.steps);
  read_int(j, "samples_seen", t.samples_seen);
  read_uint(j, "seed", t.seed);
  int64_t threads = 0;
  read_int(j, "threads", threads);
  t.threads = static_cast<int>(threads);
  read_string(j, "memory_format", t.memory_format);
  read_string(j, "tool_version", t.tool_version);
  read_numbers(j, "full_curve", t.full_curve);
  return t;
}

json DataInfo::to_json() const {
  return {{"dataset", dataset},
          {"space", space},
          {"space_file", space_file},
          {"space_hash", space_hash},
          {"manifest", manifest},
          {"method", method},
          {"ratio", ratio},
          {"sampling_seed", sampling_seed},
          {"max_train", max_train},
          {"max_test", max_test},
          {"train_size", train_size},
          {"test_size", test_size},
          {"num_classes", num_classes}};
}

DataInfo DataInfo::from_json(const json& j) {
  DataInfo d;
  read_string(j, "dataset", d.dataset);
  read_string(j, "space", d.space);
  read_string(j, "space_file", d.space_file);
  read_string(j, "space_hash", d.space_hash);
  read_string(j, "manifest", d.manifest);
  read_string(j, "method", d.method);
  read_double(j, "ratio", d.ratio);
  read_int(j, "sampling_seed", d.sampling_seed);
  read_int(j, "max_train", d.max_train);
  read_int(j, "max_test", d.max_test);
  read_int(j, "train_size", d.train_size);
  read_int(j, "test_size", d.test_size);
  read_int(j, "num_classes", d.num_classes);
  return d;
}

json TrialRecord::to_json() const {
  json j;
  j["schema"] = kSchema;
  j["trial_id"] = trial_id;
  j["parameter_id"] = parameter_id ? json(*parameter_id) : json(nullptr);
  j["framework"] = framework;
  j["config"] = config;
  j["config_id"] = config_id;
  j["status"] = status;
  j["proxy_accuracy"] = optional_to_json(proxy_accuracy);
  j["full_accuracy"] = optional_to_json(full_accuracy);
  j["spot_check"] = spot_check;
  j["proxy_curve"] = proxy_curve;
  j["proxy_seconds"] = proxy_seconds;
  j["full_seconds"] = full_seconds;
  j["macs"] = macs;
  j["params"] = params;
  j["device"] = device;
  j["manifest_key"] = manifest_key;
  j["finished"] = finished;
  if (timing) j["timing"] = timing->to_json();
  j["training"] = training.to_json();
  j["data"] = data.to_json();
  if (correct) j["correct"] = {{"on", correct->on}, {"bits", correct->bits}};
  if (error) j["error"] = {{"message", error->message}, {"phase", error->phase}};
  if (nni) {
    j["nni"] = {{"experiment_id", nni->experiment_id},
                {"trial_job_id", nni->trial_job_id},
                {"seq_id", nni->seq_id}};
  }
  if (calibration) j["calibration"] = true;
  if (probe) j["probe"] = true;
  return j;
}

TrialRecord TrialRecord::from_json(const json& j) {
  DATAPROXY_CHECK(j.is_object(), DataError,
                  "a result record must be a JSON object, got " << j.dump().substr(0, 80));
  const json* schema = field(j, "schema");
  const bool v1 = schema && schema->is_string() && schema->get<std::string>() == kSchemaV1;
  DATAPROXY_CHECK(v1 || (schema && schema->is_string() && schema->get<std::string>() == kSchema),
                  DataError,
                  "result record has schema "
                      << (schema ? schema->dump() : std::string("(none)")) << ", expected \""
                      << kSchema << "\" or \"" << kSchemaV1
                      << "\" (written by a newer dataproxy version? use that version to read it)");
  TrialRecord r;
  read_string(j, "trial_id", r.trial_id);
  if (const json* v = field(j, "parameter_id")) {
    if (!v->is_number_integer()) wrong_type("parameter_id", "an integer or null", *v);
    r.parameter_id = v->get<int64_t>();
  }
  read_string(j, "framework", r.framework);
  if (const json* v = field(j, "config")) r.config = *v;
  read_string(j, "config_id", r.config_id);
  read_string(j, "status", r.status);
  read_optional_double(j, "proxy_accuracy", r.proxy_accuracy);
  read_optional_double(j, "full_accuracy", r.full_accuracy);
  if (const json* v = field(j, "spot_check")) {
    if (!v->is_boolean()) wrong_type("spot_check", "true or false", *v);
    r.spot_check = v->get<bool>();
  }
  if (const json* v = field(j, "proxy_curve")) {
    if (!v->is_array()) wrong_type("proxy_curve", "an array of numbers", *v);
    for (const auto& x : *v) {
      if (!x.is_number()) wrong_type("proxy_curve", "an array of numbers", *v);
      r.proxy_curve.push_back(x.get<double>());
    }
  }
  read_double(j, "proxy_seconds", r.proxy_seconds);
  read_double(j, "full_seconds", r.full_seconds);
  read_int(j, "macs", r.macs);
  read_int(j, "params", r.params);
  read_string(j, "device", r.device);
  read_string(j, "manifest_key", r.manifest_key);
  read_string(j, "finished", r.finished);
  if (const json* v = field(j, "timing")) {
    if (!v->is_object()) wrong_type("timing", "an object of seconds per phase", *v);
    r.timing = TrialTiming::from_json(*v);
  }
  if (v1) {
    json extra = json::object();
    read_object(j, "extra", extra);
    legacy_extra(extra, r);
    return r;
  }
  r.training = TrainingInfo::from_json(group(j, "training"));
  r.data = DataInfo::from_json(group(j, "data"));
  if (field(j, "correct")) {
    const json& c = group(j, "correct");
    r.correct.emplace();
    read_string(c, "on", r.correct->on);
    read_string(c, "bits", r.correct->bits);
  }
  if (field(j, "error")) {
    const json& e = group(j, "error");
    r.error.emplace();
    read_string(e, "message", r.error->message);
    read_string(e, "phase", r.error->phase);
  }
  if (field(j, "nni")) {
    const json& n = group(j, "nni");
    r.nni.emplace();
    read_string(n, "experiment_id", r.nni->experiment_id);
    read_string(n, "trial_job_id", r.nni->trial_job_id);
    read_string(n, "seq_id", r.nni->seq_id);
  }
  read_bool(j, "calibration", r.calibration);
  read_bool(j, "probe", r.probe);
  return r;
}

ResultsStore::ResultsStore(const fs::path& path) {
  std::error_code ec;
  bool is_file = path.extension() == ".jsonl" || fs::is_regular_file(path, ec);
  file_ = is_file ? path : path / "results.jsonl";
}

void ResultsStore::append(const TrialRecord& record) const {
  // flock on the file itself and one write per record. Under the lock, an unterminated tail can
  // only be a writer killed mid-line; it is cut off first, or it would glue onto this record and
  // corrupt the middle of the store.
  std::string line = record.to_json().dump();
  line.push_back('\n');
  std::error_code ec;
  if (file_.has_parent_path()) fs::create_directories(file_.parent_path(), ec);
  int fd = ::open(file_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  DATAPROXY_CHECK(fd >= 0, RuntimeFailure,
                  "cannot open results store " << file_.string()
                                               << " for appending: " << errno_text()
                                               << " (check the folder's permissions)");
  try {
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        throw RuntimeFailure("cannot lock results store " + file_.string() + ": " + errno_text());
      }
    }
    struct stat st {};
    DATAPROXY_CHECK(::fstat(fd, &st) == 0, RuntimeFailure,
                    "cannot stat " << file_.string() << ": " << errno_text());
    if (st.st_size > 0) {
      char last = 0;
      if (::pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n') {
        DATAPROXY_CHECK(
            ::ftruncate(fd, end_of_last_line(fd, st.st_size)) == 0, RuntimeFailure,
            "cannot cut the torn last line of " << file_.string() << ": " << errno_text());
      }
    }
    write_all(fd, line, file_);
    ::fsync(fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);  // closing releases the lock
}

std::vector<TrialRecord> ResultsStore::load() const {
  std::error_code ec;
  if (!fs::exists(file_, ec)) return {};
  // One read: a snapshot, even while trial runners keep appending.
  const std::string text = read_file(file_);
  std::vector<TrialRecord> records;
  std::size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    bool terminated = nl != std::string::npos;
    std::string_view line(text.data() + pos, (terminated ? nl : text.size()) - pos);
    pos = terminated ? nl + 1 : text.size();
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    json j = json::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded()) {
      // A line without its '\n' at the very end is a write in progress or a killed writer.
      if (!terminated) break;
      throw DataError(file_.string() + ":" + std::to_string(line_no) +
                      ": not valid JSON; the results store is corrupt there (remove or repair "
                      "that line, then retry)");
    }
    try {
      records.push_back(TrialRecord::from_json(j));
    } catch (const DataError& e) {
      throw DataError(file_.string() + ":" + std::to_string(line_no) + ": " + e.what() +
                      " (remove or repair that line, then retry)");
    }
  }
  return records;
}

std::vector<CandidatePair> pair_candidates(const std::vector<TrialRecord>& records,
                                           const PairingManifest& manifest) {
  struct Sums {
    double proxy = 0, full = 0;
    int64_t n_proxy = 0, n_full = 0;
  };
  std::map<std::string, Sums> by_config;
  for (const TrialRecord& r : records) {
    if (r.status != "complete" || r.config_id.empty()) continue;
    Sums& s = by_config[r.config_id];
    if (r.proxy_accuracy && (manifest.key.empty() || r.manifest_key == manifest.key)) {
      s.proxy += *r.proxy_accuracy;
      ++s.n_proxy;
    }
    if (r.full_accuracy) {
      s.full += *r.full_accuracy;
      ++s.n_full;
    }
  }
  std::map<std::string, double> probe_full(manifest.probes.begin(), manifest.probes.end());
  std::vector<CandidatePair> out;
  for (const auto& [config_id, s] : by_config) {
    if (s.n_proxy == 0) continue;
    CandidatePair p;
    p.config_id = config_id;
    p.proxy = s.proxy / static_cast<double>(s.n_proxy);
    p.proxy_runs = s.n_proxy;
    if (s.n_full > 0) {
      p.full = s.full / static_cast<double>(s.n_full);
      p.full_runs = s.n_full;
    } else if (auto it = probe_full.find(config_id); it != probe_full.end()) {
      p.full = it->second;
      p.full_from_probe = true;
    } else {
      continue;
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace dataproxy
