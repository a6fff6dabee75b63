// Ranking statistics between a proxy's accuracies and the full-data accuracies of the same
// candidates: correlations, top-k overlap, regret, pairwise agreement, bootstrap intervals.
// Degenerate inputs (fewer than 3 points, a constant vector, NaN) give defined=false with a
// note; vectors of different lengths throw InvalidInput.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dataproxy {

using json = nlohmann::json;

/// A correlation coefficient, or the reason it has none.
struct Correlation {
  double value = 0;      ///< in [-1, 1] when defined
  int64_t n = 0;         ///< number of (x, y) pairs
  bool defined = false;  ///< false: too few points, a constant vector, or a NaN
  std::string note;      ///< why it is undefined; empty when defined
};

/// Pearson's r.
Correlation pearson(const std::vector<double>& x, const std::vector<double>& y);
/// Spearman's rho: Pearson's r of the average ranks (ties share their mean rank).
Correlation spearman(const std::vector<double>& x, const std::vector<double>& y);
/// Kendall's tau-b (corrected for ties in x and in y), O(n log n).
Correlation kendall_tau_b(const std::vector<double>& x, const std::vector<double>& y);

/// 1-based ranks, ascending; tied values get the mean of their ranks.
std::vector<double> average_ranks(const std::vector<double>& v);

/// Percentile `p` in [0, 100] with linear interpolation between order statistics (the usual
/// "type 7" definition). Throws InvalidInput on an empty vector or p outside [0, 100].
double percentile(std::vector<double> values, double p);

/// How many of the proxy's k best candidates are among the k best by full-data accuracy.
struct TopKOverlap {
  int64_t k = 0;        ///< k used (the requested k, capped at n)
  int64_t common = 0;   ///< candidates in both top-k sets
  double fraction = 0;  ///< common / k
  bool defined = false;
  std::string note;  ///< why undefined, or that ties at the k-th place were broken by order
};
/// Higher is better for both vectors; ties are broken by position (earlier first).
TopKOverlap top_k_overlap(const std::vector<double>& proxy, const std::vector<double>& full,
                          int64_t k);

/// What trusting the proxy's pick costs: full accuracy of the true best minus that of the
/// candidate the proxy ranks first.
struct Regret {
  double value = 0;            ///< >= 0; 0 when the proxy picks the true best
  double best_full = 0;        ///< full accuracy of the true best
  double pick_full = 0;        ///< full accuracy of the proxy's pick (mean over a tie for first)
  int64_t best = -1;           ///< index of the true best (first one on a tie)
  std::vector<int64_t> picks;  ///< indices sharing the proxy's top accuracy
  bool defined = false;
  std::string note;
};
Regret regret(const std::vector<double>& proxy, const std::vector<double>& full);

/// For every pair of candidates: do the proxy and the full data order them the same way?
/// (The paper's Figure 2.)
struct PairwiseAgreement {
  int64_t n = 0;
  /// n*n, row-major: +1 same order, -1 opposite order, 0 a tie in either (and the diagonal).
  std::vector<int8_t> matrix;
  int64_t concordant = 0;  ///< pairs (i < j) ordered the same way
  int64_t discordant = 0;  ///< pairs ordered the opposite way
  int64_t tied = 0;        ///< pairs tied in proxy or in full accuracy
  double agreement = 0;    ///< concordant / (concordant + discordant); 0 when there are none
  int at(int64_t i, int64_t j) const { return matrix[static_cast<std::size_t>(i * n + j)]; }
};
PairwiseAgreement pairwise_agreement(const std::vector<double>& proxy,
                                     const std::vector<double>& full);

/// Options of the percentile bootstrap over candidates.
struct BootstrapOptions {
  int64_t resamples = 2000;  ///< resamples of the candidates, drawn with replacement
  double confidence = 0.95;  ///< two-sided level of the interval, in (0, 1)
  uint64_t seed = 0;         ///< the same seed gives the same interval on every platform
};

/// A percentile bootstrap confidence interval.
struct Interval {
  double low = 0;
  double high = 0;
  double confidence = 0;  ///< the level asked for
  int64_t resamples = 0;  ///< resamples where the statistic was defined (the others are skipped)
  bool defined = false;
  std::string note;  ///< why undefined
};

using PairStatistic =
    std::function<Correlation(const std::vector<double>&, const std::vector<double>&)>;

/// Resamples the (x[i], y[i]) pairs with replacement and takes the percentiles of `statistic`.
/// Resamples where it is undefined (e.g. all draws equal) are skipped; when more than half are,
/// the interval is undefined. Throws InvalidInput on bad options or mismatched lengths.
Interval bootstrap_ci(const std::vector<double>& x, const std::vector<double>& y,
                      const PairStatistic& statistic, const BootstrapOptions& options = {});

/// Options of summarize_ranking().
struct RankingOptions {
  BootstrapOptions bootstrap;  ///< for the intervals of the three correlations
  int64_t top_k = 3;           ///< k of the top-k overlap (capped at the number of candidates)
};

/// Every statistic of one set of candidates with both a proxy and a full-data accuracy.
struct RankingSummary {
  int64_t n = 0;
  Correlation pearson, spearman, kendall;
  Interval pearson_ci, spearman_ci, kendall_ci;
  TopKOverlap top_k;
  Regret regret;
  PairwiseAgreement pairs;
  /// Everything but the pair matrix, with null for undefined values.
  json to_json() const;
};
RankingSummary summarize_ranking(const std::vector<double>& proxy, const std::vector<double>& full,
                                 const RankingOptions& options = {});

json to_json(const Correlation& c);
json to_json(const Interval& i);

}  // namespace dataproxy
