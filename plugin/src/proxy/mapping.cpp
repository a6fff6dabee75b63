#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "dataproxy/error.h"
#include "dataproxy/proxy.h"

namespace dataproxy {

torch::Tensor Pca::transform(const torch::Tensor& x) const {
  return (x.to(torch::kFloat32) - mean).mm(components).contiguous();
}

Pca fit_pca(const torch::Tensor& x, int64_t dim) {
  DATAPROXY_CHECK(x.dim() == 2 && x.size(0) >= 2, InvalidInput,
                  "PCA needs a [samples >= 2, features] matrix, got " << x.sizes());
  DATAPROXY_CHECK(dim > 0, InvalidInput,
                  "PCA dimension " << dim << " must be positive (use --pca-dim 0 to skip PCA)");
  torch::NoGradGuard no_grad;
  torch::Tensor xf = x.to(torch::kCPU, torch::kFloat32);
  const int64_t d = std::min<int64_t>(dim, xf.size(1));
  torch::Tensor mean = xf.to(torch::kFloat64).mean(0);
  torch::Tensor centred = xf - mean.to(torch::kFloat32);
  // The covariance product in float32 is the only large step; the eigensolver runs in float64.
  torch::Tensor cov = centred.t().mm(centred).to(torch::kFloat64) / double(xf.size(0) - 1);
  auto [evals, evecs] = torch::linalg::eigh(cov, "L");
  torch::Tensor order = torch::arange(cov.size(0) - 1, cov.size(0) - 1 - d, -1, torch::kInt64);
  torch::Tensor comps = evecs.index_select(1, order);
  torch::Tensor pivot = comps.abs().argmax(0);
  torch::Tensor signs = comps.gather(0, pivot.unsqueeze(0)).sign();
  signs.masked_fill_(signs.eq(0), 1);
  Pca pca;
  pca.mean = mean.to(torch::kFloat32);
  pca.components = (comps * signs).to(torch::kFloat32).contiguous();
  pca.variances = evals.index_select(0, order).clamp_min(0);
  return pca;
}

torch::Tensor brute_force_nearest(const torch::Tensor& index_points,
                                  const torch::Tensor& query_points) {
  DATAPROXY_CHECK(index_points.dim() == 2 && query_points.dim() == 2 &&
                      index_points.size(1) == query_points.size(1) && index_points.size(0) > 0,
                  InvalidInput,
                  "nearest neighbours need [I, d] and [Q, d] points with I > 0, got "
                      << index_points.sizes() << " and " << query_points.sizes());
  torch::NoGradGuard no_grad;
  torch::Tensor p = index_points.to(torch::kFloat32);
  torch::Tensor q = query_points.to(torch::kFloat32);
  torch::Tensor pn = p.pow(2).sum(1);
  torch::Tensor out = torch::empty({q.size(0)}, torch::kInt64);
  const int64_t chunk = 2048;
  for (int64_t s = 0; s < q.size(0); s += chunk) {
    const int64_t e = std::min(q.size(0), s + chunk);
    torch::Tensor d2 = pn.unsqueeze(0) - 2 * q.slice(0, s, e).mm(p.t());
    out.slice(0, s, e).copy_(d2.argmin(1));
  }
  return out;
}

torch::Tensor nearest_neighbours(const torch::Tensor& index_points,
                                 const torch::Tensor& query_points, const KnnOptions& options,
                                 Reporter& reporter) {
  if (options.exact) return brute_force_nearest(index_points, query_points);
  DATAPROXY_CHECK(index_points.dim() == 2 && query_points.dim() == 2 &&
                      index_points.size(1) == query_points.size(1) && index_points.size(0) > 0,
                  InvalidInput,
                  "nearest neighbours need [I, d] and [Q, d] points with I > 0, got "
                      << index_points.sizes() << " and " << query_points.sizes());
  DATAPROXY_CHECK(
      options.m >= 2 && options.ef_construction >= 1 && options.ef_search >= 1, InvalidInput,
      "hnswlib settings M=" << options.m << ", ef_construction=" << options.ef_construction
                            << ", ef_search=" << options.ef_search
                            << " are invalid; use M >= 2, ef >= 1");
  torch::Tensor p = index_points.to(torch::kCPU, torch::kFloat32).contiguous();
  torch::Tensor q = query_points.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t dim = p.size(1);
  const int64_t n_index = p.size(0);
  const int64_t n_query = q.size(0);
  hnswlib::L2Space space(static_cast<size_t>(dim));
  hnswlib::HierarchicalNSW<float> index(
      &space, static_cast<size_t>(n_index), static_cast<size_t>(options.m),
      static_cast<size_t>(options.ef_construction), static_cast<size_t>(options.seed));
  const float* pp = p.data_ptr<float>();
  for (int64_t i = 0; i < n_index; ++i) {
    index.addPoint(pp + i * dim, static_cast<hnswlib::labeltype>(i));
  }
  index.setEf(static_cast<size_t>(options.ef_search));

  torch::Tensor out = torch::empty({n_query}, torch::kInt64);
  int64_t* op = out.data_ptr<int64_t>();
  const float* qp = q.data_ptr<float>();
  const int threads = std::max(1, options.threads > 0 ? options.threads : at::get_num_threads());
  const int64_t batch = std::max<int64_t>(1, options.batch);
  for (int64_t s = 0; s < n_query; s += batch) {
    const int64_t e = std::min(n_query, s + batch);
    auto work = [&](int64_t from, int64_t to) {
      for (int64_t i = from; i < to; ++i) {
        auto result = index.searchKnn(qp + i * dim, 1);
        op[i] = static_cast<int64_t>(result.top().second);
      }
    };
    const int64_t per = (e - s + threads - 1) / threads;
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) {
      const int64_t from = s + t * per;
      const int64_t to = std::min(e, from + per);
      if (from < to) pool.emplace_back(work, from, to);
    }
    work(s, std::min(e, s + per));
    for (auto& th : pool) th.join();
    reporter.progress("knn", e, n_query);
  }
  return out;
}

}  // namespace dataproxy
