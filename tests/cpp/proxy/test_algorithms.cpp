// The proxy stage's algorithms on seeded synthetic tensors: importance, PCA, the kNN map,
// resampling, label reduction and the selection methods.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "dataproxy/error.h"
#include "dataproxy/proxy.h"

namespace dataproxy {
namespace {

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kInt64).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

Dataset labelled(const torch::Tensor& labels, int64_t classes);

class ProxyAlgorithms : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    torch::manual_seed(7);
  }
};

TEST_F(ProxyAlgorithms, CaseWeightsParseAndRefuseNonPositive) {
  CaseWeights w = CaseWeights::parse("2,1,6,1");
  EXPECT_EQ(w.c3, 6);
  EXPECT_THROW(CaseWeights::parse("2,0,6,1"), InvalidInput);
  EXPECT_THROW(CaseWeights::parse("2,-1,6,1"), InvalidInput);
  EXPECT_THROW(CaseWeights::parse("2,1,6"), InvalidInput);
  EXPECT_THROW(CaseWeights::parse("2,x,6,1"), InvalidInput);
  try {
    CaseWeights{2, 1, 0, 1}.validate();
    FAIL() << "a zero weight was accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("c3"), std::string::npos) << e.what();
  }
}

TEST_F(ProxyAlgorithms, ImportanceCasesFollowTheMoreAccurateProbe) {
  // Probe 0 (light) and probe 1 (heavy); samples: both right, both wrong, heavy only, light only.
  torch::Tensor correct = torch::tensor({1, 0, 0, 1, 1, 0, 1, 0}, torch::kBool).view({2, 4});
  Importance imp = compute_importance(correct, {0.5, 0.7}, CaseWeights{});
  EXPECT_TRUE(torch::equal(imp.cases, torch::tensor({0, 1, 2, 3}, torch::kInt64)));
  EXPECT_TRUE(torch::allclose(imp.values, torch::tensor({2.0, 1.0, 6.0, 1.0}, torch::kFloat64)));
  EXPECT_EQ(imp.case_counts["c3"], 1);
  // When the light probe is the more accurate one, c3 and c4 swap.
  Importance swapped = compute_importance(correct, {0.9, 0.7}, CaseWeights{});
  EXPECT_TRUE(torch::equal(swapped.cases, torch::tensor({0, 1, 3, 2}, torch::kInt64)));
}

TEST_F(ProxyAlgorithms, ImportanceAveragesOverProbePairs) {
  // Three probes, accuracies ascending; sample 0 right only for the best probe.
  torch::Tensor correct = torch::tensor({0, 1, 0, 1, 1, 1}, torch::kBool).view({3, 2});
  Importance imp = compute_importance(correct, {0.1, 0.2, 0.3}, CaseWeights{2, 1, 6, 1});
  // Sample 0: pairs (0,1) c2=1, (0,2) c3=6, (1,2) c3=6 -> 13/3. Sample 1: all c1 -> 2.
  EXPECT_NEAR(imp.values[0].item<double>(), 13.0 / 3.0, 1e-12);
  EXPECT_NEAR(imp.values[1].item<double>(), 2.0, 1e-12);
  EXPECT_EQ(imp.pair_case_counts.size(), 3u);
}

TEST_F(ProxyAlgorithms, PcaMatchesFullSvd) {
  torch::Tensor basis = torch::randn({6, 24}, torch::kFloat64);
  torch::Tensor scales = torch::tensor({10.0, 7.0, 5.0, 3.0, 2.0, 1.0}, torch::kFloat64);
  torch::Tensor x = (torch::randn({800, 6}, torch::kFloat64) * scales).mm(basis) +
                    0.01 * torch::randn({800, 24}, torch::kFloat64) + 3.0;
  Pca pca = fit_pca(x.to(torch::kFloat32), 4);
  ASSERT_EQ(pca.components.sizes(), (std::vector<int64_t>{24, 4}));
  torch::Tensor centred = x - x.mean(0);
  auto [u, s, vh] = torch::linalg::svd(centred, false, c10::nullopt);
  torch::Tensor ref = vh.slice(0, 0, 4).t();
  torch::Tensor cos = (ref * pca.components.to(torch::kFloat64)).sum(0).abs();
  EXPECT_TRUE(torch::allclose(cos, torch::ones({4}, torch::kFloat64), 0, 1e-4)) << cos;
  torch::Tensor ref_var = s.slice(0, 0, 4).pow(2) / 799.0;
  EXPECT_TRUE(torch::allclose(pca.variances, ref_var, 1e-4, 0)) << pca.variances << ref_var;
  // Projections equal the SVD scores up to each component's sign.
  torch::Tensor proj = pca.transform(x.to(torch::kFloat32)).to(torch::kFloat64);
  torch::Tensor ref_proj = centred.mm(ref);
  EXPECT_TRUE(torch::allclose(proj.abs(), ref_proj.abs(), 1e-3, 1e-2));
}

TEST_F(ProxyAlgorithms, HnswMapAgreesWithBruteForce) {
  torch::Tensor centres = torch::randn({40, 16}) * 4;
  torch::Tensor index =
      centres.index_select(0, torch::randint(40, {3000})) + torch::randn({3000, 16});
  torch::Tensor queries =
      centres.index_select(0, torch::randint(40, {2000})) + torch::randn({2000, 16});
  torch::Tensor exact = brute_force_nearest(index, queries);
  KnnOptions opt;
  opt.threads = 2;
  opt.batch = 700;
  torch::Tensor approx = nearest_neighbours(index, queries, opt);
  const double agreement = approx.eq(exact).to(torch::kFloat64).mean().item<double>();
  EXPECT_GE(agreement, 0.99);
  // The brute-force reference itself: a sample of rows checked against cdist.
  torch::Tensor d = torch::cdist(queries.slice(0, 0, 50), index);
  EXPECT_TRUE(torch::equal(d.argmin(1), exact.slice(0, 0, 50)));
  // One query thread gives the same map (the graph is built deterministically).
  opt.threads = 1;
  EXPECT_TRUE(torch::equal(nearest_neighbours(index, queries, opt), approx));
}

TEST_F(ProxyAlgorithms, ProxySizeRefusesRatiosOutsideUnitInterval) {
  EXPECT_EQ(proxy_size(0.1, 50000), 5000);
  EXPECT_EQ(proxy_size(1.0, 7), 7);
  EXPECT_EQ(proxy_size(0.25, 10), 3);  // round half away from zero
  EXPECT_THROW(proxy_size(0.0, 100), InvalidInput);
  EXPECT_THROW(proxy_size(-0.1, 100), InvalidInput);
  EXPECT_THROW(proxy_size(1.5, 100), InvalidInput);
  EXPECT_THROW(proxy_size(0.001, 100), InvalidInput);
}

TEST_F(ProxyAlgorithms, WeightedSampleIsExactDistinctAndSeeded) {
  torch::Tensor w = torch::ones({1000}, torch::kFloat64);
  w.slice(0, 0, 500).fill_(9.0);
  w.slice(0, 990, 1000).fill_(0.0);
  torch::Tensor a = weighted_sample(w, 100, 1);
  ASSERT_EQ(a.size(0), 100);
  EXPECT_EQ(std::get<0>(torch::_unique(a)).size(0), 100);
  EXPECT_TRUE(torch::equal(a, std::get<0>(a.sort())));
  EXPECT_TRUE(torch::equal(a, weighted_sample(w, 100, 1)));
  EXPECT_FALSE(torch::equal(a, weighted_sample(w, 100, 2)));
  EXPECT_EQ(a.ge(990).sum().item<int64_t>(), 0);
  // Heavy half: weight 9 of 10 per pair, so about 90% of a small draw.
  const int64_t heavy = weighted_sample(w, 100, 3).lt(500).sum().item<int64_t>();
  EXPECT_GT(heavy, 75);
  EXPECT_THROW(weighted_sample(w, 991, 1), InvalidInput);
  EXPECT_EQ(weighted_sample(w, 990, 1).size(0), 990);
}

TEST_F(ProxyAlgorithms, ClassFloorGuaranteesRareClasses) {
  torch::Tensor labels = torch::zeros({1000}, torch::kInt64);
  labels.slice(0, 0, 10).fill_(1);
  torch::Tensor w = torch::ones({1000}, torch::kFloat64);
  w.slice(0, 0, 10).fill_(1e-6);
  torch::Tensor s = weighted_sample(w, 50, 4, labels, 5);
  EXPECT_EQ(s.size(0), 50);
  EXPECT_EQ(labels.index_select(0, s).eq(1).sum().item<int64_t>(), 5);
  EXPECT_THROW(weighted_sample(w, 50, 4, labels, 45), InvalidInput);
}

TEST_F(ProxyAlgorithms, LabelReductionKeepsTheMostImportantClasses) {
  torch::Tensor labels = torch::arange(1000, torch::kInt64).remainder(10);
  torch::Tensor imp = torch::ones({1000}, torch::kFloat64);
  for (int c : {2, 5, 7}) imp.masked_fill_(labels.eq(c), 5.0);
  std::vector<int64_t> kept = reduce_labels(imp, labels, 10, 0.3, 0);
  EXPECT_EQ(kept, (std::vector<int64_t>{2, 5, 7}));
  EXPECT_EQ(reduce_labels(imp, labels, 10, 0.25, 0), (std::vector<int64_t>{2, 5, 7}));
  EXPECT_EQ(reduce_labels(imp, labels, 10, 0.35, 0).size(), 4u);
  EXPECT_EQ(label_remap({2, 5, 7}, 10),
            (std::vector<int64_t>{-1, -1, 0, -1, -1, 1, -1, 2, -1, -1}));
  EXPECT_THROW(reduce_labels(imp, labels, 10, 0.0, 0), InvalidInput);
}

TEST_F(ProxyAlgorithms, UnknownMethodAndZeroWeightAreRefused) {
  EXPECT_THROW(make_selection_method("nope", ImportanceOptions{}), InvalidInput);
  try {
    make_selection_method("ours", ImportanceOptions{});
    ADD_FAILURE() << "the old name was accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("now called 'importance'"), std::string::npos) << e.what();
  }
  ImportanceOptions bad;
  bad.weights.c2 = 0;
  EXPECT_THROW(make_selection_method("importance", bad), InvalidInput);
  ImportanceOptions floor;
  floor.class_floor = 3;  // per-class draw: a floor means nothing there
  EXPECT_THROW(make_selection_method("importance", floor), InvalidInput);
  floor.draw = SampleDraw::kGlobal;
  EXPECT_NO_THROW(make_selection_method("importance", floor));
  EXPECT_EQ(parse_sample_draw("per-class"), SampleDraw::kPerClass);
  EXPECT_THROW(parse_sample_draw("perclass"), InvalidInput);
  // One list names every method, and each name builds the method of that name.
  ASSERT_EQ(selection_methods().front().name, "importance");
  for (const auto& info : selection_methods()) {
    auto m = make_selection_method(info.name, ImportanceOptions{});
    EXPECT_EQ(m->name(), info.name);
    EXPECT_EQ(m->needs_probes(), info.needs_probes) << info.name;
  }
}

TEST_F(ProxyAlgorithms, GlobalDrawIsTheEarlierDrawBitForBit) {
  // Indices produced by the global draw before the per-class draw existed (commit b069bee).
  torch::Tensor w = torch::arange(1, 61, torch::kFloat64).remainder(7).add(0.5);
  torch::Tensor l = torch::arange(60, torch::kInt64).remainder(4);
  EXPECT_EQ(to_vector(weighted_sample(w, 12, 42, l, 0)),
            (std::vector<int64_t>{2, 4, 12, 15, 16, 30, 32, 33, 35, 40, 53, 56}));
  EXPECT_EQ(to_vector(weighted_sample(w, 12, 7, l, 2)),
            (std::vector<int64_t>{1, 3, 7, 10, 16, 17, 18, 33, 35, 39, 49, 52}));
  // The importance method's global option draws exactly that.
  Dataset train = labelled(l, 4);
  SelectionContext ctx{train, train, nullptr, null_reporter(), 42};
  ImportanceOptions global;
  global.draw = SampleDraw::kGlobal;
  EXPECT_EQ(to_vector(make_importance(global)->draw(ctx, w, torch::ones({60}, torch::kBool), 12)),
            (std::vector<int64_t>{2, 4, 12, 15, 16, 30, 32, 33, 35, 40, 53, 56}));
}

TEST_F(ProxyAlgorithms, PerClassQuotasSumExactlyAndFollowClassSizes) {
  // Unbalanced: 503, 311, 97, 89 samples; ratios that do not divide evenly.
  torch::Tensor labels =
      torch::cat({torch::zeros({503}, torch::kInt64), torch::ones({311}, torch::kInt64),
                  torch::full({97}, 2, torch::kInt64), torch::full({89}, 3, torch::kInt64)});
  const torch::Tensor w = torch::rand({1000}, torch::kFloat64).add(0.1);
  const std::vector<int64_t> sizes{503, 311, 97, 89};
  for (double ratio : {0.013, 0.05, 0.1, 0.37}) {
    const int64_t count = proxy_size(ratio, 1000);
    const std::vector<int64_t> q = per_class_quotas(w, labels, count);
    ASSERT_EQ(q.size(), 4u);
    EXPECT_EQ(std::accumulate(q.begin(), q.end(), int64_t{0}), count) << ratio;
    for (std::size_t c = 0; c < q.size(); ++c) {
      const double share = ratio * static_cast<double>(sizes[c]);
      EXPECT_LE(std::abs(static_cast<double>(q[c]) - share), 1.0) << "class " << c << " " << ratio;
    }
    const torch::Tensor picked = weighted_sample_per_class(w, labels, q, 3);
    EXPECT_EQ(picked.size(0), count);
    const torch::Tensor per = torch::bincount(labels.index_select(0, picked), {}, 4);
    EXPECT_EQ(to_vector(per), q) << ratio;
    EXPECT_EQ(std::get<0>(torch::_unique(picked)).size(0), count);
  }
  // Candidates (weight > 0) only: a dropped class gets no quota.
  torch::Tensor without2 = w.clone().masked_fill_(labels.eq(2), 0.0);
  const std::vector<int64_t> q = per_class_quotas(without2, labels, 100);
  EXPECT_EQ(q[2], 0);
  EXPECT_EQ(std::accumulate(q.begin(), q.end(), int64_t{0}), 100);
  EXPECT_THROW(per_class_quotas(w, labels, 1001), InvalidInput);
}

TEST_F(ProxyAlgorithms, PerClassDrawIsImportanceWeightedWithinAClass) {
  // Two classes of 100; in each, sample 0 of the class weighs 10, the others 1. Over many
  // seeds the heavy samples are drawn far more often than a light one, and class sizes hold.
  torch::Tensor labels = torch::arange(200, torch::kInt64).remainder(2);
  torch::Tensor w = torch::ones({200}, torch::kFloat64);
  w[0] = 10.0;
  w[1] = 10.0;
  int heavy = 0, light = 0;
  const int seeds = 400;
  for (int seed = 0; seed < seeds; ++seed) {
    const torch::Tensor s =
        weighted_sample_per_class(w, labels, per_class_quotas(w, labels, 10), seed);
    const torch::Tensor per = torch::bincount(labels.index_select(0, s), {}, 2);
    ASSERT_EQ(to_vector(per), (std::vector<int64_t>{5, 5}));
    heavy += s.eq(0).sum().item<int>() + s.eq(1).sum().item<int>();
    light += s.eq(100).sum().item<int>() + s.eq(101).sum().item<int>();
  }
  // Uniform would draw each about 5% of the time; weight 10 gives about 36%.
  EXPECT_GT(heavy, 5 * light) << "heavy " << heavy << ", light " << light;
  EXPECT_GT(heavy, seeds / 2);
}

TEST_F(ProxyAlgorithms, ImportanceDrawsPerClassByDefault) {
  torch::Tensor labels =
      torch::cat({torch::zeros({700}, torch::kInt64), torch::ones({300}, torch::kInt64)});
  Dataset train = labelled(labels, 2);
  Dataset test = labelled(labels.slice(0, 0, 10), 2);
  SelectionContext ctx{train, test, nullptr, null_reporter(), 1};
  // Class 1 is ten times as important: a global draw over-fills it, a per-class one does not.
  torch::Tensor imp = torch::ones({1000}, torch::kFloat64).masked_fill_(labels.eq(1), 10.0);
  const torch::Tensor all = torch::ones({1000}, torch::kBool);
  auto per_class = make_importance(ImportanceOptions{});
  const torch::Tensor a = per_class->draw(ctx, imp, all, 100);
  EXPECT_EQ(to_vector(torch::bincount(labels.index_select(0, a), {}, 2)),
            (std::vector<int64_t>{70, 30}));
  ImportanceOptions global;
  global.draw = SampleDraw::kGlobal;
  const torch::Tensor b = make_importance(global)->draw(ctx, imp, all, 100);
  EXPECT_GT(torch::bincount(labels.index_select(0, b), {}, 2)[1].item<int64_t>(), 60);
  EXPECT_EQ(per_class->settings().at("draw"), "per-class");
}

TEST_F(ProxyAlgorithms, SelectionSplitIsDisjointStratifiedAndSeeded) {
  torch::Tensor labels =
      torch::cat({torch::zeros({61}, torch::kInt64), torch::ones({30}, torch::kInt64),
                  torch::full({9}, 2, torch::kInt64)});
  const TestSplit a = split_test_samples(labels, SelectionSplitOptions{}, 4);
  EXPECT_EQ(a.selection.size() + a.evaluation.size(), 100u);
  std::vector<int64_t> both;
  std::set_intersection(a.selection.begin(), a.selection.end(), a.evaluation.begin(),
                        a.evaluation.end(), std::back_inserter(both));
  EXPECT_TRUE(both.empty());
  EXPECT_TRUE(std::is_sorted(a.selection.begin(), a.selection.end()));
  const torch::Tensor sel = labels.index_select(0, torch::tensor(a.selection, torch::kInt64));
  EXPECT_EQ(to_vector(torch::bincount(sel, {}, 3)), (std::vector<int64_t>{31, 15, 5}));
  EXPECT_EQ(split_test_samples(labels, SelectionSplitOptions{}, 4).selection, a.selection);
  EXPECT_NE(split_test_samples(labels, SelectionSplitOptions{}, 5).selection, a.selection);
  SelectionSplitOptions fixed;
  fixed.seed = 4;
  EXPECT_EQ(split_test_samples(labels, fixed, 99).selection, a.selection);
  SelectionSplitOptions paper;
  paper.split = "paper-test";
  const TestSplit p = split_test_samples(labels, paper, 4);
  EXPECT_EQ(p.selection.size(), 100u);
  EXPECT_EQ(p.selection, p.evaluation);
  SelectionSplitOptions bad;
  bad.fraction = 0;
  EXPECT_THROW(split_test_samples(labels, bad, 0), InvalidInput);
  bad.split = "test";
  EXPECT_THROW(split_test_samples(labels, bad, 0), InvalidInput);
}

Dataset labelled(const torch::Tensor& labels, int64_t classes) {
  Dataset d;
  d.name = "synthetic/train";
  d.labels = labels;
  d.num_classes = classes;
  d.images = torch::zeros({labels.size(0), 1, 1, 1}, torch::kUInt8);
  return d;
}

TEST_F(ProxyAlgorithms, StratifiedIsBalancedAndRandomIsExact) {
  torch::Tensor labels =
      torch::cat({torch::zeros({600}, torch::kInt64), torch::ones({300}, torch::kInt64),
                  torch::full({100}, 2, torch::kInt64)});
  Dataset train = labelled(labels, 3);
  Dataset test = labelled(labels.slice(0, 0, 10), 3);
  SelectionContext ctx{train, test, nullptr, null_reporter(), 11};
  torch::Tensor all = torch::ones({1000}, torch::kBool);
  auto strat = make_stratified();
  torch::Tensor s = strat->draw(ctx, torch::ones({1000}, torch::kFloat64), all, 301);
  torch::Tensor per = torch::bincount(labels.index_select(0, s), {}, 3);
  EXPECT_EQ(s.size(0), 301);
  EXPECT_LE((per.max() - per.min()).item<int64_t>(), 1) << per;
  // A small class caps its quota; the rest is spread over the others.
  torch::Tensor big = strat->draw(ctx, torch::ones({1000}, torch::kFloat64), all, 500);
  torch::Tensor per_big = torch::bincount(labels.index_select(0, big), {}, 3);
  EXPECT_EQ(per_big[2].item<int64_t>(), 100);
  EXPECT_EQ(per_big[0].item<int64_t>(), 200);
  auto random = make_random();
  torch::Tensor r = random->draw(ctx, torch::ones({1000}, torch::kFloat64), all, 123);
  EXPECT_EQ(r.size(0), 123);
  // Candidates restrict both methods.
  torch::Tensor only01 = labels.lt(2);
  EXPECT_EQ(
      labels.index_select(0, random->draw(ctx, torch::ones({1000}, torch::kFloat64), only01, 200))
          .eq(2)
          .sum()
          .item<int64_t>(),
      0);
}

// Test samples lie in clusters; cluster 0 is solved only by the heavy probe (c3). Train samples
// come from the same clusters. The proxy should over-represent cluster 0's train samples.
TEST_F(ProxyAlgorithms, HardForLightProbeSamplesAreOverRepresented) {
  const int64_t clusters = 10, per_test = 50, per_train = 200, dim = 48;
  torch::Tensor centres = torch::randn({clusters, dim}) * 6;
  torch::Tensor test_cluster = torch::arange(clusters).repeat_interleave(per_test);
  torch::Tensor train_cluster = torch::arange(clusters).repeat_interleave(per_train);
  ProbeEvidence ev;
  ev.test_features =
      centres.index_select(0, test_cluster) + torch::randn({clusters * per_test, dim});
  ev.train_features =
      centres.index_select(0, train_cluster) + torch::randn({clusters * per_train, dim});
  torch::Tensor light = test_cluster.ne(0);  // the light probe fails on cluster 0
  torch::Tensor heavy = torch::ones({clusters * per_test}, torch::kBool);
  ev.correct = torch::stack({light, heavy});
  ev.probes.resize(2);
  ev.probes[0].test_accuracy = 0.9;
  ev.probes[1].test_accuracy = 1.0;

  Dataset train = labelled(train_cluster, clusters);
  Dataset test = labelled(test_cluster, clusters);
  SelectionContext ctx{train, test, &ev, null_reporter(), 5};
  ImportanceOptions opt;
  opt.pca_dim = 8;
  opt.draw = SampleDraw::kGlobal;  // classes are the clusters here: a per-class draw keeps 20 each
  auto ours = make_importance(opt);
  json summary, seconds;
  torch::Tensor imp = ours->score(ctx, summary, seconds);
  EXPECT_EQ(summary["case_counts"]["c3"], per_test);
  EXPECT_TRUE(seconds.contains("pca") && seconds.contains("knn"));
  // Every cluster-0 train sample maps to a cluster-0 test sample (weight 6), the rest weigh 2.
  EXPECT_TRUE(
      torch::allclose(imp.slice(0, 0, per_train), torch::full({per_train}, 6.0, torch::kFloat64)));
  torch::Tensor s = ours->draw(ctx, imp, torch::ones({clusters * per_train}, torch::kBool), 200);
  ASSERT_EQ(s.size(0), 200);
  const int64_t hard = s.lt(per_train).sum().item<int64_t>();
  // Expected share 6/(6+9*2) = 25% against 10% for uniform sampling.
  EXPECT_GT(hard, 35) << "cluster-0 samples in the proxy: " << hard;
  EXPECT_TRUE(torch::equal(
      s, ours->draw(ctx, imp, torch::ones({clusters * per_train}, torch::kBool), 200)));
}

}  // namespace
}  // namespace dataproxy
