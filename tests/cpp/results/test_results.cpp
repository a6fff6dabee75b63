#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <set>

#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/results.h"

namespace dataproxy {
namespace {

class ResultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dataproxy-results-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static TrialRecord sample(const std::string& id) {
    TrialRecord r;
    r.trial_id = id;
    r.framework = "standalone";
    r.config = {{"B", 16}, {"K", 3}, {"M", 2}};
    r.config_id = "B16-K3-M2";
    r.proxy_accuracy = 0.8125;
    r.proxy_seconds = 12.5;
    r.macs = 41000000;
    r.params = 270000;
    r.device = "cpu";
    r.manifest_key = "abc123";
    r.finished = "2026-11-27T20:26:25Z";
    return r;
  }

  void write_raw(const std::string& text) {
    std::ofstream out(dir_ / "results.jsonl", std::ios::binary);
    out << text;
  }

  fs::path dir_;
};

TEST_F(ResultsTest, RoundTripKeepsEveryField) {
  TrialRecord r = sample("7");
  r.parameter_id = 3;
  r.full_accuracy = 0.9;
  r.spot_check = true;
  r.full_seconds = 250.25;
  r.status = "complete";
  r.proxy_curve = {0.5, 0.7, 0.8125};
  r.training.seed = 4;
  r.training.epochs = 3;
  r.training.steps = 120;
  r.training.full_curve = {0.6, 0.9};
  r.data.dataset = "fashion-mnist";
  r.data.ratio = 0.05;
  r.data.test_size = 2000;
  r.correct = Correctness{"test", "/9e6"};
  r.error = TrialError{"out of memory", "full"};
  r.nni = NniTrial{"exp", "tRiAl", "3"};
  r.calibration = true;

  ResultsStore store(dir_);
  EXPECT_EQ(store.file(), dir_ / "results.jsonl");
  store.append(r);
  store.append(sample("8"));
  auto loaded = store.load();
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[0].to_json(), r.to_json());
  EXPECT_EQ(loaded[0].parameter_id, 3);
  EXPECT_DOUBLE_EQ(*loaded[0].full_accuracy, 0.9);
  EXPECT_EQ(loaded[0].proxy_curve, r.proxy_curve);
  EXPECT_EQ(loaded[0].training.seed, 4u);
  EXPECT_EQ(loaded[0].training.full_curve, r.training.full_curve);
  EXPECT_EQ(loaded[0].data.test_size, 2000);
  ASSERT_TRUE(loaded[0].correct.has_value());
  EXPECT_EQ(loaded[0].correct->bits, "/9e6");
  ASSERT_TRUE(loaded[0].nni.has_value());
  EXPECT_EQ(loaded[0].nni->seq_id, "3");
  EXPECT_EQ(loaded[0].error->phase, "full");
  EXPECT_TRUE(loaded[0].calibration);
  EXPECT_FALSE(loaded[1].correct.has_value());
  EXPECT_FALSE(loaded[1].calibration);
  EXPECT_EQ(loaded[1].trial_id, "8");
  EXPECT_FALSE(loaded[1].full_accuracy.has_value());
  EXPECT_FALSE(loaded[1].parameter_id.has_value());
}

TEST_F(ResultsTest, TimingRoundTripsAndOlderRecordsHaveNone) {
  TrialRecord r = sample("9");
  TrialTiming t;
  t.startup = 0.5;
  t.data = 0.1;
  t.train = 0.67;
  t.eval = 0.2;
  t.write = 0.01;
  t.total = 1.6;
  t.eval_subset = 1000;
  t.eval_final = 10000;
  r.timing = t;
  json j = r.to_json();
  EXPECT_EQ(j["timing"]["train"], 0.67);
  EXPECT_EQ(j["timing"]["eval_final"], 10000);
  TrialRecord back = TrialRecord::from_json(j);
  ASSERT_TRUE(back.timing.has_value());
  EXPECT_EQ(back.timing->to_json(), t.to_json());
  EXPECT_EQ(back.to_json(), j);

  // A record written before the split existed reads without one, and writes none back.
  json old = sample("10").to_json();
  EXPECT_FALSE(old.contains("timing"));
  EXPECT_FALSE(TrialRecord::from_json(old).timing.has_value());
  old["timing"] = "fast";
  EXPECT_THROW(TrialRecord::from_json(old), DataError);
}

TEST_F(ResultsTest, SerialisesSchemaAndNullsForAbsentOptionals) {
  json j = sample("1").to_json();
  EXPECT_EQ(j["schema"], "dataproxy.result/2");
  EXPECT_FALSE(j.contains("extra"));
  EXPECT_TRUE(j["full_accuracy"].is_null());
  EXPECT_TRUE(j["parameter_id"].is_null());
  EXPECT_EQ(j["proxy_accuracy"], 0.8125);
  EXPECT_EQ(j["config_id"], "B16-K3-M2");
}

// Records of schema 1 as each of its writers left them: their "extra" keys land in the typed
// fields, whichever program wrote them.
TEST_F(ResultsTest, ReadsTheUntypedExtraOfEveryWriterOfSchemaOne) {
  auto v1 = [](json extra) {
    json j = sample("x").to_json();
    j["schema"] = "dataproxy.result/1";
    j.erase("training");
    j.erase("data");
    j["extra"] = std::move(extra);
    return TrialRecord::from_json(j);
  };
  // dataproxy-trial: "space" is the file, "seed", the proxy length, NNI ids, a failure.
  TrialRecord t = v1({{"epochs", 1},
                      {"proxy_epochs", 3},
                      {"seed", 7},
                      {"manifest", "/m/manifest.json"},
                      {"space", "spaces/tiny.yaml"},
                      {"memory_format", "contiguous"},
                      {"full_curve", {0.5, 0.6}},
                      {"nni", {{"experiment_id", "e"}, {"trial_job_id", "j"}, {"seq_id", "0"}}},
                      {"error", "boom"},
                      {"phase", "proxy"}});
  EXPECT_EQ(t.training.epochs, 1);
  EXPECT_EQ(t.training.proxy_epochs, 3);
  EXPECT_EQ(t.training.seed, 7u);
  EXPECT_EQ(t.training.memory_format, "contiguous");
  EXPECT_EQ(t.training.full_curve, (std::vector<double>{0.5, 0.6}));
  EXPECT_EQ(t.data.space_file, "spaces/tiny.yaml");
  EXPECT_EQ(t.data.space, "");
  EXPECT_EQ(t.data.manifest, "/m/manifest.json");
  ASSERT_TRUE(t.nni && t.error);
  EXPECT_EQ(t.nni->trial_job_id, "j");
  EXPECT_EQ(t.error->message, "boom");
  EXPECT_EQ(t.error->phase, "proxy");

  // dataproxy evaluate: "train_seed", "space" a name beside its hash, the curve of a full run.
  TrialRecord e = v1({{"data", "full"},
                      {"dataset", "fashion-mnist"},
                      {"space", "bench"},
                      {"space_hash", "21bf"},
                      {"max_train", 8000},
                      {"max_test", 2000},
                      {"train_size", 8000},
                      {"test_size", 2000},
                      {"num_classes", 10},
                      {"epochs", 8},
                      {"train_seed", 1003},
                      {"threads", 1},
                      {"steps", 4000},
                      {"samples_seen", 64000},
                      {"curve", {0.78}},
                      {"tool_version", "0.1.0"},
                      {"correct_on", "test"},
                      {"correct_bits", "/9e6"}});
  EXPECT_EQ(e.training.seed, 1003u);
  EXPECT_EQ(e.training.steps, 4000);
  EXPECT_EQ(e.training.samples_seen, 64000);
  EXPECT_EQ(e.training.proxy_epochs, 0);
  EXPECT_EQ(e.training.full_curve, (std::vector<double>{0.78}));
  EXPECT_EQ(e.data.space, "bench");
  EXPECT_EQ(e.data.space_file, "");
  EXPECT_EQ(e.data.train_size, 8000);
  EXPECT_EQ(e.data.test_size, 2000);
  EXPECT_EQ(e.data.max_test, 2000);
  ASSERT_TRUE(e.correct.has_value());
  EXPECT_EQ(e.correct->on, "test");
  EXPECT_EQ(e.correct->bits, "/9e6");
  TrialRecord p = v1({{"data", "proxy"},
                      {"epochs", 4},
                      {"method", "importance"},
                      {"ratio", 0.05},
                      {"sampling_seed", 2},
                      {"curve", {0.7}}});
  EXPECT_EQ(p.training.proxy_epochs, 4);
  EXPECT_TRUE(p.training.full_curve.empty());
  EXPECT_EQ(p.data.method, "importance");
  EXPECT_DOUBLE_EQ(p.data.ratio, 0.05);
  EXPECT_EQ(p.data.sampling_seed, 2);

  // dataproxy calibrate: its run cache ("kind"; "manifest" is a key) and its spot checks.
  TrialRecord c = v1({{"kind", "proxy"}, {"manifest", "abc"}, {"epochs", 2}, {"steps", 9}});
  EXPECT_EQ(c.data.manifest, "");
  EXPECT_EQ(c.training.proxy_epochs, 2);
  EXPECT_EQ(c.training.steps, 9);
  TrialRecord s = v1({{"calibration", true}, {"probe", true}, {"evaluation_size", 500}});
  EXPECT_TRUE(s.calibration && s.probe);
  EXPECT_EQ(s.data.test_size, 500);

  // Written back, a record of schema 1 is a record of schema 2 with the same fields.
  EXPECT_EQ(TrialRecord::from_json(e.to_json()).to_json(), e.to_json());
  EXPECT_EQ(e.to_json()["schema"], "dataproxy.result/2");
  json unknown = sample("y").to_json();
  unknown["schema"] = "dataproxy.result/9";
  EXPECT_THROW(TrialRecord::from_json(unknown), DataError);
}

TEST_F(ResultsTest, AcceptsAJsonlPathDirectly) {
  ResultsStore store(dir_ / "custom.jsonl");
  EXPECT_EQ(store.file(), dir_ / "custom.jsonl");
  store.append(sample("1"));
  EXPECT_EQ(ResultsStore(dir_ / "custom.jsonl").load().size(), 1u);
}

TEST_F(ResultsTest, MissingStoreIsEmpty) {
  EXPECT_TRUE(ResultsStore(dir_ / "nope").load().empty());
}

TEST_F(ResultsTest, ConcurrentAppendsFromSeveralProcessesStayIntact) {
  constexpr int kProcs = 4;
  constexpr int kEach = 40;
  ResultsStore store(dir_);
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int rc = 0;
      try {
        for (int i = 0; i < kEach; ++i) {
          TrialRecord r = sample(std::to_string(p) + ":" + std::to_string(i));
          // Long lines make interleaving likely if the locking were broken.
          r.proxy_curve.assign(200, 0.123456789 * (p + 1));
          store.append(r);
        }
      } catch (...) {
        rc = 1;
      }
      ::_exit(rc);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto loaded = store.load();
  ASSERT_EQ(loaded.size(), static_cast<std::size_t>(kProcs * kEach));
  std::set<std::string> ids;
  for (const auto& r : loaded) {
    ids.insert(r.trial_id);
    EXPECT_EQ(r.proxy_curve.size(), 200u);
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kProcs * kEach));
}

TEST_F(ResultsTest, TornLastLineIsSkippedAndCutOffByTheNextAppend) {
  std::string good1 = sample("1").to_json().dump();
  std::string good2 = sample("2").to_json().dump();
  write_raw(good1 + "\n" + good2 + "\n" + good1.substr(0, good1.size() / 2));
  ResultsStore store(dir_);
  auto loaded = store.load();
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[1].trial_id, "2");

  store.append(sample("3"));
  loaded = store.load();
  ASSERT_EQ(loaded.size(), 3u);
  EXPECT_EQ(loaded[2].trial_id, "3");
}

TEST_F(ResultsTest, CorruptMiddleLineIsRefusedWithFileAndLine) {
  std::string good = sample("1").to_json().dump();
  write_raw(good + "\n{\"schema\": \"dataproxy.result/1\", oops\n" + good + "\n");
  try {
    ResultsStore(dir_).load();
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("results.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST_F(ResultsTest, TerminatedBadLastLineIsCorruptionNotATornWrite) {
  std::string good = sample("1").to_json().dump();
  write_raw(good + "\n{\"half\": \n");
  EXPECT_THROW(ResultsStore(dir_).load(), DataError);
}

TEST_F(ResultsTest, WrongSchemaOrTypeIsRefused) {
  json other = sample("1").to_json();
  other["schema"] = "dataproxy.result/9";
  write_raw(sample("0").to_json().dump() + "\n" + other.dump() + "\n");
  try {
    ResultsStore(dir_).load();
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("results.jsonl:2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("dataproxy.result/9"), std::string::npos) << e.what();
  }
  json bad = sample("1").to_json();
  bad["proxy_accuracy"] = "high";
  EXPECT_THROW(TrialRecord::from_json(bad), DataError);
}

TEST(UtcNow, IsIso8601Utc) {
  EXPECT_TRUE(std::regex_match(utc_now(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << utc_now();
}

TrialRecord pairing_record(const std::string& config_id, std::optional<double> proxy,
                           std::optional<double> full, const std::string& status = "complete",
                           const std::string& key = "k1") {
  TrialRecord r;
  r.config_id = config_id;
  r.proxy_accuracy = proxy;
  r.full_accuracy = full;
  r.spot_check = full.has_value();
  r.status = status;
  r.manifest_key = key;
  return r;
}

TEST(PairCandidates, CountsCompleteRecordsOfTheManifestAndFallsBackToProbes) {
  const std::vector<TrialRecord> records = {
      pairing_record("a", 0.60, 0.80),                            // a spot check
      pairing_record("a", 0.70, std::nullopt),                    // a repeat: means
      pairing_record("b", 0.50, std::nullopt),                    // a probe's configuration
      pairing_record("c", 0.40, 0.90, "pruned"),                  // pruned: never counts
      pairing_record("d", 0.30, 0.70, "failed"),                  // failed: never counts
      pairing_record("e", std::nullopt, 0.75),                    // spot check without proxy run
      pairing_record("f", 0.45, std::nullopt, "complete", "k2"),  // another proxy
      pairing_record("f", std::nullopt, 0.65, "complete", ""),    // full data, any proxy
      pairing_record("g", 0.55, 0.85, "complete", "k2"),          // full counts, proxy does not
      pairing_record("", 0.20, 0.30),                             // no config id
  };
  PairingManifest m;
  m.key = "k1";
  m.probes = {{"a", 0.10}, {"b", 0.82}, {"e", 0.5}};
  const auto pairs = pair_candidates(records, m);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].config_id, "a");
  EXPECT_DOUBLE_EQ(pairs[0].proxy, 0.65);
  EXPECT_DOUBLE_EQ(pairs[0].full, 0.80);  // measured beats the probe
  EXPECT_EQ(pairs[0].proxy_runs, 2);
  EXPECT_FALSE(pairs[0].full_from_probe);
  EXPECT_EQ(pairs[1].config_id, "b");
  EXPECT_DOUBLE_EQ(pairs[1].full, 0.82);
  EXPECT_TRUE(pairs[1].full_from_probe);
  EXPECT_EQ(pairs[1].full_runs, 0);

  // Without a manifest key every proxy counts ("f" and "g" pair up), and there are no probes.
  const auto any = pair_candidates(records, PairingManifest{});
  std::vector<std::string> ids;
  for (const auto& p : any) ids.push_back(p.config_id);
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "f", "g"}));
}

}  // namespace
}  // namespace dataproxy
