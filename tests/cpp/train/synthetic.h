// Seeded synthetic data and a tiny network for the trainer's tests.
#pragma once

#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cstdint>
#include <string>

#include "dataproxy/dataset.h"
#include "dataproxy/model.h"

namespace dataproxy::testing {

/// 6 learnable classes: which channel (3) is bright in which half (top/bottom) of a noisy
/// 16x16 image. Invariant to horizontal flips and small shifts, so augmentation keeps labels.
inline Dataset synthetic_dataset(int64_t n, uint64_t seed, const std::string& name) {
  auto gen = at::detail::createCPUGenerator(seed);
  const int64_t size = 16;
  auto labels = torch::randint(0, 6, {n}, gen, torch::kInt64);
  auto images = torch::randint(0, 90, {n, 3, size, size}, gen, torch::kInt64);
  auto channel = labels % 3;
  auto half = labels >= 3;
  auto rows = torch::arange(size).view({1, 1, size, 1});
  auto in_half = (rows >= size / 2).eq(half.view({n, 1, 1, 1}));
  auto in_channel = torch::arange(3).view({1, 3, 1, 1}).eq(channel.view({n, 1, 1, 1}));
  images = images + (in_half & in_channel).to(torch::kInt64) * 50;
  Dataset d;
  d.name = name;
  d.images = images.to(torch::kUInt8).contiguous();
  d.labels = labels;
  d.num_classes = 6;
  return d;
}

/// conv-bn-relu, strided conv, 2x2 average pool, linear: features are the 64 pooled values.
class TinyNet : public Network {
 public:
  /// `width`: channels of the first convolution (the second has twice as many).
  explicit TinyNet(int64_t classes, int64_t width = 8) : width_(width) {
    conv1_ = register_module("conv1",
                             torch::nn::Conv2d(torch::nn::Conv2dOptions(3, width, 3).padding(1)));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(width));
    conv2_ = register_module(
        "conv2",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(width, 2 * width, 3).stride(2).padding(1)));
    fc_ = register_module("fc", torch::nn::Linear(feature_dim(), classes));
  }
  torch::Tensor features(torch::Tensor x) override {
    x = torch::relu(bn1_(conv1_(x)));
    x = torch::relu(conv2_(x));
    return torch::adaptive_avg_pool2d(x, {2, 2}).flatten(1);
  }
  torch::Tensor forward(torch::Tensor x) override { return fc_(features(x)); }
  int64_t feature_dim() const override { return 8 * width_; }

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  torch::nn::Linear fc_{nullptr};
  int64_t width_;
};

}  // namespace dataproxy::testing
