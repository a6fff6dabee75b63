#include "nni_channel.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <thread>

#include "dataproxy/error.h"
#include "fake_nni_server.h"

namespace dataproxy::nni {
namespace {

using testing::FakeNniServer;

const char* kRecord =
    R"({"parameter_id": 3, "parameter_source": "algorithm", "parameters": {"B": 16, "K": 3},
        "parameter_index": 0})";

std::string command_for(const std::string& record) {
  return json{{"type", "parameter"}, {"parameter", record}}.dump();
}

fs::path temp_dir(const std::string& name) {
  fs::path dir =
      fs::temp_directory_path() / ("dataproxy_nni_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TrialEnv local_env(const fs::path& sys_dir, const std::string& channel) {
  TrialEnv env;
  env.platform = "local";
  env.trial_job_id = "AbCdE";
  env.sys_dir = sys_dir;
  env.output_dir = sys_dir;
  env.command_channel = channel;
  return env;
}

ChannelOptions fast_options() {
  ChannelOptions o;
  o.connect_attempts = 2;
  o.retry_delay_s = 0.01;
  o.request_timeout_s = 5;
  o.parameter_timeout_s = 5;
  o.poll_interval_s = 0.01;
  return o;
}

TEST(ParameterRecord, ParsesNniRecord) {
  ParameterRecord r = parse_parameter_record(kRecord, "test");
  ASSERT_TRUE(r.parameter_id.has_value());
  EXPECT_EQ(*r.parameter_id, 3);
  EXPECT_EQ(r.parameter_source, "algorithm");
  EXPECT_EQ(r.parameters, (json{{"B", 16}, {"K", 3}}));
}

TEST(ParameterRecord, NullParameterIdIsAbsent) {
  ParameterRecord r = parse_parameter_record(R"({"parameter_id": null, "parameters": {}})", "t");
  EXPECT_FALSE(r.parameter_id.has_value());
}

TEST(ParameterRecord, RefusesMalformedMessages) {
  for (const char* bad :
       {"not json", "[1, 2]", R"({"parameter_id": 1})", R"({"parameter_id": 1, "parameters": [1]})",
        R"({"parameter_id": "one", "parameters": {}})"}) {
    EXPECT_THROW(parse_parameter_record(bad, "t"), InvalidInput) << bad;
  }
}

TEST(ParameterCommand, UnwrapsTheStringPayload) {
  ParameterRecord r = parse_parameter_command(command_for(kRecord), "t");
  EXPECT_EQ(*r.parameter_id, 3);
}

TEST(ParameterCommand, RefusesOtherShapes) {
  for (const std::string& bad :
       {std::string("{"), std::string(R"({"type": "metric"})"),
        std::string(R"({"type": "parameter", "parameter": {"parameters": {}}})"),
        std::string(R"({"parameter": "{}"})")}) {
    EXPECT_THROW(parse_parameter_command(bad, "t"), InvalidInput) << bad;
  }
  try {
    parse_parameter_command(R"({"type": "parameter", "parameter": "{oops"})", "NNI channel X");
    FAIL() << "no throw";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("NNI channel X"), std::string::npos) << e.what();
  }
}

TEST(Metric, EncodesValueAsJsonText) {
  Metric m;
  m.type = "FINAL";
  m.parameter_id = 7;
  m.trial_job_id = "AbCdE";
  m.value = json{{"default", 0.5}, {"full_accuracy", nullptr}, {"spot_check", true}};
  json j = json::parse(encode_metric(m));
  EXPECT_EQ(j["parameter_id"], 7);
  EXPECT_EQ(j["trial_job_id"], "AbCdE");
  EXPECT_EQ(j["type"], "FINAL");
  EXPECT_EQ(j["sequence"], 0);
  ASSERT_TRUE(j["value"].is_string());
  EXPECT_EQ(json::parse(j["value"].get<std::string>()), m.value);
}

TEST(Metric, NullParameterIdStaysNull) {
  Metric m;
  m.trial_job_id = "x";
  m.value = 0.25;
  json j = json::parse(encode_metric(m));
  EXPECT_TRUE(j["parameter_id"].is_null());
  EXPECT_EQ(j["value"], "0.25");
}

TEST(Metric, NonFiniteExtrasBecomeNull) {
  Metric m;
  m.trial_job_id = "x";
  m.value = json{{"default", 0.5}, {"spearman", std::numeric_limits<double>::quiet_NaN()}};
  json v = json::parse(json::parse(encode_metric(m))["value"].get<std::string>());
  EXPECT_TRUE(v["spearman"].is_null());
}

TEST(Metric, FinalValueComesFromTheFinalEvent) {
  // A served trial's client relays the event; the value must be what the trial would send.
  const json event = {{"event", "final"},         {"proxy_accuracy", 0.75},
                      {"full_accuracy", nullptr}, {"spot_check", false},
                      {"spearman", 0.5},          {"config_id", "B4_K3_M1"},
                      {"n_spot_checks", 3},       {"timing", {{"total", 1.0}}}};
  const json v = final_metric_value(event);
  EXPECT_EQ(v["default"], 0.75);
  EXPECT_EQ(v["proxy_accuracy"], 0.75);
  EXPECT_EQ(v["config_id"], "B4_K3_M1");
  EXPECT_EQ(v["n_spot_checks"], 3);
  EXPECT_TRUE(v["full_accuracy"].is_null() && v["kendall"].is_null() && v["macs"].is_null());
  EXPECT_FALSE(v.contains("timing") || v.contains("event"));
  EXPECT_NO_THROW(check_metric_value(v));
  EXPECT_THROW(check_metric_value(final_metric_value({{"event", "final"}})), RuntimeFailure);
}

TEST(Metric, RefusesValuesThatWouldStopNni) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const json& bad : {json("0.5"), json(nullptr), json(nan), json{{"default", "abc"}},
                          json{{"default", nan}}, json{{"full", 0.5}}, json::array({0.5})}) {
    Metric m;
    m.trial_job_id = "x";
    m.value = bad;
    EXPECT_THROW(encode_metric(m), RuntimeFailure) << bad.dump();
  }
}

TEST(Metric, FileRecordHasSixDigitLength) {
  const std::string rec = encode_file_metric(R"({"a":1})");
  EXPECT_EQ(rec, "ME000008{\"a\":1}\n");
}

TEST(Metric, StdoutLine) { EXPECT_EQ(encode_stdout_metric(R"({"a":1})"), "NNISDK_MEb'{\"a\":1}'"); }

TEST(TrialEnv, ReadsNniVariables) {
  std::map<std::string, std::string> vars = {
      {"NNI_PLATFORM", "local"},    {"NNI_TRIAL_JOB_ID", "LOzs5"},
      {"NNI_EXP_ID", "j3gu6tys"},   {"NNI_SYS_DIR", "/tmp/x"},
      {"NNI_OUTPUT_DIR", "/tmp/x"}, {"NNI_TRIAL_COMMAND_CHANNEL", "http://localhost:1/e"},
      {"REUSE_MODE", "True"}};
  TrialEnv env = TrialEnv::from_environment([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
  EXPECT_TRUE(env.active());
  EXPECT_EQ(env.trial_job_id, "LOzs5");
  EXPECT_EQ(env.experiment_id, "j3gu6tys");
  EXPECT_EQ(env.sys_dir, "/tmp/x");
  EXPECT_TRUE(env.reuse_mode);
  TrialEnv none = TrialEnv::from_environment([](const char*) -> const char* { return nullptr; });
  EXPECT_FALSE(none.active());
}

TEST(MakeChannel, PicksTheTransportAsNniDoes) {
  const fs::path dir = temp_dir("pick");
  EXPECT_EQ(make_channel(local_env(dir, "http://localhost:9/c"), {})->kind(), "http");
  EXPECT_EQ(make_channel(local_env(dir, ""), {})->kind(), "file");
  TrialEnv reuse = local_env(dir, "");
  reuse.reuse_mode = true;
  EXPECT_EQ(make_channel(reuse, {})->kind(), "stdout");
  TrialEnv remote = local_env(dir, "");
  remote.platform = "remote";
  EXPECT_EQ(make_channel(remote, {})->kind(), "stdout");
  fs::remove_all(dir);
}

TEST(MakeChannel, RefusesWhatItCannotSpeak) {
  EXPECT_THROW(make_channel(TrialEnv{}, {}), InvalidInput);
  EXPECT_THROW(make_channel(local_env("/tmp", "import://nni.Foo"), {}), InvalidInput);
  EXPECT_THROW(make_channel(local_env("", ""), {}), InvalidInput);
  TrialEnv no_id = local_env("/tmp", "http://localhost:9/c");
  no_id.trial_job_id.clear();
  EXPECT_THROW(make_channel(no_id, {}), InvalidInput);
}

TEST(FileChannel, RequestsWaitsAndAppendsMetrics) {
  const fs::path dir = temp_dir("file");
  auto channel = make_channel(local_env(dir, ""), fast_options());
  std::thread nni([&] {
    // NNI writes parameter.cfg after it sees the request.
    for (int i = 0; i < 500 && !fs::exists(dir / ".nni" / "metrics"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::ofstream(dir / "parameter.cfg") << kRecord;
  });
  ParameterRecord r = channel->receive_parameter();
  nni.join();
  EXPECT_EQ(*r.parameter_id, 3);
  MetricReporter reporter(*channel, "AbCdE", r.parameter_id);
  reporter.intermediate(0.5);
  reporter.final(json{{"default", 0.75}});

  // Parse the file the way NNI 2.x does: "ME", 6-digit length, that many bytes.
  const std::string text = slurp(dir / ".nni" / "metrics");
  std::vector<json> records;
  for (size_t pos = 0; pos < text.size();) {
    ASSERT_EQ(text.substr(pos, 2), "ME");
    const size_t len = std::stoul(text.substr(pos + 2, 6));
    records.push_back(json::parse(text.substr(pos + 8, len)));
    pos += 8 + len;
  }
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["type"], "REQUEST_PARAMETER");
  EXPECT_EQ(records[0]["trial_job_id"], "AbCdE");
  EXPECT_EQ(records[1]["type"], "PERIODICAL");
  EXPECT_EQ(records[1]["parameter_id"], 3);
  EXPECT_EQ(records[1]["value"], "0.5");
  EXPECT_EQ(records[2]["type"], "FINAL");
  EXPECT_EQ(json::parse(records[2]["value"].get<std::string>())["default"], 0.75);
  fs::remove_all(dir);
}

TEST(StdoutChannel, ReadsParameterCfgAndPrintsMetricLines) {
  const fs::path dir = temp_dir("stdout");
  std::ofstream(dir / "parameter.cfg") << kRecord;
  std::ostringstream out;
  ChannelOptions options = fast_options();
  options.stdout_stream = &out;
  TrialEnv env = local_env(dir, "");
  env.reuse_mode = true;
  auto channel = make_channel(env, options);
  ParameterRecord r = channel->receive_parameter();
  MetricReporter reporter(*channel, "AbCdE", r.parameter_id);
  reporter.intermediate(0.5);
  reporter.intermediate(0.6);
  std::istringstream lines(out.str());
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ASSERT_EQ(line.rfind("NNISDK_MEb'", 0), 0u) << line;
    ASSERT_EQ(line.back(), '\'');
    json m = json::parse(line.substr(11, line.size() - 12));
    EXPECT_EQ(m["sequence"], n);
    EXPECT_EQ(m["parameter_id"], 3);
    ++n;
  }
  EXPECT_EQ(n, 2);
  fs::remove_all(dir);
}

TEST(FileChannel, StopsWaitingOnInterrupt) {
  const fs::path dir = temp_dir("stop");
  std::atomic<bool> stop{false};
  ChannelOptions options = fast_options();
  options.stop = &stop;
  auto channel = make_channel(local_env(dir, ""), options);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stop = true;
  });
  EXPECT_THROW(channel->receive_parameter(), Interrupted);
  t.join();
  fs::remove_all(dir);
}

TEST(HttpChannel, RequestsParametersAndReportsMetrics) {
  FakeNniServer server;
  server.queue_get(408, "");
  server.queue_get(200, command_for(kRecord));
  auto channel = make_channel(local_env("/tmp", server.url()), fast_options());
  ParameterRecord r = channel->receive_parameter();
  EXPECT_EQ(*r.parameter_id, 3);
  EXPECT_EQ(r.parameters["B"], 16);
  EXPECT_GE(server.get_count(), 2);
  MetricReporter reporter(*channel, "AbCdE", r.parameter_id);
  reporter.intermediate(0.25);
  reporter.intermediate(0.5);
  reporter.final(json{{"default", 0.5}, {"spot_check", false}});

  auto puts = server.puts();
  ASSERT_EQ(puts.size(), 4u);
  for (const auto& p : puts) {
    EXPECT_EQ(p.content_type, "application/json");
    EXPECT_EQ(p.target, "/env/local-env/trial1");
  }
  EXPECT_EQ(json::parse(puts[0].body), (json{{"type", "request_parameter"}}));
  for (int i = 1; i < 4; ++i) {
    json cmd = json::parse(puts[i].body);
    EXPECT_EQ(cmd["type"], "metric");
    ASSERT_TRUE(cmd["metric"].is_string());
    json m = json::parse(cmd["metric"].get<std::string>());
    EXPECT_EQ(m["parameter_id"], 3);
    EXPECT_EQ(m["trial_job_id"], "AbCdE");
    EXPECT_EQ(m["type"], i < 3 ? "PERIODICAL" : "FINAL");
    EXPECT_EQ(m["sequence"], i < 3 ? i - 1 : 0);
  }
}

TEST(HttpChannel, MalformedParameterIsInvalidInput) {
  FakeNniServer server;
  server.queue_get(200, R"({"type": "parameter", "parameter": "{\"parameters\": 5}"})");
  auto channel = make_channel(local_env("/tmp", server.url()), fast_options());
  EXPECT_THROW(channel->receive_parameter(), InvalidInput);
}

TEST(HttpChannel, ClosedChannelIsAnError) {
  FakeNniServer server;
  server.queue_get(410, "");
  auto channel = make_channel(local_env("/tmp", server.url()), fast_options());
  try {
    channel->receive_parameter();
    FAIL() << "no throw";
  } catch (const RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find("410"), std::string::npos) << e.what();
  }
  server.set_put_status(410);
  EXPECT_THROW(channel->send_metric("{}"), RuntimeFailure);
}

TEST(HttpChannel, UnexpectedStatusIsAnError) {
  FakeNniServer server;
  server.set_put_status(500);
  auto channel = make_channel(local_env("/tmp", server.url()), fast_options());
  EXPECT_THROW(channel->receive_parameter(), RuntimeFailure);
}

TEST(HttpChannel, GivesUpWhenNoParametersCome) {
  FakeNniServer server;
  ChannelOptions options = fast_options();
  options.parameter_timeout_s = 0.2;
  auto channel = make_channel(local_env("/tmp", server.url()), options);
  EXPECT_THROW(channel->receive_parameter(), RuntimeFailure);
}

TEST(HttpChannel, StopsWaitingOnInterrupt) {
  FakeNniServer server;
  std::atomic<bool> stop{false};
  ChannelOptions options = fast_options();
  options.stop = &stop;
  auto channel = make_channel(local_env("/tmp", server.url()), options);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop = true;
  });
  EXPECT_THROW(channel->receive_parameter(), Interrupted);
  t.join();
}

TEST(HttpChannel, UnreachableServerFailsAfterBoundedRetries) {
  unsigned short port;
  {
    FakeNniServer probe;  // a port that was free a moment ago, now closed
    port = static_cast<unsigned short>(std::stoi(probe.url().substr(17, 5)));
  }
  const std::string url = "http://localhost:" + std::to_string(port) + "/env/local-env/x";
  ChannelOptions options = fast_options();
  options.connect_attempts = 3;
  auto channel = make_channel(local_env("/tmp", url), options);
  try {
    channel->receive_parameter();
    FAIL() << "no throw";
  } catch (const RuntimeFailure& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot reach"), std::string::npos) << msg;
    EXPECT_NE(msg.find("after 3 attempts"), std::string::npos) << msg;
    EXPECT_NE(msg.find(url), std::string::npos) << msg;
  }
}

TEST(HttpChannel, IgnoresHttpProxyForTheChannel) {
  FakeNniServer server;
  server.queue_get(200, command_for(kRecord));
  ::setenv("http_proxy", "http://127.0.0.1:9", 1);
  ::setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
  auto channel = make_channel(local_env("/tmp", server.url()), fast_options());
  ParameterRecord r = channel->receive_parameter();
  ::unsetenv("http_proxy");
  ::unsetenv("HTTP_PROXY");
  EXPECT_EQ(*r.parameter_id, 3);
}

}  // namespace
}  // namespace dataproxy::nni
