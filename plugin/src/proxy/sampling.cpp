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

}  // namespace

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
  DATAPROXY_CHECK(weights.dim() == 1, InvalidInput,
                  "sampling weights must be a vector, got " << weights.sizes());
  torch::Tensor w = weights.to(torch::kCPU, torch::kFloat64).contiguous();
  const int64_t n = w.size(0);
  const double* wp = w.data_ptr<double>();
  int64_t positive = 0;
  for (int64_t i = 0; i < n; ++i) {
    DATAPROXY_CHECK(std::isfinite(wp[i]) && wp[i] >= 0, InvalidInput,
                    "sampling weight of sample " << i << " is " << wp[i]
                                                 << "; weights must be finite and >= 0");
    positive += wp[i] > 0;
  }
  DATAPROXY_CHECK(count >= 0 && count <= positive, InvalidInput,
                  "cannot draw " << count << " distinct samples from " << positive
                                 << " candidates; lower the ratio or keep more classes");
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
