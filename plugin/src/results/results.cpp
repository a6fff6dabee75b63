#include "dataproxy/results.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "dataproxy/error.h"
#include "dataproxy/files.h"

namespace dataproxy {
namespace {

constexpr const char* kSchema = "dataproxy.result/1";

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
  j["extra"] = extra;
  return j;
}

TrialRecord TrialRecord::from_json(const json& j) {
  DATAPROXY_CHECK(j.is_object(), DataError,
                  "a result record must be a JSON object, got " << j.dump().substr(0, 80));
  const json* schema = field(j, "schema");
  DATAPROXY_CHECK(schema && schema->is_string() && schema->get<std::string>() == kSchema, DataError,
                  "result record has schema " << (schema ? schema->dump() : std::string("(none)"))
                                              << ", expected \"" << kSchema
                                              << "\" (written by another dataproxy version?)");
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
  read_object(j, "extra", r.extra);
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

}  // namespace dataproxy
