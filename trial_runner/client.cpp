// dataproxy-trial-client: the trial command of an NNI experiment, without LibTorch, so that it
// starts in milliseconds. It asks NNI for the trial's parameters once, hands the candidate to a
// long-lived `dataproxy-trial --serve --listen` of this experiment (one per concurrency slot,
// started by the first client of the slot), relays the trial's JSON Lines to stdout and its
// metrics to NNI, and exits with the trial's status. See README.md.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataproxy/error.h"
#include "local_socket.h"
#include "nni_channel.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using dataproxy::InvalidInput;
using dataproxy::RuntimeFailure;
using dataproxy::trial::LineReader;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kMaxSlots = 64;

std::atomic<bool> g_stop{false};

// First signal: stop the candidate (on the server) and report it interrupted. Second: leave.
extern "C" void on_signal(int) {
  if (g_stop.exchange(true)) ::_exit(130);
}

struct ClientOptions {
  fs::path trial_bin;
  fs::path server_dir;
  double idle_exit_s = 120;
  double start_timeout_s = 120;
  double parameter_timeout_s = 600;
  bool no_serve = false;
  std::vector<std::string> trial_args;  // dataproxy-trial's own flags, passed on
  std::string results;                  // --results among them, if any
};

const char* kUsage =
    "dataproxy-trial-client: the trial command of an NNI experiment. It receives the trial's\n"
    "parameters from NNI and trains the candidate in a long-lived `dataproxy-trial --serve`\n"
    "of this experiment (one per concurrency slot, started on demand, ending when idle or\n"
    "when the experiment ends), or in a process of its own with --no-serve or the tuner's\n"
    "classArg serve: false.\n"
    "Usage: dataproxy-trial-client [client options] DATAPROXY-TRIAL FLAGS...\n"
    "  e.g. dataproxy-trial-client --space S.yaml --data-root data --epochs 4 --threads 1\n"
    "Client options:\n"
    "  --trial-bin PATH        dataproxy-trial (default: the one beside this program)\n"
    "  --server-dir DIR        lock files and server logs (default: <results>/servers)\n"
    "  --idle-exit S           a server exits after S seconds without a trial (default 120)\n"
    "  --server-start-timeout S  longest wait for a new server (default 120)\n"
    "  --parameter-timeout S   longest wait for NNI's parameters (default 600; 0 = no limit)\n"
    "  --no-serve              always train in a process of its own\n"
    "Every other flag is dataproxy-trial's (see dataproxy-trial --help).\n";

double parse_seconds(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    const double v = std::stod(value, &used);
    if (used == value.size() && v >= 0) return v;
  } catch (const std::exception&) {
  }
  throw InvalidInput(flag + " must be a number of seconds >= 0, got '" + value + "'");
}

fs::path own_directory() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path(".") : self.parent_path();
}

ClientOptions parse_args(int argc, char** argv) {
  ClientOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool inline_value = false;
    const auto eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inline_value = true;
    }
    auto take = [&]() -> std::string {
      if (inline_value) return value;
      DATAPROXY_CHECK(i + 1 < argc, InvalidInput,
                      arg << " needs a value; see dataproxy-trial-client --help");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--trial-bin") {
      o.trial_bin = take();
    } else if (arg == "--server-dir") {
      o.server_dir = take();
    } else if (arg == "--idle-exit") {
      o.idle_exit_s = parse_seconds(arg, take());
    } else if (arg == "--server-start-timeout") {
      o.start_timeout_s = parse_seconds(arg, take());
    } else if (arg == "--parameter-timeout") {
      o.parameter_timeout_s = parse_seconds(arg, take());
    } else if (arg == "--no-serve") {
      o.no_serve = true;
    } else if (arg == "--params" || arg == "--params-file" || arg == "--serve" ||
               arg == "--listen" || arg == "--stop-file" || arg == "--idle-exit") {
      throw InvalidInput(arg +
                         " is not for dataproxy-trial-client: it receives the parameters from "
                         "NNI and runs the server itself; run dataproxy-trial for that");
    } else {
      if (arg == "--results") {
        o.results = inline_value ? value : (i + 1 < argc ? argv[i + 1] : "");
      }
      o.trial_args.push_back(argv[i]);
    }
  }
  if (o.trial_bin.empty()) o.trial_bin = own_directory() / "dataproxy-trial";
  DATAPROXY_CHECK(
      ::access(o.trial_bin.c_str(), X_OK) == 0, InvalidInput,
      "cannot run the trial program " << o.trial_bin << "; build it, or give --trial-bin PATH");
  return o;
}

void emit(const json& event) {
  std::cout << event.dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;
}

// The environment of a trial process: this one's, without NNI's variables (the trial gets its
// parameters and NNI identity in the request; only this client talks to NNI).
std::vector<std::string> trial_environment() {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "NNI_", 4) != 0) out.emplace_back(*e);
  }
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// What a trial's events mean to NNI, whoever trains it.
class Relay {
 public:
  explicit Relay(dataproxy::nni::MetricReporter& reporter) : reporter_(reporter) {}

  // Relays the trial's lines from `reader` until its terminal event. `interrupt` asks the
  // trainer to stop once the client is signalled. Returns the exit code, or nullopt when the
  // stream ended without a terminal event.
  std::optional<int> run(LineReader& reader, const std::function<void()>& interrupt) {
    bool stopping = false;
    Clock::time_point give_up{};
    std::string line;
    while (true) {
      const LineReader::Result r = reader.read(line, 100);
      if (g_stop && !stopping) {
        stopping = true;
        interrupt();
        give_up = Clock::now() + std::chrono::seconds(4);  // NNI kills 5 s after SIGINT
      }
      if (stopping && Clock::now() > give_up) {
        emit({{"event", "interrupted"}, {"phase", "unknown"}, {"recorded", false}});
        return 130;
      }
      if (r == LineReader::Result::kTimeout) continue;
      if (r == LineReader::Result::kEnd) return std::nullopt;
      std::cout << line << std::endl;
      const json event = json::parse(line, nullptr, false);
      if (!event.is_object()) continue;
      const std::string kind = event.value("event", "");
      if (kind == "start") {
        started_ = true;
      } else if (kind == "epoch") {
        const json& accuracy = event.contains("test_accuracy") ? event["test_accuracy"] : json();
        if (event.value("phase", "") == "proxy" && accuracy.is_number() &&
            accuracy.get<double>() >= 0 && !g_stop) {
          reporter_.intermediate(accuracy.get<double>());
        }
      } else if (kind == "final") {
        reporter_.final(dataproxy::nni::final_metric_value(event));
        return 0;
      } else if (kind == "pruned") {
        return 0;
      } else if (kind == "interrupted") {
        return 130;
      } else if (kind == "error") {
        std::cerr << "dataproxy-trial: error: " << event.value("message", std::string("?"))
                  << std::endl;
        const json& code = event.contains("exit_code") ? event["exit_code"] : json();
        return code.is_number_integer() ? code.get<int>() : 1;
      }
    }
  }
  bool started() const { return started_; }

 private:
  dataproxy::nni::MetricReporter& reporter_;
  bool started_ = false;
};

std::string request_line(const json& request) {
  return request.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

// One process for this trial: `dataproxy-trial --serve` on a socket pair, one request, then EOF.
int train_in_own_process(const ClientOptions& o, const json& request, Relay& relay) {
  int pair[2];
  DATAPROXY_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, RuntimeFailure,
                  "cannot make a socket pair: " << std::strerror(errno));
  std::vector<std::string> args = {o.trial_bin.string(), "--serve"};
  args.insert(args.end(), o.trial_args.begin(), o.trial_args.end());
  std::vector<std::string> env = trial_environment();
  std::vector<char*> argv = c_strings(args), envp = c_strings(env);
  const pid_t pid = ::fork();
  DATAPROXY_CHECK(pid >= 0, RuntimeFailure, "cannot start " << o.trial_bin << ": fork failed");
  if (pid == 0) {
    ::setpgid(0, 0);  // a signal to this trial's group reaches the trainer once, from here
    ::dup2(pair[1], 0);
    ::dup2(pair[1], 1);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(pair[1]);
  emit({{"event", "server"}, {"mode", "process"}, {"pid", pid}});
  dataproxy::trial::send_all(pair[0], request_line(request));
  ::shutdown(pair[0], SHUT_WR);  // one request: the process ends after this trial
  LineReader reader(pair[0]);
  const std::optional<int> code = relay.run(reader, [pid] { ::kill(pid, SIGINT); });
  ::close(pair[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (code) return *code;
  if (g_stop) {  // stopped before it could say so (still starting)
    emit({{"event", "interrupted"}, {"phase", "start"}, {"recorded", false}});
    return 130;
  }
  // Ended without a terminal event: the trial program's own error is on stderr.
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) return WEXITSTATUS(status);
  std::cerr << "dataproxy-trial-client: error: " << o.trial_bin
            << " ended without a result (status " << status << ")" << std::endl;
  return 1;
}

// A concurrency slot of this experiment's servers, held (flock) while this trial runs.
struct Slot {
  int lock_fd = -1;
  int index = -1;
  fs::path log;
  std::string socket_name;
};

std::optional<Slot> acquire_slot(const fs::path& dir, const std::string& key) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string dir_hash = dataproxy::trial::short_hash(fs::weakly_canonical(dir, ec).string());
  for (int k = 0; k < kMaxSlots; ++k) {
    const std::string stem = key + "-slot-" + std::to_string(k);
    const fs::path lock = dir / (stem + ".lock");
    const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      std::cerr << "dataproxy-trial-client: warning: cannot open " << lock << ": "
                << std::strerror(errno) << std::endl;
      return std::nullopt;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      return Slot{fd, k, dir / (stem + ".log"), "dataproxy-trial/" + dir_hash + "/" + stem};
    }
    ::close(fd);
  }
  return std::nullopt;
}

// Starts the slot's server, detached (its own session, so NNI's signals to the trial do not
// reach it; its output to the slot's log), and waits until it listens. -1 when it does not.
int start_server(const ClientOptions& o, const Slot& slot, const fs::path& stop_file,
                 bool& bad_flags) {
  std::vector<std::string> args = {o.trial_bin.string(), "--serve",
                                   "--listen",           slot.socket_name,
                                   "--idle-exit",        std::to_string(o.idle_exit_s),
                                   "--stop-file",        stop_file.string()};
  args.insert(args.end(), o.trial_args.begin(), o.trial_args.end());
  std::vector<std::string> env = trial_environment();
  std::vector<char*> argv = c_strings(args), envp = c_strings(env);
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::setsid();
    const int log = ::open(slot.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) ::dup2(null, 0);
    if (log >= 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
    }
    // Nothing of the trial's (a pipe NNI reads to its end) may stay open in the server.
    for (int fd = 3; fd < 4096; ++fd) ::close(fd);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  const auto deadline = Clock::now() + std::chrono::duration<double>(o.start_timeout_s);
  while (Clock::now() < deadline && !g_stop) {
    const int fd = dataproxy::trial::connect_local(slot.socket_name);
    if (fd >= 0) return fd;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      bad_flags = WIFEXITED(status) && WEXITSTATUS(status) == 2;
      std::cerr << "dataproxy-trial-client: the trial server for slot " << slot.index
                << " ended at start (status " << status << "; see " << slot.log << ")" << std::endl;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!g_stop) {
    std::cerr << "dataproxy-trial-client: the trial server for slot " << slot.index
              << " did not listen within " << o.start_timeout_s << " s (see " << slot.log << ")"
              << std::endl;
  }
  return -1;
}

enum class Served { kDone, kRetry, kFallback };

// One try on the slot's server; `code` holds the exit code when kDone.
Served train_on_server(const ClientOptions& o, const Slot& slot, const fs::path& stop_file,
                       const json& request, Relay& relay, int& code) {
  bool started = false, bad_flags = false;
  int fd = dataproxy::trial::connect_local(slot.socket_name);
  if (fd < 0) {
    started = true;
    fd = start_server(o, slot, stop_file, bad_flags);
    // Bad flags: the process of its own shows the error and exits with its code.
    if (fd < 0) return Served::kFallback;
  }
  LineReader reader(fd);
  std::string line;
  // An idle server answers at once; one still stopping an abandoned candidate within seconds.
  const LineReader::Result r = reader.read(line, 60000);
  const json accepted = r == LineReader::Result::kLine ? json::parse(line, nullptr, false) : json();
  if (!accepted.is_object() || accepted.value("event", "") != "accepted") {
    ::close(fd);
    // Gone between connect and accept (it was ending when idle): start another.
    return r == LineReader::Result::kEnd ? Served::kRetry : Served::kFallback;
  }
  emit({{"event", "server"},
        {"mode", "served"},
        {"pid", accepted.value("pid", 0)},
        {"served", accepted.value("served", 0)},
        {"slot", slot.index},
        {"started", started},
        {"log", slot.log.string()}});
  if (!dataproxy::trial::send_all(fd, request_line(request))) {
    ::close(fd);
    return Served::kRetry;
  }
  const std::optional<int> result =
      relay.run(reader, [fd] { dataproxy::trial::send_all(fd, "{\"control\":\"interrupt\"}\n"); });
  ::close(fd);
  if (result || g_stop) {
    if (!result) emit({{"event", "interrupted"}, {"phase", "unknown"}, {"recorded", false}});
    code = result.value_or(130);
    return Served::kDone;
  }
  std::cerr << "dataproxy-trial-client: error: the trial server (pid " << accepted.value("pid", 0)
            << ") ended during the candidate; see " << slot.log
            << ". The next trial starts a new server." << std::endl;
  code = 1;
  return Served::kDone;
}

int run(int argc, char** argv) {
  const double started_boottime =
      dataproxy::trial::boot_clock_seconds() - dataproxy::trial::process_age_seconds();
  const ClientOptions o = parse_args(argc, argv);
  const dataproxy::nni::TrialEnv env = dataproxy::nni::TrialEnv::from_environment();
  DATAPROXY_CHECK(env.active(), InvalidInput,
                  "dataproxy-trial-client runs under NNI (NNI_PLATFORM unset); run "
                  "dataproxy-trial --params JSON for a trial of your own");
  dataproxy::nni::ChannelOptions channel_options;
  channel_options.stop = &g_stop;
  channel_options.parameter_timeout_s = o.parameter_timeout_s;
  const std::unique_ptr<dataproxy::nni::Channel> channel =
      dataproxy::nni::make_channel(env, channel_options);
  dataproxy::nni::ParameterRecord record;
  try {
    record = channel->receive_parameter();
  } catch (const dataproxy::Interrupted& e) {
    emit({{"event", "interrupted"}, {"phase", "parameters"}, {"message", e.what()}});
    return 130;
  }

  // The tuner's settings ride with the parameters; the trial program checks them in full.
  bool serve = !o.no_serve;
  std::string results = o.results;
  if (record.parameters.is_object() && record.parameters.contains("_dataproxy") &&
      record.parameters["_dataproxy"].is_object()) {
    const json& reserved = record.parameters["_dataproxy"];
    if (reserved.contains("serve") && reserved["serve"].is_boolean() && !reserved["serve"]) {
      serve = false;
    }
    if (reserved.contains("results") && reserved["results"].is_string()) {
      results = reserved["results"].get<std::string>();
    }
  }
  json request = {{"params", record.parameters},
                  {"trial_id", env.trial_job_id},
                  {"framework", "nni"},
                  {"parameter_id", record.parameter_id ? json(*record.parameter_id) : json()},
                  {"nni",
                   {{"experiment_id", env.experiment_id},
                    {"trial_job_id", env.trial_job_id},
                    {"seq_id", env.seq_id}}},
                  {"started_boottime", started_boottime}};
  dataproxy::nni::MetricReporter reporter(*channel, env.trial_job_id, record.parameter_id);
  Relay relay(reporter);

  if (serve) {
    fs::path dir = o.server_dir;
    if (dir.empty() && !results.empty()) dir = fs::path(results) / "servers";
    if (dir.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      dir = fs::path(tmp && *tmp ? tmp : "/tmp") /
            ("dataproxy-trial-servers-" + std::to_string(::geteuid()));
    }
    // Trials of one experiment with one command line (and one GPU) share servers.
    std::string key_text = o.trial_bin.string();
    for (const std::string& a : o.trial_args) key_text += '\0' + a;
    const char* gpus = std::getenv("CUDA_VISIBLE_DEVICES");
    key_text += std::string("\0exp=", 5) + env.experiment_id + "\0gpu=" + (gpus ? gpus : "-");
    const std::optional<Slot> slot = acquire_slot(dir, dataproxy::trial::short_hash(key_text));
    if (slot) {
      for (int attempt = 0; attempt < 3 && !g_stop; ++attempt) {
        int code = 1;
        const Served s = train_on_server(o, *slot, dir / "shutdown", request, relay, code);
        if (s == Served::kDone) return code;
        if (s == Served::kFallback) break;
      }
    }
    if (g_stop) {
      emit({{"event", "interrupted"}, {"phase", "server"}, {"recorded", false}});
      return 130;
    }
    std::cerr << "dataproxy-trial-client: no trial server; training in a process of its own"
              << std::endl;
  }
  return train_in_own_process(o, request, relay);
}

}  // namespace

int main(int argc, char** argv) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  try {
    return run(argc, argv);
  } catch (const dataproxy::Error& e) {
    std::cerr << "dataproxy-trial-client: error: " << e.what() << std::endl;
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "dataproxy-trial-client: error: " << e.what() << std::endl;
    return 1;
  }
}
