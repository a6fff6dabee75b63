#include "dataproxy/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "dataproxy/error.h"

namespace dataproxy {
namespace {

void check_lengths(const std::vector<double>& x, const std::vector<double>& y, const char* what) {
  DATAPROXY_CHECK(x.size() == y.size(), InvalidInput,
                  what << ": the two vectors must have one value per candidate, got " << x.size()
                       << " and " << y.size() << " values");
}

// First non-finite value, as a note; empty when all are finite.
std::string non_finite_note(const std::vector<double>& v, const char* name) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      return std::string(name) + "[" + std::to_string(i) + "] is " +
             (std::isnan(v[i]) ? "NaN" : "infinite") + "; drop that candidate or fix its value";
    }
  }
  return {};
}

bool is_constant(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [&](double a) { return a == v.front(); });
}

// Common checks of the correlations; returns an undefined result with its note, or n only.
Correlation precheck(const std::vector<double>& x, const std::vector<double>& y, const char* what) {
  check_lengths(x, y, what);
  Correlation c;
  c.n = static_cast<int64_t>(x.size());
  if (x.size() < 3) {
    c.note = "needs at least 3 candidates with both accuracies, got " + std::to_string(x.size());
    return c;
  }
  if (auto note = non_finite_note(x, "x"); !note.empty()) {
    c.note = note;
    return c;
  }
  if (auto note = non_finite_note(y, "y"); !note.empty()) {
    c.note = note;
    return c;
  }
  if (is_constant(x) || is_constant(y)) {
    c.note = std::string("all ") + (is_constant(x) ? "x" : "y") +
             " values are equal, so there is no ranking to compare";
    return c;
  }
  c.defined = true;
  return c;
}

double pearson_value(const std::vector<double>& x, const std::vector<double>& y) {
  const std::size_t n = x.size();
  long double mx = 0, my = 0;
  for (std::size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  long double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < n; ++i) {
    long double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  double r = static_cast<double>(sxy / std::sqrt(sxx * syy));
  return std::clamp(r, -1.0, 1.0);
}

// Sum of t(t-1)/2 over runs of equal values in a sorted sequence.
template <typename Equal>
int64_t tied_pairs(std::size_t n, Equal equal) {
  int64_t total = 0, run = 1;
  for (std::size_t i = 1; i <= n; ++i) {
    if (i < n && equal(i - 1, i)) {
      ++run;
    } else {
      total += run * (run - 1) / 2;
      run = 1;
    }
  }
  return total;
}

// Sorts `v` ascending and returns the number of inversions (pairs out of order, ties excluded).
int64_t sort_counting_inversions(std::vector<double>& v, std::vector<double>& buf, std::size_t lo,
                                 std::size_t hi) {
  if (hi - lo < 2) return 0;
  std::size_t mid = lo + (hi - lo) / 2;
  int64_t count =
      sort_counting_inversions(v, buf, lo, mid) + sort_counting_inversions(v, buf, mid, hi);
  std::size_t i = lo, j = mid, k = lo;
  while (i < mid && j < hi) {
    if (v[j] < v[i]) {
      count += static_cast<int64_t>(mid - i);
      buf[k++] = v[j++];
    } else {
      buf[k++] = v[i++];
    }
  }
  while (i < mid) buf[k++] = v[i++];
  while (j < hi) buf[k++] = v[j++];
  std::copy(buf.begin() + static_cast<std::ptrdiff_t>(lo),
            buf.begin() + static_cast<std::ptrdiff_t>(hi),
            v.begin() + static_cast<std::ptrdiff_t>(lo));
  return count;
}

double kendall_value(const std::vector<double>& x, const std::vector<double>& y) {
  // Knight's algorithm: sort by (x, y); the inversions of y in that order are the discordant
  // pairs (pairs tied in x are already in y order, so they count as none).
  const std::size_t n = x.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return x[a] < x[b] || (x[a] == x[b] && y[a] < y[b]);
  });
  int64_t x_ties =
      tied_pairs(n, [&](std::size_t a, std::size_t b) { return x[order[a]] == x[order[b]]; });
  int64_t xy_ties = tied_pairs(n, [&](std::size_t a, std::size_t b) {
    return x[order[a]] == x[order[b]] && y[order[a]] == y[order[b]];
  });
  std::vector<double> ys(n), buf(n);
  for (std::size_t i = 0; i < n; ++i) ys[i] = y[order[i]];
  int64_t discordant = sort_counting_inversions(ys, buf, 0, n);
  int64_t y_ties = tied_pairs(n, [&](std::size_t a, std::size_t b) { return ys[a] == ys[b]; });
  int64_t total = static_cast<int64_t>(n) * static_cast<int64_t>(n - 1) / 2;
  int64_t con_minus_dis = total - x_ties - y_ties + xy_ties - 2 * discordant;
  double denom = std::sqrt(static_cast<double>(total - x_ties)) *
                 std::sqrt(static_cast<double>(total - y_ties));
  return std::clamp(static_cast<double>(con_minus_dis) / denom, -1.0, 1.0);
}

// Indices sorted by value, highest first; ties keep their order.
std::vector<std::size_t> descending_order(const std::vector<double>& v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return v[a] > v[b]; });
  return order;
}

int sign(double d) { return (d > 0) - (d < 0); }

// Uniform integer in [0, n) from a 64-bit generator, the same on every standard library
// (std::uniform_int_distribution is not specified bit for bit).
uint64_t draw_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t r;
  do {
    r = rng();
  } while (r >= limit);
  return r % n;
}

json value_or_null(const Correlation& c) { return c.defined ? json(c.value) : json(nullptr); }

}  // namespace

Correlation pearson(const std::vector<double>& x, const std::vector<double>& y) {
  Correlation c = precheck(x, y, "pearson");
  if (c.defined) c.value = pearson_value(x, y);
  return c;
}

Correlation spearman(const std::vector<double>& x, const std::vector<double>& y) {
  Correlation c = precheck(x, y, "spearman");
  if (c.defined) c.value = pearson_value(average_ranks(x), average_ranks(y));
  return c;
}

Correlation kendall_tau_b(const std::vector<double>& x, const std::vector<double>& y) {
  Correlation c = precheck(x, y, "kendall_tau_b");
  if (c.defined) c.value = kendall_value(x, y);
  return c;
}

std::vector<double> average_ranks(const std::vector<double>& v) {
  const std::size_t n = v.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(n);
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i + 1;
    while (j < n && v[order[j]] == v[order[i]]) ++j;
    double mean_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (std::size_t k = i; k < j; ++k) ranks[order[k]] = mean_rank;
    i = j;
  }
  return ranks;
}

double percentile(std::vector<double> values, double p) {
  DATAPROXY_CHECK(!values.empty(), InvalidInput, "percentile of an empty set of values");
  DATAPROXY_CHECK(p >= 0 && p <= 100, InvalidInput, "percentile " << p << " is outside [0, 100]");
  std::sort(values.begin(), values.end());
  double pos = p / 100 * static_cast<double>(values.size() - 1);
  auto lo = static_cast<std::size_t>(std::floor(pos));
  std::size_t hi = std::min(lo + 1, values.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return values[lo] + frac * (values[hi] - values[lo]);
}

TopKOverlap top_k_overlap(const std::vector<double>& proxy, const std::vector<double>& full,
                          int64_t k) {
  check_lengths(proxy, full, "top_k_overlap");
  TopKOverlap t;
  const auto n = static_cast<int64_t>(proxy.size());
  t.k = std::min(k, n);
  if (k < 1 || n == 0) {
    t.note = n == 0 ? "no candidates" : "k must be at least 1, got " + std::to_string(k);
    return t;
  }
  if (auto note = non_finite_note(proxy, "proxy"); !note.empty()) {
    t.note = note;
    return t;
  }
  if (auto note = non_finite_note(full, "full"); !note.empty()) {
    t.note = note;
    return t;
  }
  auto by_proxy = descending_order(proxy);
  auto by_full = descending_order(full);
  std::vector<char> in_full(proxy.size(), 0);
  for (int64_t i = 0; i < t.k; ++i) in_full[by_full[i]] = 1;
  for (int64_t i = 0; i < t.k; ++i) t.common += in_full[by_proxy[i]];
  t.fraction = static_cast<double>(t.common) / static_cast<double>(t.k);
  t.defined = true;
  auto tie_at_k = [&](const std::vector<double>& v, const std::vector<std::size_t>& order) {
    return t.k < n && v[order[t.k - 1]] == v[order[t.k]];
  };
  if (tie_at_k(proxy, by_proxy) || tie_at_k(full, by_full)) {
    t.note = "a tie straddles the k-th place; it was broken by candidate order";
  }
  return t;
}

Regret regret(const std::vector<double>& proxy, const std::vector<double>& full) {
  check_lengths(proxy, full, "regret");
  Regret r;
  if (proxy.empty()) {
    r.note = "no candidates";
    return r;
  }
  if (auto note = non_finite_note(proxy, "proxy"); !note.empty()) {
    r.note = note;
    return r;
  }
  if (auto note = non_finite_note(full, "full"); !note.empty()) {
    r.note = note;
    return r;
  }
  const auto n = static_cast<int64_t>(proxy.size());
  double top_proxy = *std::max_element(proxy.begin(), proxy.end());
  r.best = std::max_element(full.begin(), full.end()) - full.begin();
  r.best_full = full[static_cast<std::size_t>(r.best)];
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (proxy[static_cast<std::size_t>(i)] == top_proxy) {
      r.picks.push_back(i);
      sum += full[static_cast<std::size_t>(i)];
    }
  }
  r.pick_full = sum / static_cast<double>(r.picks.size());
  r.value = std::max(0.0, r.best_full - r.pick_full);
  r.defined = true;
  if (r.picks.size() > 1) {
    r.note = std::to_string(r.picks.size()) +
             " candidates share the top proxy accuracy; the regret averages over them";
  }
  return r;
}

PairwiseAgreement pairwise_agreement(const std::vector<double>& proxy,
                                     const std::vector<double>& full) {
  check_lengths(proxy, full, "pairwise_agreement");
  PairwiseAgreement p;
  p.n = static_cast<int64_t>(proxy.size());
  p.matrix.assign(static_cast<std::size_t>(p.n * p.n), 0);
  for (int64_t i = 0; i < p.n; ++i) {
    for (int64_t j = i + 1; j < p.n; ++j) {
      // NaN compares false both ways, so it lands in "tied".
      int s = sign(proxy[i] - proxy[j]) * sign(full[i] - full[j]);
      p.matrix[static_cast<std::size_t>(i * p.n + j)] = static_cast<int8_t>(s);
      p.matrix[static_cast<std::size_t>(j * p.n + i)] = static_cast<int8_t>(s);
      (s > 0 ? p.concordant : s < 0 ? p.discordant : p.tied) += 1;
    }
  }
  int64_t ordered = p.concordant + p.discordant;
  p.agreement = ordered > 0 ? static_cast<double>(p.concordant) / static_cast<double>(ordered) : 0;
  return p;
}

Interval bootstrap_ci(const std::vector<double>& x, const std::vector<double>& y,
                      const PairStatistic& statistic, const BootstrapOptions& options) {
  check_lengths(x, y, "bootstrap_ci");
  DATAPROXY_CHECK(options.resamples >= 1, InvalidInput,
                  "bootstrap resamples must be at least 1, got " << options.resamples
                                                                 << " (2000 is a good default)");
  DATAPROXY_CHECK(
      options.confidence > 0 && options.confidence < 1, InvalidInput,
      "bootstrap confidence must be in (0, 1), got " << options.confidence << " (e.g. 0.95)");
  Interval ci;
  ci.confidence = options.confidence;
  Correlation whole = statistic(x, y);
  if (!whole.defined) {
    ci.note = whole.note;
    return ci;
  }
  const std::size_t n = x.size();
  std::mt19937_64 rng(options.seed);
  std::vector<double> bx(n), by(n), values;
  values.reserve(static_cast<std::size_t>(options.resamples));
  for (int64_t r = 0; r < options.resamples; ++r) {
    for (std::size_t i = 0; i < n; ++i) {
      auto k = static_cast<std::size_t>(draw_below(rng, n));
      bx[i] = x[k];
      by[i] = y[k];
    }
    Correlation c = statistic(bx, by);
    if (c.defined) values.push_back(c.value);
  }
  ci.resamples = static_cast<int64_t>(values.size());
  if (ci.resamples * 2 < options.resamples) {
    ci.note = "only " + std::to_string(ci.resamples) + " of " + std::to_string(options.resamples) +
              " resamples gave a defined value (too few distinct candidates)";
    return ci;
  }
  double tail = (1 - options.confidence) / 2 * 100;
  ci.low = percentile(values, tail);
  ci.high = percentile(values, 100 - tail);
  ci.defined = true;
  return ci;
}

RankingSummary summarize_ranking(const std::vector<double>& proxy, const std::vector<double>& full,
                                 const RankingOptions& options) {
  check_lengths(proxy, full, "summarize_ranking");
  RankingSummary s;
  s.n = static_cast<int64_t>(proxy.size());
  s.pearson = pearson(proxy, full);
  s.spearman = spearman(proxy, full);
  s.kendall = kendall_tau_b(proxy, full);
  auto ci_of = [&](const Correlation& c, const PairStatistic& f) {
    if (!c.defined) {
      Interval i;
      i.confidence = options.bootstrap.confidence;
      i.note = c.note;
      return i;
    }
    return bootstrap_ci(proxy, full, f, options.bootstrap);
  };
  s.pearson_ci = ci_of(s.pearson, pearson);
  s.spearman_ci = ci_of(s.spearman, spearman);
  s.kendall_ci = ci_of(s.kendall, kendall_tau_b);
  s.top_k = top_k_overlap(proxy, full, options.top_k);
  s.regret = regret(proxy, full);
  s.pairs = pairwise_agreement(proxy, full);
  return s;
}

json to_json(const Correlation& c) {
  return {{"value", value_or_null(c)}, {"n", c.n}, {"defined", c.defined}, {"note", c.note}};
}

json to_json(const Interval& i) {
  return {{"low", i.defined ? json(i.low) : json(nullptr)},
          {"high", i.defined ? json(i.high) : json(nullptr)},
          {"confidence", i.confidence},
          {"resamples", i.resamples},
          {"defined", i.defined},
          {"note", i.note}};
}

json RankingSummary::to_json() const {
  using dataproxy::to_json;
  json j;
  j["n"] = n;
  j["pearson"] = to_json(pearson);
  j["pearson"]["ci"] = to_json(pearson_ci);
  j["spearman"] = to_json(spearman);
  j["spearman"]["ci"] = to_json(spearman_ci);
  j["kendall_tau_b"] = to_json(kendall);
  j["kendall_tau_b"]["ci"] = to_json(kendall_ci);
  j["top_k"] = {{"k", top_k.k},
                {"common", top_k.common},
                {"fraction", top_k.defined ? json(top_k.fraction) : json(nullptr)},
                {"defined", top_k.defined},
                {"note", top_k.note}};
  j["regret"] = {{"value", regret.defined ? json(regret.value) : json(nullptr)},
                 {"best_full", regret.defined ? json(regret.best_full) : json(nullptr)},
                 {"pick_full", regret.defined ? json(regret.pick_full) : json(nullptr)},
                 {"best", regret.best},
                 {"picks", regret.picks},
                 {"defined", regret.defined},
                 {"note", regret.note}};
  j["pairs"] = {{"concordant", pairs.concordant},
                {"discordant", pairs.discordant},
                {"tied", pairs.tied},
                {"agreement",
                 pairs.concordant + pairs.discordant > 0 ? json(pairs.agreement) : json(nullptr)}};
  return j;
}

}  // namespace dataproxy
