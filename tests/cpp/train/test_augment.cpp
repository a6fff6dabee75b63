#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include "train/augment.h"

namespace dataproxy::detail {
namespace {

torch::Tensor sample_batch(int64_t b, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randint(0, 256, {b, 3, 8, 10}, gen, torch::kInt64).to(torch::kUInt8);
}

TEST(Augment, DrawsOffsetsInRangeAndIsSeeded) {
  Augmentation aug;
  aug.random_crop_padding = 3;
  auto g1 = at::detail::createCPUGenerator(5), g2 = at::detail::createCPUGenerator(5);
  auto a = draw_augmentation(500, aug, g1), b = draw_augmentation(500, aug, g2);
  EXPECT_TRUE(torch::equal(a.dy, b.dy));
  EXPECT_TRUE(torch::equal(a.dx, b.dx));
  EXPECT_TRUE(torch::equal(a.flip, b.flip));
  EXPECT_EQ(a.dy.min().item<int64_t>(), 0);
  EXPECT_EQ(a.dy.max().item<int64_t>(), 6);
  EXPECT_EQ(a.dx.min().item<int64_t>(), 0);
  EXPECT_EQ(a.dx.max().item<int64_t>(), 6);
  auto flipped = a.flip.sum().item<int64_t>();
  EXPECT_GT(flipped, 150);
  EXPECT_LT(flipped, 350);

  aug.horizontal_flip = false;
  aug.random_crop_padding = 0;
  auto none = draw_augmentation(100, aug, g1);
  EXPECT_EQ(none.flip.sum().item<int64_t>(), 0);
  EXPECT_EQ(none.dy.max().item<int64_t>(), 0);
  EXPECT_EQ(none.dx.max().item<int64_t>(), 0);
}

TEST(Augment, KeepsShapeAndDtype) {
  Augmentation aug;
  aug.random_crop_padding = 4;
  auto gen = at::detail::createCPUGenerator(1);
  auto x = sample_batch(16, 1);
  auto draw = draw_augmentation(16, aug, gen);
  auto y = apply_augmentation(x, 4, draw);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_EQ(y.scalar_type(), torch::kUInt8);
  auto yf = apply_augmentation(x.to(torch::kFloat), 4, draw);
  EXPECT_EQ(yf.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(yf, y.to(torch::kFloat)));
}

TEST(Augment, FlipsExactlyTheMaskedSamples) {
  auto x = sample_batch(6, 2);
  AugmentDraw draw{torch::zeros({6}, torch::kInt64), torch::zeros({6}, torch::kInt64),
                   torch::tensor({true, false, false, true, true, false})};
  auto y = apply_augmentation(x, 0, draw);
  for (int64_t b = 0; b < 6; ++b) {
    bool flip = draw.flip[b].item<bool>();
    EXPECT_TRUE(torch::equal(y[b], flip ? x[b].flip({2}) : x[b])) << "sample " << b;
    EXPECT_EQ(torch::equal(y[b], x[b]), !flip) << "sample " << b;
  }
}

TEST(Augment, CropsAreShiftsOfThePaddedImage) {
  const int64_t p = 2, b = 12;
  auto x = sample_batch(b, 3);
  Augmentation aug;
  aug.random_crop_padding = p;
  auto gen = at::detail::createCPUGenerator(9);
  auto draw = draw_augmentation(b, aug, gen);
  auto y = apply_augmentation(x, p, draw);
  auto padded = torch::constant_pad_nd(x, {p, p, p, p}, 0);
  for (int64_t i = 0; i < b; ++i) {
    int64_t dy = draw.dy[i].item<int64_t>(), dx = draw.dx[i].item<int64_t>();
    auto crop = padded[i].slice(1, dy, dy + 8).slice(2, dx, dx + 10);
    if (draw.flip[i].item<bool>()) crop = crop.flip({2});
    EXPECT_TRUE(torch::equal(y[i], crop)) << "sample " << i << " dy " << dy << " dx " << dx;
  }
  // A shift by the full padding brings zeros in from the border.
  AugmentDraw corner{torch::zeros({1}, torch::kInt64), torch::zeros({1}, torch::kInt64),
                     torch::zeros({1}, torch::kBool)};
  auto c = apply_augmentation(x.slice(0, 0, 1), p, corner);
  EXPECT_EQ(c[0].slice(1, 0, p).sum().item<int64_t>(), 0);
  EXPECT_TRUE(torch::equal(c[0].slice(1, p, 8).slice(2, p, 10),
                           x[0].slice(1, 0, 8 - p).slice(2, 0, 10 - p)));
}

}  // namespace
}  // namespace dataproxy::detail
