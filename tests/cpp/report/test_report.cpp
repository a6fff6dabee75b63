#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>

#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/report.h"
#include "manifest/sample_manifest.h"

namespace dataproxy {
namespace {

TrialRecord record(const std::string& id, double proxy, std::optional<double> full,
                   double proxy_s = 10, double full_s = 0, int64_t macs = 0) {
  TrialRecord r;
  r.trial_id = id;
  r.framework = "nni";
  r.config = {{"name", id}};
  r.config_id = id;
  r.proxy_accuracy = proxy;
  r.full_accuracy = full;
  r.spot_check = full.has_value();
  r.proxy_seconds = proxy_s;
  r.full_seconds = full_s;
  r.macs = macs;
  r.manifest_key = testing::sample_manifest().key;
  return r;
}

// The manifest of the records' proxy: two probes, 500 s of probe training, 25 s of selection.
Manifest manifest_with_probes() { return testing::sample_manifest(); }

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

ReportOptions fast_options() {
  ReportOptions o;
  o.bootstrap.resamples = 200;
  return o;
}

TEST(MergeCandidates, MergesByConfigAndAddsProbes) {
  std::vector<TrialRecord> records = {
      record("a", 0.5, std::nullopt, 10), record("a", 0.7, 0.9, 20, 200),
      record("light", 0.6, std::nullopt), record("b", 0.4, std::nullopt)};
  records[3].status = "pruned";
  const Manifest m = manifest_with_probes();
  auto cands = merge_candidates(records, &m);
  ASSERT_EQ(cands.size(), 4u);  // a, light, b, heavy
  const Candidate& a = cands[0];
  EXPECT_EQ(a.id, "a");
  EXPECT_EQ(a.records, 2);
  EXPECT_DOUBLE_EQ(*a.proxy_accuracy, 0.6);  // mean of 0.5 and 0.7
  EXPECT_DOUBLE_EQ(*a.full_accuracy, 0.9);
  EXPECT_DOUBLE_EQ(a.proxy_seconds, 15);
  EXPECT_TRUE(a.spot_check);
  const Candidate& light = cands[1];
  EXPECT_TRUE(light.probe);
  EXPECT_TRUE(light.searched);
  EXPECT_DOUBLE_EQ(*light.full_accuracy, 0.80);
  EXPECT_DOUBLE_EQ(*light.full_seconds, 100);
  EXPECT_EQ(light.macs, 1000000);
  EXPECT_EQ(cands[2].status, "pruned");
  EXPECT_FALSE(cands[2].proxy_accuracy.has_value());  // pruned accuracies do not rank
  EXPECT_TRUE(cands[3].probe);
  EXPECT_FALSE(cands[3].searched);
}

// The report ranks exactly the pairs the trial runner correlates (pair_candidates), edge cases
// included, and its table shows the paired accuracies.
TEST(BuildReport, RanksThePairsOfPairCandidates) {
  std::vector<TrialRecord> records = {record("a", 0.50, 0.70),
                                      record("a", 0.60, std::nullopt),  // duplicated configuration
                                      record("light", 0.55, 0.85),      // spot-checked probe
                                      record("heavy", 0.65, std::nullopt),  // probe, no spot check
                                      record("b", 0.40, 0.60),
                                      record("c", 0.45, 0.75),  // pruned, failed
                                      record("d", 0.30, 0.65),
                                      record("e", 0.35, std::nullopt)};  // another proxy; full only
  records[4].status = "pruned";
  records[5].status = "failed";
  records[6].manifest_key = "key2";
  records[7].proxy_accuracy.reset();
  records[7].full_accuracy = 0.66;
  records[7].spot_check = true;
  const Manifest manifest = manifest_with_probes();
  const auto pairs = pair_candidates(records, pairing_of(manifest));
  ASSERT_EQ(pairs.size(), 3u);  // a, heavy, light

  const json r = build_report(records, &manifest, fast_options());
  std::map<std::string, std::pair<double, double>> ranked;
  for (std::size_t i = 0; i < r["ranking"]["ids"].size(); ++i) {
    ranked[r["ranking"]["ids"][i]] = {r["ranking"]["proxy"][i], r["ranking"]["full"][i]};
  }
  ASSERT_EQ(ranked.size(), pairs.size());
  for (const auto& p : pairs) {
    ASSERT_TRUE(ranked.count(p.config_id)) << p.config_id;
    EXPECT_DOUBLE_EQ(ranked[p.config_id].first, p.proxy) << p.config_id;
    EXPECT_DOUBLE_EQ(ranked[p.config_id].second, p.full) << p.config_id;
  }
  EXPECT_DOUBLE_EQ(ranked["light"].second, 0.85);  // the spot check, not the probe's 0.80
  for (const auto& row : r["candidates"]) {
    const std::string id = row["id"];
    EXPECT_EQ(row["ranked"].get<bool>(), ranked.count(id) > 0) << id;
    if (ranked.count(id)) {
      EXPECT_DOUBLE_EQ(row["proxy_accuracy"].get<double>(), ranked[id].first) << id;
      EXPECT_DOUBLE_EQ(row["full_accuracy"].get<double>(), ranked[id].second) << id;
    }
  }
}

TEST(BuildReport, NoSpotChecksStillRendersAndSaysSo) {
  std::vector<TrialRecord> records = {record("a", 0.5, std::nullopt),
                                      record("b", 0.6, std::nullopt)};
  json r = build_report(records, nullptr, fast_options());
  EXPECT_EQ(r["ranking"]["n"], 0);
  EXPECT_EQ(r["verdict"]["level"], "none");
  EXPECT_NE(r["verdict"]["headline"].get<std::string>().find("No ranking evidence"),
            std::string::npos);
  EXPECT_TRUE(r["ranking"]["spearman"]["value"].is_null());
  EXPECT_TRUE(r["cost"]["full_data_seconds"].is_null());  // nothing to scale from
  std::string html = render_report_html(r);
  EXPECT_NE(html.find("No ranking evidence"), std::string::npos);
  EXPECT_EQ(count(html, "<circle class=\"pt"), 0);
  EXPECT_EQ(count(html, "class=\"rug\""), 2);
}

TEST(BuildReport, FewSpotChecksAskForMore) {
  std::vector<TrialRecord> records = {record("a", 0.5, 0.80), record("b", 0.6, 0.85),
                                      record("c", 0.7, 0.83), record("d", 0.65, std::nullopt)};
  json r = build_report(records, nullptr, fast_options());
  EXPECT_EQ(r["ranking"]["n"], 3);
  EXPECT_EQ(r["verdict"]["level"], "thin");
  std::string advice = r["verdict"]["advice"][0].get<std::string>();
  EXPECT_NE(advice.find("at least 2 more"), std::string::npos) << advice;
}

TEST(BuildReport, GoodRankingWithCostLedger) {
  // Eight spot checks in the same order on both; full time 10x proxy time for all of them.
  std::vector<TrialRecord> records;
  for (int i = 0; i < 8; ++i) {
    records.push_back(record("s" + std::to_string(i), 0.50 + 0.03 * i, 0.80 + 0.015 * i, 10, 100));
  }
  records.push_back(record("p1", 0.55, std::nullopt, 20));  // estimated at 200 s
  records.push_back(record("p2", 0.52, std::nullopt, 30));  // estimated at 300 s
  const Manifest m = manifest_with_probes();
  json r = build_report(records, &m, fast_options());
  EXPECT_EQ(r["ranking"]["n"], 8);
  EXPECT_DOUBLE_EQ(r["ranking"]["spearman"]["value"].get<double>(), 1.0);
  EXPECT_EQ(r["verdict"]["level"], "good");
  EXPECT_EQ(r["ranking"]["regret"]["value"], 0.0);
  EXPECT_EQ(r["ranking"]["true_best"], "s7");

  const json& c = r["cost"];
  EXPECT_DOUBLE_EQ(c["probes_seconds"].get<double>(), 500);    // stage_seconds.probes
  EXPECT_DOUBLE_EQ(c["selection_seconds"].get<double>(), 25);  // features + knn
  EXPECT_DOUBLE_EQ(c["proxy_trials_seconds"].get<double>(), 8 * 10 + 20 + 30);
  EXPECT_DOUBLE_EQ(c["spot_checks_seconds"].get<double>(), 8 * 100);
  double spent = 500 + 25 + 130 + 800;
  EXPECT_DOUBLE_EQ(c["spent_seconds"].get<double>(), spent);
  EXPECT_DOUBLE_EQ(c["time_ratio"].get<double>(), 10);
  double full = 8 * 100 + 200 + 300;  // the probes were not searched: not in the total
  EXPECT_DOUBLE_EQ(c["full_data_seconds"].get<double>(), full);
  EXPECT_DOUBLE_EQ(c["speedup"].get<double>(), full / spent);
  EXPECT_EQ(c["estimate_methods"]["time_ratio"], 2);
  EXPECT_EQ(c["estimate_methods"]["measured"], 8);

  std::string html = render_report_html(r);
  EXPECT_EQ(count(html, "<circle class=\"pt"), 8);
  EXPECT_EQ(count(html, "<rect class=\"cell"), 64);
  EXPECT_EQ(count(html, "class=\"rug\""), 2);
  EXPECT_NE(html.find("id=\"record-count\">10<"), std::string::npos);
}

TEST(BuildReport, BottomLineSaysTimeAgreementAndPick) {
  std::vector<TrialRecord> records;
  for (int i = 0; i < 8; ++i) {
    records.push_back(record("s" + std::to_string(i), 0.50 + 0.03 * i, 0.80 + 0.015 * i, 10, 100));
  }
  // "top" leads the proxy but was never spot-checked; s7 is the best measured on the full data.
  records.push_back(record("top", 0.99, std::nullopt, 20));
  const Manifest m = manifest_with_probes();
  json r = build_report(records, &m, fast_options());
  const json& b = r["summary"];
  ASSERT_EQ(b["lines"].size(), 3u);
  EXPECT_EQ(b["pick"], "top");
  EXPECT_NE(b["time"].get<std::string>().find("x less"), std::string::npos) << b["time"];
  EXPECT_NE(b["agreement"].get<std::string>().find("Spearman rho = "), std::string::npos);
  const std::string pick = b["pick_text"];
  EXPECT_NE(pick.find("Pick: top"), std::string::npos) << pick;
  EXPECT_NE(pick.find("s7 measured 90.5% on the full data"), std::string::npos) << pick;
  EXPECT_NE(pick.find("train top on the full data"), std::string::npos) << pick;
  EXPECT_NE(render_report_html(r).find("id=\"bottom-line\""), std::string::npos);

  // A probe that was searched but pruned: the warning says what is true.
  TrialRecord pruned = record("light", 0.1, std::nullopt, 5);
  pruned.proxy_accuracy.reset();
  pruned.status = "pruned";
  records.push_back(pruned);
  json w = build_report(records, &m, fast_options());
  bool found = false;
  for (const auto& line : w["warnings"]) {
    const std::string text = line;
    if (text.find("light is a probe: it has a full-data accuracy but no completed proxy run") !=
        std::string::npos) {
      found = true;
    }
    EXPECT_EQ(text.find("(status complete)"), std::string::npos) << text;
  }
  EXPECT_TRUE(found) << w["warnings"].dump();
}

TEST(BuildReport, EstimatesFromMacsWithoutTimedSpotChecks) {
  // Probes measured 100 s per 1e6 MACs; the searched candidates have MACs but no full times.
  std::vector<TrialRecord> records = {record("x", 0.5, std::nullopt, 10, 0, 2000000),
                                      record("y", 0.6, std::nullopt, 10, 0, 3000000)};
  const Manifest m = manifest_with_probes();
  json r = build_report(records, &m, fast_options());
  EXPECT_EQ(r["cost"]["estimate_methods"]["macs"], 2);
  EXPECT_DOUBLE_EQ(r["cost"]["full_data_seconds"].get<double>(), 200 + 300);
}

TEST(BuildReport, FallsBackToTheDataRatio) {
  Manifest m = manifest_with_probes();
  m.probes.clear();
  std::vector<TrialRecord> records = {record("x", 0.5, std::nullopt, 12)};
  json r = build_report(records, &m, fast_options());
  EXPECT_EQ(r["cost"]["estimate_methods"]["data_ratio"], 1);
  EXPECT_NEAR(r["cost"]["full_data_seconds"].get<double>(), 120, 1e-9);
}

TEST(BuildReport, CachedProbesCountAtTheirTrainingTime) {
  Manifest m = manifest_with_probes();
  m.stage_seconds["probes"] = 0.0;  // `generate` reused cached probes
  json r = build_report({record("x", 0.5, std::nullopt)}, &m, fast_options());
  EXPECT_DOUBLE_EQ(r["cost"]["probes_seconds"].get<double>(), 100 + 400);
  EXPECT_NE(r["cost"]["probes_note"].get<std::string>().find("cache"), std::string::npos);
}

TEST(RenderHtml, SelfContainedAndEscaped) {
  std::vector<TrialRecord> records = {record("<script>alert(1)</script>", 0.5, 0.7),
                                      record("b", 0.6, 0.8), record("c", 0.7, 0.9)};
  ReportOptions o = fast_options();
  o.title = "Run & \"test\"";
  std::string html = render_report_html(build_report(records, nullptr, o));
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("<title>Run &amp; &quot;test&quot;</title>"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("http-equiv=\"refresh\""), std::string::npos);
  o.refresh_seconds = 30;
  html = render_report_html(build_report(records, nullptr, o));
  EXPECT_NE(html.find("http-equiv=\"refresh\" content=\"30\""), std::string::npos);
}

class WriteReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dataproxy-report-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(WriteReportTest, MissingOrEmptyStoreIsInvalidInput) {
  EXPECT_THROW(write_report(dir_ / "nothing", "", "", fast_options()), InvalidInput);
  std::ofstream(dir_ / "results.jsonl").close();
  try {
    write_report(dir_, "", "", fast_options());
    FAIL() << "expected InvalidInput";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("no complete records"), std::string::npos) << e.what();
    EXPECT_EQ(e.exit_code(), 2);
  }
}

TEST_F(WriteReportTest, WritesBothFilesFromASnapshotWithATornTail) {
  ResultsStore store(dir_);
  for (int i = 0; i < 4; ++i)
    store.append(record("c" + std::to_string(i), 0.5 + 0.1 * i, 0.7 + 0.05 * i));
  {
    std::ofstream out(store.file(), std::ios::app);
    out << "{\"schema\":\"dataproxy.result/1\",\"trial_id\":\"half";
  }
  save_manifest(manifest_with_probes(), dir_);
  json r = write_report(dir_, "", dir_ / "out", fast_options());
  EXPECT_EQ(r["records"], 4);
  EXPECT_EQ(r["sources"]["manifest"], (dir_ / "manifest.json").string());  // found beside
  EXPECT_TRUE(fs::exists(dir_ / "out" / "report.html"));
  json back = json::parse(read_file(dir_ / "out" / "report.json"));
  EXPECT_EQ(back["ranking"]["n"], 4);
  EXPECT_TRUE(std::regex_search(back["generated"].get<std::string>(),
                                std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$)")));
}

TEST_F(WriteReportTest, FindsTheCachedManifestByKey) {
  ResultsStore store(dir_ / "exp");
  for (int i = 0; i < 3; ++i) store.append(record("c" + std::to_string(i), 0.5 + 0.1 * i, 0.8));
  const Manifest m = manifest_with_probes();
  fs::create_directories(proxy_dir(dir_ / "cache", m.key));
  save_manifest(m, proxy_dir(dir_ / "cache", m.key));
  ::setenv("DATAPROXY_CACHE", (dir_ / "cache").c_str(), 1);
  json r = write_report(dir_ / "exp", "", "", fast_options());
  ::unsetenv("DATAPROXY_CACHE");
  EXPECT_EQ(r["sources"]["manifest"], proxy_manifest_file(dir_ / "cache", m.key).string());
  EXPECT_EQ(r["manifest"]["probes"].size(), 2u);
  EXPECT_TRUE(fs::exists(dir_ / "exp" / "report.html"));  // default: beside the store
}

TEST_F(WriteReportTest, ManifestIsVerifiedLikeEverywhereElse) {
  ResultsStore store(dir_ / "exp");
  for (int i = 0; i < 3; ++i) store.append(record("c" + std::to_string(i), 0.5 + 0.1 * i, 0.8));
  save_manifest(manifest_with_probes(), dir_ / "m");
  EXPECT_EQ(write_report(dir_ / "exp", dir_ / "m", "", fast_options())["manifest"]["key"],
            manifest_with_probes().key);  // a folder works
  json j = json::parse(read_file(dir_ / "m" / "manifest.json"));
  j["probes"][1]["test_accuracy"] = 0.99;  // edited after writing
  atomic_write(dir_ / "m" / "manifest.json", j.dump());
  try {
    write_report(dir_ / "exp", dir_ / "m", "", fast_options());
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("changed after it was written"), std::string::npos)
        << e.what();
  }
  j["schema_version"] = 3;
  atomic_write(dir_ / "m" / "manifest.json", j.dump());
  try {
    write_report(dir_ / "exp", dir_ / "m" / "manifest.json", "", fast_options());
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("schema_version 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(write_report(dir_ / "exp", dir_ / "absent", "", fast_options()), InvalidInput);
}

}  // namespace
}  // namespace dataproxy
