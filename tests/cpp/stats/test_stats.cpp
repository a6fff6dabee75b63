// Expected values were computed once with SciPy 1.17.1 / NumPy (the project's .venv) and pasted
// here; each constant names the call that produced it.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "dataproxy/error.h"
#include "dataproxy/stats.h"

namespace dataproxy {
namespace {

// No ties.
const std::vector<double> kAx = {0.61, 0.72, 0.55, 0.80, 0.78, 0.66, 0.70, 0.59, 0.83, 0.74};
const std::vector<double> kAy = {0.85, 0.88, 0.84, 0.91, 0.92, 0.86, 0.87, 0.83, 0.93, 0.90};
// Ties in x, in y, and in both at once.
const std::vector<double> kBx = {1, 2, 2, 3, 3, 3, 4, 5, 5, 6};
const std::vector<double> kBy = {2, 1, 3, 3, 3, 5, 4, 6, 6, 5};
// Negative association, one tie pair in both.
const std::vector<double> kCx = {0.3, 0.1, 0.4, 0.1, 0.5, 0.9, 0.2, 0.6};
const std::vector<double> kCy = {0.8, 0.7, 0.2, 0.7, 0.1, 0.3, 0.9, 0.4};

constexpr double kTol = 1e-12;

TEST(Correlations, MatchScipyWithoutTies) {
  // scipy.stats.pearsonr(A_x, A_y).statistic
  EXPECT_NEAR(pearson(kAx, kAy).value, 0.9675616754047971, kTol);
  // scipy.stats.spearmanr(A_x, A_y).statistic
  EXPECT_NEAR(spearman(kAx, kAy).value, 0.9757575757575757, kTol);
  // scipy.stats.kendalltau(A_x, A_y, variant='b').statistic
  EXPECT_NEAR(kendall_tau_b(kAx, kAy).value, 0.911111111111111, kTol);
  EXPECT_TRUE(pearson(kAx, kAy).defined);
  EXPECT_EQ(pearson(kAx, kAy).n, 10);
}

TEST(Correlations, MatchScipyWithTies) {
  // scipy.stats.pearsonr(B_x, B_y).statistic
  EXPECT_NEAR(pearson(kBx, kBy).value, 0.826839467166563, kTol);
  // scipy.stats.spearmanr(B_x, B_y).statistic
  EXPECT_NEAR(spearman(kBx, kBy).value, 0.8553459119496856, kTol);
  // scipy.stats.kendalltau(B_x, B_y, variant='b').statistic
  EXPECT_NEAR(kendall_tau_b(kBx, kBy).value, 0.7249999999999999, kTol);
}

TEST(Correlations, MatchScipyNegative) {
  // scipy.stats.pearsonr(C_x, C_y).statistic
  EXPECT_NEAR(pearson(kCx, kCy).value, -0.674227112681289, kTol);
  // scipy.stats.spearmanr(C_x, C_y).statistic
  EXPECT_NEAR(spearman(kCx, kCy).value, -0.6144578313253012, kTol);
  // scipy.stats.kendalltau(C_x, C_y, variant='b').statistic
  EXPECT_NEAR(kendall_tau_b(kCx, kCy).value, -0.4074074074074074, kTol);
}

TEST(Correlations, AverageRanksMatchScipyRankdata) {
  // scipy.stats.rankdata(B_x)
  std::vector<double> want = {1.0, 2.5, 2.5, 5.0, 5.0, 5.0, 7.0, 8.5, 8.5, 10.0};
  EXPECT_EQ(average_ranks(kBx), want);
}

// Kendall's tau-b by its definition, O(n^2): an independent check of the O(n log n) algorithm.
double brute_force_tau_b(const std::vector<double>& x, const std::vector<double>& y) {
  double con_minus_dis = 0, untied_x = 0, untied_y = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    for (std::size_t j = i + 1; j < x.size(); ++j) {
      double dx = x[i] - x[j], dy = y[i] - y[j];
      con_minus_dis += ((dx > 0) - (dx < 0)) * ((dy > 0) - (dy < 0));
      untied_x += dx != 0;
      untied_y += dy != 0;
    }
  }
  return con_minus_dis / std::sqrt(untied_x * untied_y);
}

TEST(Correlations, KendallAgreesWithBruteForceOnManyTies) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(0, 12);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(300), y(300);
    for (std::size_t i = 0; i < x.size(); ++i) {
      x[i] = small(rng);
      y[i] = (trial % 2 ? x[i] : 0) + small(rng);
    }
    EXPECT_NEAR(kendall_tau_b(x, y).value, brute_force_tau_b(x, y), 1e-12) << "trial " << trial;
  }
}

TEST(Correlations, PerfectAndReversedOrders) {
  std::vector<double> x = {1, 2, 3, 4, 5}, up = {10, 20, 30, 40, 50}, down = {5, 4, 3, 2, 1};
  EXPECT_DOUBLE_EQ(spearman(x, up).value, 1.0);
  EXPECT_DOUBLE_EQ(kendall_tau_b(x, up).value, 1.0);
  EXPECT_DOUBLE_EQ(kendall_tau_b(x, down).value, -1.0);
  EXPECT_DOUBLE_EQ(pearson(x, down).value, -1.0);
}

TEST(Correlations, DegenerateInputsAreUndefinedWithANote) {
  std::vector<double> two = {0.1, 0.2};
  for (auto f : {pearson, spearman, kendall_tau_b}) {
    Correlation c = f(two, two);
    EXPECT_FALSE(c.defined);
    EXPECT_EQ(c.n, 2);
    EXPECT_NE(c.note.find("at least 3"), std::string::npos) << c.note;

    Correlation flat = f({0.1, 0.1, 0.1, 0.1}, {0.3, 0.5, 0.2, 0.9});
    EXPECT_FALSE(flat.defined);
    EXPECT_NE(flat.note.find("equal"), std::string::npos) << flat.note;

    double nan = std::numeric_limits<double>::quiet_NaN();
    Correlation withnan = f({0.1, nan, 0.3}, {0.3, 0.5, 0.2});
    EXPECT_FALSE(withnan.defined);
    EXPECT_NE(withnan.note.find("x[1] is NaN"), std::string::npos) << withnan.note;

    EXPECT_FALSE(f({}, {}).defined);
    EXPECT_THROW(f({0.1, 0.2, 0.3}, {0.1, 0.2}), InvalidInput);
  }
}

TEST(Percentile, MatchesNumpyLinearInterpolation) {
  std::vector<double> v = {0.91, 0.2, 0.35, 0.8, 0.77, 0.5, 0.13};
  // numpy.percentile(v, p) for p = 2.5, 50, 97.5, 0, 100, 33
  EXPECT_NEAR(percentile(v, 2.5), 0.1405, kTol);
  EXPECT_NEAR(percentile(v, 50), 0.5, kTol);
  EXPECT_NEAR(percentile(v, 97.5), 0.8935, kTol);
  EXPECT_NEAR(percentile(v, 0), 0.13, kTol);
  EXPECT_NEAR(percentile(v, 100), 0.91, kTol);
  EXPECT_NEAR(percentile(v, 33), 0.347, kTol);
  EXPECT_THROW(percentile({}, 50), InvalidInput);
  EXPECT_THROW(percentile(v, 101), InvalidInput);
}

TEST(TopK, CountsCommonCandidates) {
  // Top 3 by A_x: indices 8, 3, 4; by A_y: 8, 4, 3 (sorted by hand).
  TopKOverlap t3 = top_k_overlap(kAx, kAy, 3);
  EXPECT_TRUE(t3.defined);
  EXPECT_EQ(t3.common, 3);
  EXPECT_DOUBLE_EQ(t3.fraction, 1.0);
  // Top 2: {8, 3} against {8, 4}.
  TopKOverlap t2 = top_k_overlap(kAx, kAy, 2);
  EXPECT_EQ(t2.common, 1);
  EXPECT_DOUBLE_EQ(t2.fraction, 0.5);
  EXPECT_EQ(top_k_overlap(kAx, kAy, 50).k, 10);
  EXPECT_FALSE(top_k_overlap(kAx, kAy, 0).defined);
  // B_x ties 3 and 3 at places 4-6: a tie straddles k = 5.
  EXPECT_FALSE(top_k_overlap(kBx, kBy, 5).note.empty());
}

TEST(Regret, ProxyPickAgainstTrueBest) {
  Regret a = regret(kAx, kAy);  // both rank index 8 first
  EXPECT_TRUE(a.defined);
  EXPECT_DOUBLE_EQ(a.value, 0.0);
  EXPECT_EQ(a.best, 8);
  // C: the proxy picks index 5 (x 0.9, y 0.3); the true best is index 6 (y 0.9).
  Regret c = regret(kCx, kCy);
  EXPECT_EQ(c.picks, std::vector<int64_t>{5});
  EXPECT_EQ(c.best, 6);
  EXPECT_NEAR(c.value, 0.6, 1e-12);
  // A tie for the proxy's first place averages the picks: (0.5 + 0.9) / 2 against 0.9.
  Regret tie = regret({0.8, 0.8, 0.1}, {0.5, 0.9, 0.2});
  EXPECT_EQ(tie.picks.size(), 2u);
  EXPECT_NEAR(tie.value, 0.2, 1e-12);
  EXPECT_FALSE(regret({}, {}).defined);
}

TEST(Pairwise, MatrixAndCounts) {
  PairwiseAgreement p = pairwise_agreement(kBx, kBy);
  // Counted with a Python double loop over i < j of sign(dx) * sign(dy).
  EXPECT_EQ(p.concordant, 33);
  EXPECT_EQ(p.discordant, 4);
  EXPECT_EQ(p.tied, 8);
  EXPECT_NEAR(p.agreement, 33.0 / 37.0, 1e-12);
  EXPECT_EQ(p.at(0, 1), -1);  // x 1 < 2 but y 2 > 1
  EXPECT_EQ(p.at(1, 0), -1);
  EXPECT_EQ(p.at(0, 2), 1);
  EXPECT_EQ(p.at(3, 4), 0);  // tied in both
  EXPECT_EQ(p.at(5, 5), 0);
}

TEST(Bootstrap, SeededAndCloseToScipy) {
  BootstrapOptions opt;
  opt.resamples = 20000;
  opt.seed = 11;
  Interval p = bootstrap_ci(kAx, kAy, pearson, opt);
  Interval s = bootstrap_ci(kAx, kAy, spearman, opt);
  ASSERT_TRUE(p.defined && s.defined);
  // scipy.stats.bootstrap((A_x, A_y), statistic, paired=True, vectorized=False,
  //   n_resamples=20000, method='percentile', rng=np.random.default_rng(1..3)) gave
  //   pearsonr: low 0.9371-0.9382, high 0.9915-0.9919; spearmanr: low 0.8077-0.8101, high 1.0.
  // Different generators: compare within Monte Carlo error.
  EXPECT_NEAR(p.low, 0.9377, 0.01);
  EXPECT_NEAR(p.high, 0.9917, 0.005);
  EXPECT_NEAR(s.low, 0.809, 0.02);
  EXPECT_NEAR(s.high, 1.0, 1e-12);
  EXPECT_LE(p.low, pearson(kAx, kAy).value);
  EXPECT_GE(p.high, pearson(kAx, kAy).value);

  BootstrapOptions small;
  small.resamples = 500;
  small.seed = 3;
  Interval k1 = bootstrap_ci(kBx, kBy, kendall_tau_b, small);
  Interval k2 = bootstrap_ci(kBx, kBy, kendall_tau_b, small);
  EXPECT_EQ(k1.low, k2.low);
  EXPECT_EQ(k1.high, k2.high);
  small.seed = 4;
  Interval k3 = bootstrap_ci(kBx, kBy, kendall_tau_b, small);
  EXPECT_TRUE(k3.low != k1.low || k3.high != k1.high);
}

TEST(Bootstrap, DegenerateAndBadOptions) {
  Interval few = bootstrap_ci({0.1, 0.2}, {0.3, 0.4}, spearman);
  EXPECT_FALSE(few.defined);
  EXPECT_NE(few.note.find("at least 3"), std::string::npos);
  BootstrapOptions bad;
  bad.resamples = 0;
  EXPECT_THROW(bootstrap_ci(kAx, kAy, spearman, bad), InvalidInput);
  bad.resamples = 10;
  bad.confidence = 1.5;
  EXPECT_THROW(bootstrap_ci(kAx, kAy, spearman, bad), InvalidInput);
  // Three distinct points: most resamples repeat a point, many are constant and skipped,
  // but the interval must stay inside [-1, 1] and count only the defined ones.
  BootstrapOptions opt;
  opt.resamples = 300;
  Interval three = bootstrap_ci({1, 2, 3}, {1, 3, 2}, kendall_tau_b, opt);
  EXPECT_LE(three.resamples, 300);
  if (three.defined) {
    EXPECT_GE(three.low, -1.0);
    EXPECT_LE(three.high, 1.0);
  } else {
    EXPECT_FALSE(three.note.empty());
  }
}

TEST(Summary, CollectsEverythingAndSerialises) {
  RankingOptions opt;
  opt.bootstrap.resamples = 200;
  RankingSummary s = summarize_ranking(kAx, kAy, opt);
  EXPECT_EQ(s.n, 10);
  EXPECT_NEAR(s.spearman.value, 0.9757575757575757, kTol);
  EXPECT_TRUE(s.spearman_ci.defined);
  EXPECT_EQ(s.top_k.k, 3);
  json j = s.to_json();
  EXPECT_NEAR(j["kendall_tau_b"]["value"].get<double>(), 0.911111111111111, kTol);
  EXPECT_TRUE(j["kendall_tau_b"]["ci"]["low"].is_number());
  EXPECT_EQ(j["pairs"]["concordant"].get<int64_t>() + j["pairs"]["discordant"].get<int64_t>(), 45);

  RankingSummary empty = summarize_ranking({}, {}, opt);
  json e = empty.to_json();
  EXPECT_TRUE(e["pearson"]["value"].is_null());
  EXPECT_TRUE(e["pearson"]["ci"]["low"].is_null());
  EXPECT_FALSE(e["pearson"]["note"].get<std::string>().empty());
}

}  // namespace
}  // namespace dataproxy
