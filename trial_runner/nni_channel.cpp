#include "nni_channel.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <thread>

#include "dataproxy/error.h"

namespace dataproxy::nni {
namespace {

using Clock = std::chrono::steady_clock;

void sleep_seconds(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

bool stop_requested(const ChannelOptions& options) {
  return options.stop != nullptr && options.stop->load();
}

void throw_if_stopped(const ChannelOptions& options) {
  if (stop_requested(options)) {
    throw Interrupted("interrupted while waiting for NNI's parameters");
  }
}

std::optional<int64_t> optional_int(const json& j, const char* key, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  DATAPROXY_CHECK(it->is_number_integer(), InvalidInput,
                  origin << ": \"" << key << "\" must be an integer or null, got " << it->dump());
  return it->get<int64_t>();
}

// Replaces non-finite numbers by null: NNI's JSON parser rejects NaN and Infinity.
json finite_or_null(const json& value) {
  if (value.is_number_float() && !std::isfinite(value.get<double>())) return nullptr;
  if (value.is_object() || value.is_array()) {
    json out = value;
    for (auto& item : out) item = finite_or_null(item);
    return out;
  }
  return value;
}

bool is_finite_number(const json& v) {
  return v.is_number() && (!v.is_number_float() || std::isfinite(v.get<double>()));
}

// ---- HTTP ----------------------------------------------------------------------------------

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

void ensure_curl_global() { static CurlGlobal global; }

size_t append_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

struct HttpResponse {
  long status = 0;
  std::string body;
};

bool is_connection_error(CURLcode code) {
  return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
         code == CURLE_COULDNT_RESOLVE_PROXY || code == CURLE_OPERATION_TIMEDOUT ||
         code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR || code == CURLE_GOT_NOTHING;
}

class HttpChannel : public Channel {
 public:
  HttpChannel(std::string url, TrialEnv env, ChannelOptions options)
      : url_(std::move(url)), env_(std::move(env)), options_(options) {
    ensure_curl_global();
    curl_ = curl_easy_init();
    DATAPROXY_CHECK(curl_ != nullptr, RuntimeFailure, "libcurl could not create a handle");
  }
  ~HttpChannel() override { curl_easy_cleanup(curl_); }

  ParameterRecord receive_parameter() override {
    put(json{{"type", "request_parameter"}}.dump());
    const auto start = Clock::now();
    for (;;) {
      throw_if_stopped(options_);
      HttpResponse r = request("GET", "");
      if (r.status == 200) return parse_parameter_command(r.body, "NNI channel " + url_);
      if (r.status == 410) {
        throw RuntimeFailure("NNI's trial command channel " + url_ +
                             " is closed (HTTP 410) before it sent this trial's parameters: the "
                             "experiment was stopped");
      }
      if (r.status != 408) {
        throw RuntimeFailure("NNI's trial command channel " + url_ + " answered HTTP " +
                             std::to_string(r.status) + " to GET: " + r.body.substr(0, 200));
      }
      const double waited = std::chrono::duration<double>(Clock::now() - start).count();
      if (options_.parameter_timeout_s > 0 && waited > options_.parameter_timeout_s) {
        throw RuntimeFailure("no parameters from NNI's trial command channel " + url_ + " after " +
                             std::to_string(static_cast<int>(waited)) +
                             " s; the tuner has none left for this trial (NNI issue #5693 can "
                             "hand this trial's set to another trial)");
      }
    }
  }

  void send_metric(const std::string& metric_json) override {
    put(json{{"type", "metric"}, {"metric", metric_json}}.dump());
  }

  std::string kind() const override { return "http"; }

 private:
  void put(const std::string& body) {
    HttpResponse r = request("PUT", body);
    if (r.status == 410) {
      throw RuntimeFailure("NNI's trial command channel " + url_ +
                           " is closed (HTTP 410): the experiment was stopped");
    }
    if (r.status < 200 || r.status >= 300) {
      throw RuntimeFailure("NNI's trial command channel " + url_ + " answered HTTP " +
                           std::to_string(r.status) + " to PUT: " + r.body.substr(0, 200));
    }
  }

  // One request, retried with a doubling delay while the connection itself fails.
  HttpResponse request(const char* method, const std::string& body) {
    std::string last_error;
    double delay = options_.retry_delay_s;
    const int attempts = std::max(1, options_.connect_attempts);
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      HttpResponse response;
      char error[CURL_ERROR_SIZE] = {0};
      curl_easy_reset(curl_);
      curl_easy_setopt(curl_, CURLOPT_URL, url_.c_str());
      // The channel is local to the experiment: never route it through http_proxy (NNI #1396).
      curl_easy_setopt(curl_, CURLOPT_NOPROXY, "*");
      curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error);
      curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS,
                       static_cast<long>(std::min(options_.request_timeout_s, 10.0) * 1000));
      curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS,
                       static_cast<long>(options_.request_timeout_s * 1000));
      curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, append_body);
      curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &response.body);
      struct curl_slist* headers = nullptr;
      if (std::strcmp(method, "PUT") == 0) {
        // Without this header NNI's server ignores the body and the trial waits forever.
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
      } else {
        curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
      }
      const CURLcode code = curl_easy_perform(curl_);
      curl_slist_free_all(headers);
      if (code == CURLE_OK) {
        curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &response.status);
        return response;
      }
      last_error = error[0] != 0 ? error : curl_easy_strerror(code);
      if (!is_connection_error(code)) break;
      if (attempt < attempts) {
        throw_if_stopped(options_);
        sleep_seconds(delay);
        delay *= 2;
      }
    }
    throw RuntimeFailure("cannot reach NNI's trial command channel " + url_ +
                         " (NNI_TRIAL_COMMAND_CHANNEL) after " + std::to_string(attempts) +
                         " attempts: " + last_error +
                         ". Is the experiment still running? (nnictl experiment list)");
  }

  std::string url_;
  TrialEnv env_;
  ChannelOptions options_;
  CURL* curl_ = nullptr;
};

// ---- legacy (file and stdout) ---------------------------------------------------------------

class LegacyChannel : public Channel {
 public:
  LegacyChannel(TrialEnv env, bool use_stdout, ChannelOptions options)
      : env_(std::move(env)), use_stdout_(use_stdout), options_(options) {}

  ParameterRecord receive_parameter() override {
    const fs::path file = env_.sys_dir / "parameter.cfg";
    std::error_code ec;
    if (!fs::exists(file, ec)) {
      send_metric(json{
          {"trial_job_id", env_.trial_job_id},
          {"type", "REQUEST_PARAMETER"},
          {"sequence", 0},
          {"parameter_index",
           0}}.dump());
    }
    const auto start = Clock::now();
    for (;;) {
      throw_if_stopped(options_);
      if (fs::exists(file, ec) && fs::file_size(file, ec) > 0 && !ec) {
        std::FILE* f = std::fopen(file.c_str(), "rb");
        DATAPROXY_CHECK(
            f != nullptr, RuntimeFailure,
            "cannot open NNI's parameter file " << file << ": " << std::strerror(errno));
        std::string text;
        char buf[4096];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
        std::fclose(f);
        return parse_parameter_record(text, file.string());
      }
      const double waited = std::chrono::duration<double>(Clock::now() - start).count();
      if (options_.parameter_timeout_s > 0 && waited > options_.parameter_timeout_s) {
        throw RuntimeFailure("NNI's parameter file " + file.string() + " did not appear within " +
                             std::to_string(static_cast<int>(waited)) + " s");
      }
      sleep_seconds(options_.poll_interval_s);
    }
  }

  void send_metric(const std::string& metric_json) override {
    if (use_stdout_) {
      std::lock_guard<std::mutex> lock(mutex_);
      std::ostream& out = options_.stdout_stream ? *options_.stdout_stream : std::cout;
      out << encode_stdout_metric(metric_json) << '\n';
      out.flush();
      return;
    }
    const fs::path dir = env_.sys_dir / ".nni";
    std::error_code ec;
    fs::create_directories(dir, ec);
    DATAPROXY_CHECK(!ec, RuntimeFailure,
                    "cannot create NNI's metrics folder " << dir << ": " << ec.message());
    const fs::path file = dir / "metrics";
    const std::string record = encode_file_metric(metric_json);
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    DATAPROXY_CHECK(fd >= 0, RuntimeFailure,
                    "cannot open NNI's metrics file " << file << ": " << std::strerror(errno));
    const ssize_t written = ::write(fd, record.data(), record.size());
    const int saved = errno;
    ::close(fd);
    DATAPROXY_CHECK(written == static_cast<ssize_t>(record.size()), RuntimeFailure,
                    "cannot append to NNI's metrics file " << file << ": " << std::strerror(saved));
  }

  std::string kind() const override { return use_stdout_ ? "stdout" : "file"; }

 private:
  TrialEnv env_;
  bool use_stdout_;
  ChannelOptions options_;
  std::mutex mutex_;
};

}  // namespace

ParameterRecord parse_parameter_record(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw InvalidInput(origin + ": the parameter message is not JSON (" + e.what() +
                       "): " + text.substr(0, 200));
  }
  DATAPROXY_CHECK(
      j.is_object(), InvalidInput,
      origin << ": the parameter message must be a JSON object, got " << j.dump().substr(0, 200));
  ParameterRecord record;
  record.parameter_id = optional_int(j, "parameter_id", origin);
  auto params = j.find("parameters");
  DATAPROXY_CHECK(
      params != j.end(), InvalidInput,
      origin << ": the parameter message has no \"parameters\" key: " << j.dump().substr(0, 200));
  DATAPROXY_CHECK(
      params->is_object(), InvalidInput,
      origin << ": \"parameters\" must be a JSON object, got " << params->dump().substr(0, 200));
  record.parameters = *params;
  if (auto s = j.find("parameter_source"); s != j.end() && s->is_string()) {
    record.parameter_source = s->get<std::string>();
  }
  record.parameter_index = optional_int(j, "parameter_index", origin).value_or(0);
  return record;
}

ParameterRecord parse_parameter_command(const std::string& body, const std::string& origin) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw InvalidInput(origin + ": the command is not JSON (" + e.what() +
                       "): " + body.substr(0, 200));
  }
  DATAPROXY_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), InvalidInput,
                  origin << ": a command must be a JSON object with a string \"type\", got "
                         << body.substr(0, 200));
  const std::string type = j["type"].get<std::string>();
  DATAPROXY_CHECK(type == "parameter", InvalidInput,
                  origin << ": expected a \"parameter\" command, got type \"" << type << "\"");
  auto p = j.find("parameter");
  DATAPROXY_CHECK(p != j.end() && p->is_string(), InvalidInput,
                  origin << ": the \"parameter\" command must carry the parameter set as a JSON "
                            "string under \"parameter\", got "
                         << body.substr(0, 200));
  return parse_parameter_record(p->get<std::string>(), origin);
}

json final_metric_value(const json& final_event) {
  json metric = {{"default", final_event.value("proxy_accuracy", json())}};
  for (const char* key :
       {"proxy_accuracy", "full_accuracy", "spot_check", "spearman", "kendall", "n_spot_checks",
        "config_id", "proxy_seconds", "full_seconds", "macs", "manifest_key"}) {
    metric[key] = final_event.contains(key) ? final_event[key] : json();
  }
  return metric;
}

void check_metric_value(const json& value) {
  if (is_finite_number(value)) return;
  if (value.is_object()) {
    auto d = value.find("default");
    DATAPROXY_CHECK(d != value.end() && is_finite_number(*d), RuntimeFailure,
                    "NNI metric " << value.dump() << " needs a finite number under \"default\"");
    return;
  }
  throw RuntimeFailure("NNI metric " + value.dump() +
                       " must be a finite number or an object with a numeric \"default\"");
}

std::string encode_metric(const Metric& metric) {
  check_metric_value(metric.value);
  json j;
  j["parameter_id"] = metric.parameter_id ? json(*metric.parameter_id) : json(nullptr);
  j["trial_job_id"] = metric.trial_job_id;
  j["type"] = metric.type;
  j["sequence"] = metric.sequence;
  j["value"] = finite_or_null(metric.value).dump();
  return j.dump();
}

std::string encode_file_metric(const std::string& metric_json) {
  const std::string data = metric_json + "\n";
  DATAPROXY_CHECK(data.size() < 1000000, RuntimeFailure,
                  "NNI metric too long (" << data.size() << " bytes; the limit is 999999)");
  char header[16];
  std::snprintf(header, sizeof header, "ME%06zu", data.size());
  return header + data;
}

std::string encode_stdout_metric(const std::string& metric_json) {
  return "NNISDK_MEb'" + metric_json + "'";
}

TrialEnv TrialEnv::from_environment(const std::function<const char*(const char*)>& getenv) {
  auto get = [&](const char* name) -> std::string {
    const char* v = getenv ? getenv(name) : std::getenv(name);
    return v ? std::string(v) : std::string();
  };
  TrialEnv env;
  env.platform = get("NNI_PLATFORM");
  env.trial_job_id = get("NNI_TRIAL_JOB_ID");
  env.experiment_id = get("NNI_EXP_ID");
  env.command_channel = get("NNI_TRIAL_COMMAND_CHANNEL");
  env.sys_dir = get("NNI_SYS_DIR");
  env.output_dir = get("NNI_OUTPUT_DIR");
  env.seq_id = get("NNI_TRIAL_SEQ_ID");
  const std::string reuse = get("REUSE_MODE");
  env.reuse_mode = reuse == "true" || reuse == "True";
  return env;
}

std::unique_ptr<Channel> make_http_channel(const std::string& url, const TrialEnv& env,
                                           const ChannelOptions& options) {
  return std::make_unique<HttpChannel>(url, env, options);
}

std::unique_ptr<Channel> make_legacy_channel(const TrialEnv& env, bool use_stdout,
                                             const ChannelOptions& options) {
  return std::make_unique<LegacyChannel>(env, use_stdout, options);
}

std::unique_ptr<Channel> make_channel(const TrialEnv& env, const ChannelOptions& options) {
  DATAPROXY_CHECK(env.active(), InvalidInput,
                  "not launched by NNI (NNI_PLATFORM is unset): give the parameters with "
                  "--params or --params-file");
  DATAPROXY_CHECK(!env.trial_job_id.empty(), InvalidInput,
                  "NNI_PLATFORM is set but NNI_TRIAL_JOB_ID is not: run the trial from NNI, or "
                  "give the parameters with --params");
  const std::string& url = env.command_channel;
  if (!url.empty()) {
    DATAPROXY_CHECK(url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0, InvalidInput,
                    "NNI_TRIAL_COMMAND_CHANNEL=" << url
                                                 << " is not an http:// URL; dataproxy-trial "
                                                    "speaks NNI's HTTP command channel only");
    return make_http_channel(url, env, options);
  }
  DATAPROXY_CHECK(!env.sys_dir.empty(), InvalidInput,
                  "NNI_PLATFORM=" << env.platform
                                  << " without NNI_TRIAL_COMMAND_CHANNEL needs NNI_SYS_DIR (where "
                                     "NNI writes parameter.cfg), and it is unset");
  const bool use_stdout = env.platform != "local" || env.reuse_mode;
  return make_legacy_channel(env, use_stdout, options);
}

void MetricReporter::intermediate(const json& value) {
  Metric m;
  m.type = "PERIODICAL";
  m.parameter_id = parameter_id_;
  m.trial_job_id = trial_job_id_;
  m.sequence = sequence_;
  m.value = value;
  channel_.send_metric(encode_metric(m));
  ++sequence_;
}

void MetricReporter::final(const json& value) {
  Metric m;
  m.type = "FINAL";
  m.parameter_id = parameter_id_;
  m.trial_job_id = trial_job_id_;
  m.sequence = 0;
  m.value = value;
  channel_.send_metric(encode_metric(m));
}

}  // namespace dataproxy::nni
