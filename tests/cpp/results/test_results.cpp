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
  r.extra = {{"seed", 4}};

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
  EXPECT_EQ(loaded[0].extra["seed"], 4);
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
  EXPECT_EQ(j["schema"], "dataproxy.result/1");
  EXPECT_TRUE(j["full_accuracy"].is_null());
  EXPECT_TRUE(j["parameter_id"].is_null());
  EXPECT_EQ(j["proxy_accuracy"], 0.8125);
  EXPECT_EQ(j["config_id"], "B16-K3-M2");
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

}  // namespace
}  // namespace dataproxy
