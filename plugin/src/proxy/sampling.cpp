#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "dataproxy/error.h"
#include "dataproxy/proxy.h"

namespace dataproxy {
namespace {

// Uniform in the open interval (0, 1) from 53 random bits.
double open_uniform(std::mt19937_64& rng) {
  return (static_cast<double>(rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// Checks `weights` (float64 [N], finite, >= 0) and returns them contiguous on the CPU.
torch::Tensor checked_weights(const torch::Tensor& weights) {
  DATAPROXY_CHECK(weights.dim() == 1, InvalidInput,
                  "sampling weights must be a vector, got " << weights.sizes());
  torch::Tensor w = weights.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* wp = w.data_ptr<double>();
  for (int64_t i = 0; i < w.size(0); ++i) {
    DATAPROXY_CHECK(std::isfinite(wp[i]) && wp[i] >= 0, InvalidInput,
                    "sampling weight of sample " << i << " is " << wp[i]
                                                 << "; weights must be finite and >= 0");
  }
  return w;
}

// Sample indices by decreasing Efraimidis-Spirakis key log(u)/w (zero weights last): taking
// the first k of any subset is a weighted draw without replacement from that subset.
std::vector<int64_t> key_order(const double* wp, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> keys(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double u = open_uniform(rng);
    keys[i] = wp[i] > 0 ? std::log(u) / wp[i] : -std::numeric_limits<double>::infinity();
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return keys[a] != keys[b] ? keys[a] > keys[b] : a < b; });
  return order;
}

torch::Tensor checked_labels(const torch::Tensor& labels, int64_t n) {
  DATAPROXY_CHECK(labels.defined() && labels.dim() == 1 && labels.size(0) == n, InvalidInput,
                  "a per-class draw needs one label per sample (" << n << ")");
  torch::Tensor l = labels.to(torch::kCPU, torch::kInt64).contiguous();
  DATAPROXY_CHECK(n == 0 || l.min().item<int64_t>() >= 0, InvalidInput,
                  "labels must be >= 0 for a per-class draw");
  return l;
}

}  // namespace

std::vector<int64_t> per_class_quotas(const torch::Tensor& weights, const torch::Tensor& labels,
                                      int64_t count) {
  const torch::Tensor w = checked_weights(weights);
  const int64_t n = w.size(0);
  const torch::Tensor l = checked_labels(labels, n);
  const int64_t classes = n > 0 ? l.max().item<int64_t>() + 1 : 0;
  const torch::Tensor sizes =
      torch::bincount(l.masked_select(w.gt(0)), {}, classes).to(torch::kInt64).contiguous();
  const int64_t* sp = sizes.data_ptr<int64_t>();
  const int64_t total = sizes.sum().item<int64_t>();
  DATAPROXY_CHECK(count >= 0 && count <= total, InvalidInput,
                  "cannot draw " << count << " distinct samples from " << total
                                 << " candidates; lower the ratio or keep more classes");
  std::vector<int64_t> quota(static_cast<size_t>(classes), 0);
  std::vector<std::pair<double, int64_t>> remainders;
  int64_t assigned = 0;
  for (int64_t c = 0; c < classes; ++c) {
    if (sp[c] == 0) continue;
    const double exact = static_cast<double>(count) * static_cast<double>(sp[c]) / total;
    quota[c] = std::min<int64_t>(sp[c], static_cast<int64_t>(std::floor(exact)));
    assigned += quota[c];
    remainders.emplace_back(exact - static_cast<double>(quota[c]), c);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t k = 0; assigned < count; k = (k + 1) % remainders.size()) {
    const int64_t c = remainders[k].second;
    if (quota[c] < sp[c]) {
      ++quota[c];
      ++assigned;
    }
  }
  return quota;
}

torch::Tensor weighted_sample_per_class(const torch::Tensor& weights, const torch::Tensor& labels,
                                        const std::vector<int64_t>& quotas, uint64_t seed) {
  const torch::Tensor w = checked_weights(weights);
  const int64_t n = w.size(0);
  const torch::Tensor l = checked_labels(labels, n);
  const double* wp = w.data_ptr<double>();
  const int64_t* lp = l.data_ptr<int64_t>();
  std::vector<int64_t> left = quotas;
  std::vector<int64_t> picked;
  for (int64_t i : key_order(wp, n, seed)) {
    const int64_t c = lp[i];
    if (wp[i] > 0 && c < static_cast<int64_t>(left.size()) && left[c] > 0) {
      --left[c];
      picked.push_back(i);
    }
  }
  for (std::size_t c = 0; c < left.size(); ++c) {
    DATAPROXY_CHECK(left[c] == 0, InvalidInput,
                    "class " << c << " has " << quotas[c] - left[c] << " candidates but a quota of "
                             << quotas[c] << "; lower the ratio");
  }
  std::sort(picked.begin(), picked.end());
  return torch::tensor(picked, torch::kInt64);
}

TestSplit split_test_samples(const torch::Tensor& test_labels, const SelectionSplitOptions& options,
                             uint64_t seed) {
  const torch::Tensor l = test_labels.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t n = l.size(0);
  TestSplit out;
  if (options.split == "paper-test") {
    for (int64_t i = 0; i < n; ++i) out.selection.push_back(i);
    out.evaluation = out.selection;
    return out;
  }
  DATAPROXY_CHECK(options.split == "half-test", InvalidInput,
                  "selection split '" << options.split
                                      << "' is unknown; use half-test (a seeded part of the test "
                                         "split selects, the rest ranks) or paper-test (the whole "
                                         "test split does both, as in the paper)");
  DATAPROXY_CHECK(std::isfinite(options.fraction) && options.fraction > 0 && options.fraction < 1,
                  InvalidInput,
                  "selection fraction " << options.fraction
                                        << " is outside (0, 1): give the share of the test split "
                                           "that computes importance, e.g. 0.5");
  const uint64_t split_seed = options.seed >= 0 ? static_cast<uint64_t>(options.seed) : seed;
  std::mt19937_64 rng(split_seed ^ 0x73706c6974ULL);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(order[i], order[rng() % static_cast<uint64_t>(i + 1)]);
  }
  // Stratified: each class gives round(fraction * its size) samples to selection.
  const int64_t* lp = l.data_ptr<int64_t>();
  const int64_t classes = n > 0 ? l.max().item<int64_t>() + 1 : 0;
  const torch::Tensor sizes = torch::bincount(l, {}, classes).contiguous();
  std::vector<int64_t> want(static_cast<size_t>(classes));
  for (int64_t c = 0; c < classes; ++c) {
    want[c] = std::llround(options.fraction * static_cast<double>(sizes[c].item<int64_t>()));
  }
  std::vector<char> selected(static_cast<size_t>(n), 0);
  for (int64_t i : order) {
    if (want[lp[i]] > 0) {
      --want[lp[i]];
      selected[i] = 1;
    }
  }
  for (int64_t i = 0; i < n; ++i) (selected[i] ? out.selection : out.evaluation).push_back(i);
  DATAPROXY_CHECK(!out.selection.empty() && !out.evaluation.empty(), InvalidInput,
                  "the selection split of " << n << " test samples at fraction " << options.fraction
                                            << " leaves " << out.selection.size()
                                            << " for selection and " << out.evaluation.size()
                                            << " for ranking; use more test samples");
  return out;
}

int64_t proxy_size(double ratio, int64_t n) {
  DATAPROXY_CHECK(std::isfinite(ratio) && ratio > 0 && ratio <= 1, InvalidInput,
                  "ratio " << ratio
                           << " is outside (0, 1]: give the fraction of the training set to "
                              "keep, e.g. --ratio 0.1 for 10%");
  const int64_t k = std::llround(ratio * static_cast<double>(n));
  DATAPROXY_CHECK(
      k >= 1, InvalidInput,
      "ratio " << ratio << " of " << n << " training samples keeps no sample; use a larger ratio");
  return k;
}

torch::Tensor weighted_sample(const torch::Tensor& weights, int64_t count, uint64_t seed,
                              const torch::Tensor& labels, int64_t class_floor) {
  const torch::Tensor w = checked_weights(weights);
  const int64_t n = w.size(0);
  const double* wp = w.data_ptr<double>();
  int64_t positive = 0;
  for (int64_t i = 0; i < n; ++i) positive += wp[i] > 0;
  DATAPROXY_CHECK(count >= 0 && count <= positive, InvalidInput,
                  "cannot draw " << count << " distinct samples from " << positive
                                 << " candidates; lower the ratio or keep more classes");
  const std::vector<int64_t> order = key_order(wp, n, seed);

  std::vector<char> chosen(static_cast<size_t>(n), 0);
  int64_t taken = 0;
  if (class_floor > 0) {
    DATAPROXY_CHECK(labels.defined() && labels.dim() == 1 && labels.size(0) == n, InvalidInput,
                    "a class floor needs one label per sample");
    torch::Tensor l = labels.to(torch::kCPU, torch::kInt64).contiguous();
    const int64_t* lp = l.data_ptr<int64_t>();
    const int64_t classes = n > 0 ? l.max().item<int64_t>() + 1 : 0;
    std::vector<int64_t> per_class(static_cast<size_t>(classes), 0);
    for (int64_t i : order) {
      if (wp[i] > 0 && per_class[lp[i]] < class_floor) {
        ++per_class[lp[i]];
        chosen[i] = 1;
        ++taken;
      }
    }
    DATAPROXY_CHECK(taken <= count, InvalidInput,
                    "class floor " << class_floor << " needs " << taken
                                   << " samples but the proxy holds only " << count
                                   << "; lower --class-floor or raise --ratio");
  }
  for (int64_t i : order) {
    if (taken >= count) break;
    if (!chosen[i] && wp[i] > 0) {
      chosen[i] = 1;
      ++taken;
    }
  }
  std::vector<int64_t> picked;
  picked.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < n; ++i) {
    if (chosen[i]) picked.push_back(i);
  }
  return torch::tensor(picked, torch::kInt64);
}

std::vector<int64_t> reduce_labels(const torch::Tensor& importance, const torch::Tensor& labels,
                                   int64_t num_classes, double intermediate_ratio, uint64_t seed) {
  DATAPROXY_CHECK(
      std::isfinite(intermediate_ratio) && intermediate_ratio > 0 && intermediate_ratio <= 1,
      InvalidInput,
      "label-reduction ratio " << intermediate_ratio
                               << " is outside (0, 1]: give the fraction of the data "
                                  "the kept classes should hold, e.g. 0.2");
  torch::Tensor l = labels.to(torch::kCPU, torch::kInt64);
  torch::Tensor imp = importance.to(torch::kCPU, torch::kFloat64);
  torch::Tensor sums = torch::zeros({num_classes}, torch::kFloat64).index_add_(0, l, imp);
  torch::Tensor counts = torch::bincount(l, {}, num_classes);
  std::vector<int64_t> order(static_cast<size_t>(num_classes));
  for (int64_t c = 0; c < num_classes; ++c) order[c] = c;
  std::mt19937_64 rng(seed ^ 0x6c6162656cULL);
  for (int64_t i = num_classes - 1; i > 0; --i) {
    std::swap(order[i], order[rng() % static_cast<uint64_t>(i + 1)]);
  }
  auto sp = sums.accessor<double, 1>();
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sp[a] > sp[b]; });
  const int64_t target = std::llround(intermediate_ratio * static_cast<double>(l.size(0)));
  auto cp = counts.accessor<int64_t, 1>();
  std::vector<int64_t> kept;
  int64_t held = 0;
  for (int64_t c : order) {
    if (held >= target) break;
    if (cp[c] == 0) continue;
    kept.push_back(c);
    held += cp[c];
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

std::vector<int64_t> label_remap(const std::vector<int64_t>& kept, int64_t num_classes) {
  std::vector<int64_t> remap(static_cast<size_t>(num_classes), -1);
  int64_t next = 0;
  for (int64_t c : kept) {
    DATAPROXY_CHECK(c >= 0 && c < num_classes, InvalidInput,
                    "kept class " << c << " is outside [0, " << num_classes << ")");
    remap[c] = next++;
  }
  return remap;
}

}  // namespace dataproxy
