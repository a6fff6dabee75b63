#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "dataproxy/error.h"
#include "dataproxy/model.h"

namespace dataproxy {
namespace {

fs::path spaces_dir() { return fs::path(DATAPROXY_TEST_SOURCE_DIR) / "search_spaces"; }

class Models : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(2);
    torch::manual_seed(0);
  }
};

/// Every configuration of a paper space gives logits and features of the right shape, for
/// grayscale 28x28 and colour 32x32 inputs, with channels_last input. (Eval mode only: the
/// heaviest configurations cost ~3 GMACs per image; GradientsReachEveryParameter covers
/// training mode.)
void check_all_configs(const SearchSpace& space) {
  for (const InputShape input : {InputShape{1, 28, 28}, InputShape{3, 32, 32}}) {
    const int64_t classes = input.channels == 1 ? 10 : 100;
    for (const auto& config : space.enumerate()) {
      SCOPED_TRACE(space.config_id(config) + " on " + std::to_string(input.channels) + "x" +
                   std::to_string(input.height));
      auto net = build_model(space, config, input, classes);
      const auto x = torch::randn({2, input.channels, input.height, input.width})
                         .contiguous(torch::MemoryFormat::ChannelsLast);
      net->eval();
      torch::NoGradGuard no_grad;
      const auto logits = net->forward(x);
      const auto features = net->features(x);
      EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, classes}));
      EXPECT_EQ(features.sizes(), (std::vector<int64_t>{2, net->feature_dim()}));
      EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
    }
  }
}

TEST_F(Models, EveryResNet20ConfigBuildsAndRuns) {
  check_all_configs(SearchSpace::load(spaces_dir() / "resnet20.yaml"));
}

TEST_F(Models, EveryEfficientNetB0ConfigBuildsAndRuns) {
  check_all_configs(SearchSpace::load(spaces_dir() / "efficientnet_b0.yaml"));
}

TEST_F(Models, FeatureDimIsTheWidthOfTheChosenStage) {
  const auto sp = SearchSpace::load(spaces_dir() / "resnet20.yaml");
  const InputShape in{3, 32, 32};
  EXPECT_EQ(build_model(sp, {{"B", 16}, {"K", 3}, {"M", 2}}, in, 10)->feature_dim(), 64);
  EXPECT_EQ(build_model(sp, {{"B", 8}, {"K", 3}, {"M", 4}}, in, 10)->feature_dim(), 128);
  const auto eff = SearchSpace::load(spaces_dir() / "efficientnet_b0.yaml");
  EXPECT_EQ(build_model(eff, {{"r", "r1"}, {"k", "k1"}, {"f", "f1"}}, in, 10)->feature_dim(), 192);
  EXPECT_EQ(build_model(eff, {{"r", "r1"}, {"k", "k1"}, {"f", "f2"}}, in, 10)->feature_dim(), 256);
  EXPECT_EQ(build_model(eff, {{"r", "r1"}, {"k", "k1"}, {"f", "f3"}}, in, 10)->feature_dim(), 320);

  const auto mid = SearchSpace::parse(
      "{name: m, family: resnet, parameters: [{name: B, choices: [8]}], model: {feature_stage: 2}}",
      "m.yaml");
  auto net = build_model(mid, {{"B", 8}}, in, 10);
  EXPECT_EQ(net->feature_dim(), 16);
  net->eval();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(net->features(torch::randn({3, 3, 32, 32})).sizes(), (std::vector<int64_t>{3, 16}));
}

TEST_F(Models, ChannelsLastAndContiguousInputsGiveTheSameLogits) {
  const auto sp = SearchSpace::load(spaces_dir() / "efficientnet_b0.yaml");
  auto net = build_model(sp, {{"r", "r1"}, {"k", "k2"}, {"f", "f1"}}, {3, 32, 32}, 10);
  net->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({4, 3, 32, 32});
  const auto a = net->forward(x);
  const auto b = net->forward(x.contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::allclose(a, b, 1e-4, 1e-4));
}

TEST_F(Models, GradientsReachEveryParameter) {
  const auto sp = SearchSpace::load(spaces_dir() / "resnet_tiny.yaml");
  auto net = build_model(sp, {{"B", 4}, {"K", 3}, {"M", 2}}, {1, 28, 28}, 10);
  net->train();
  const auto loss = torch::nn::functional::cross_entropy(net->forward(torch::randn({4, 1, 28, 28})),
                                                         torch::tensor({0, 1, 2, 3}));
  loss.backward();
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
}

// Two stages of one block each, 4 and 8 wide, 3x3 kernels, on a 1x8x8 image with 10 classes:
//   stem 3x3 1->4 at 8x8:               8*8 * 4 * 1 * 9           =  2304
//   stage 1 block, 4->4 at 8x8:        2 * (8*8 * 4 * 4 * 9)     = 18432
//   stage 2 block, 4->8, stride 2 (4x4): 4*4*8*4*9 + 4*4*8*8*9 + 1x1 shortcut 4*4*8*4
//                                      = 4608 + 9216 + 512       = 14336
//   linear 8 -> 10:                                                   80
//   total                                                          35152
// Parameters: stem 36 + bn 8; block 1: 2*144 + 2 bn*8; block 2: 288 + 576 + 32 + 3 bn*16;
// linear 80 + 10: 36+8+288+16+288+576+32+48+90 = 1382.
TEST_F(Models, ResNetCostMatchesHandArithmetic) {
  const auto sp = SearchSpace::parse(
      "{name: hand, family: resnet, parameters: [{name: B, choices: [4]}],"
      " model: {K: 3, M: 2, blocks_per_stage: 1, stages: 2}}",
      "hand.yaml");
  const ModelCost cost = model_cost(sp, {{"B", 4}}, {1, 8, 8}, 10);
  EXPECT_EQ(cost.macs, 35152);
  EXPECT_EQ(cost.params, 1382);
}

// Two MBConv stages on a 3x8x8 image, 10 classes; f = [8, 16], last output 32 * 16 / 16 = 32:
//   stem 3x3 3->8 at 8x8:                       64 * 8 * 3 * 9          = 13824
//   stage 1 (expand 1, mid 8, out 16, stride 1): depthwise 64*8*9 = 4608;
//     SE 8->2->8 (2 = 0.25 * 8): 2*8*2 = 32; project 64*16*8 = 8192      = 12832
//   stage 2 (expand 2, mid 32, out 32, stride 2 -> 4x4): expand 64*32*16 = 32768;
//     depthwise 16*32*9 = 4608; SE 32->4->32: 2*32*4 = 256; project 16*32*32 = 16384
//                                                                        = 54016
//   head 1x1 32->32 at 4x4:                     16 * 32 * 32           = 16384
//   linear 32 -> 10:                                                       320
//   total                                                                97376
TEST_F(Models, EfficientNetCostMatchesHandArithmetic) {
  const auto sp = SearchSpace::parse(
      "{name: hand, family: efficientnet,"
      " parameters: [{name: f, choices: [f0], values: {f0: [8, 16]}}],"
      " model: {r: [1, 1], k: [3, 3], expand_ratios: [1, 2], strides: [1, 2], stem_stride: 1,"
      " output_width: 32, output_width_reference: 16, head_channels: 32, se_ratio: 0.25}}",
      "hand.yaml");
  EXPECT_EQ(model_cost(sp, {{"f", "f0"}}, {3, 8, 8}, 10).macs, 97376);
}

/// Config ids sorted by MACs, lightest first.
std::vector<std::string> by_macs(const SearchSpace& sp) {
  std::vector<std::pair<int64_t, std::string>> costs;
  for (const auto& c : sp.enumerate()) {
    costs.emplace_back(model_cost(sp, c, {3, 32, 32}, 10).macs, sp.config_id(c));
  }
  std::sort(costs.begin(), costs.end());
  std::vector<std::string> ids;
  for (const auto& [m, id] : costs) ids.push_back(id);
  return ids;
}

TEST_F(Models, PaperLightestAndHeaviestByMacs) {
  const auto resnet = by_macs(SearchSpace::load(spaces_dir() / "resnet20.yaml"));
  EXPECT_EQ(resnet.front(), "B8_K3_M2");
  EXPECT_EQ(resnet.back(), "B32_K5_M4");
  const auto eff = by_macs(SearchSpace::load(spaces_dir() / "efficientnet_b0.yaml"));
  EXPECT_EQ(eff.front(), "r1_k1_f1");
  EXPECT_EQ(eff.back(), "r2_k2_f3");
}

TEST_F(Models, BadConfigsAndShapesAreRejected) {
  const auto sp = SearchSpace::load(spaces_dir() / "resnet20.yaml");
  EXPECT_THROW(build_model(sp, {{"B", 12}, {"K", 3}, {"M", 2}}, {3, 32, 32}, 10), InvalidInput);
  EXPECT_THROW(build_model(sp, {{"B", 8}, {"K", 3}, {"M", 2}}, {0, 32, 32}, 10), InvalidInput);
  EXPECT_THROW(model_cost(sp, {{"B", 8}, {"K", 3}, {"M", 2}}, {3, 32, 32}, 1), InvalidInput);
}

}  // namespace
}  // namespace dataproxy
