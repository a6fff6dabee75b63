#include "train/augment.h"

#include "dataproxy/error.h"

namespace dataproxy::detail {

AugmentDraw draw_augmentation(int64_t batch, const Augmentation& augmentation,
                              at::Generator& generator) {
  DATAPROXY_CHECK(augmentation.random_crop_padding >= 0, InvalidInput,
                  "augmentation random_crop_padding is " << augmentation.random_crop_padding
                                                         << ": use 0 (no crop) or more");
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  AugmentDraw draw;
  int64_t span = 2 * augmentation.random_crop_padding + 1;
  draw.dy = torch::randint(0, span, {batch}, generator, i64);
  draw.dx = torch::randint(0, span, {batch}, generator, i64);
  draw.flip = augmentation.horizontal_flip
                  ? torch::randint(0, 2, {batch}, generator, i64).to(torch::kBool)
                  : torch::zeros({batch}, torch::kBool);
  return draw;
}

torch::Tensor apply_augmentation(const torch::Tensor& images, int64_t padding,
                                 const AugmentDraw& draw) {
  TORCH_CHECK(images.dim() == 4, "apply_augmentation expects [B, C, H, W], got ", images.sizes());
  const int64_t b = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  auto device = images.device();
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  torch::Tensor x = images;
  if (padding > 0) {
    x = torch::constant_pad_nd(images, {padding, padding, padding, padding}, 0);
    auto rows = draw.dy.to(device).view({b, 1}) + torch::arange(h, i64).view({1, h});
    x = x.gather(2, rows.view({b, 1, h, 1}).expand({b, c, h, w + 2 * padding}));
  }
  // Crop and flip in one gather along the width: a flipped sample reads its columns backwards.
  auto forward = torch::arange(w, i64).view({1, w});
  auto cols = torch::where(draw.flip.to(device).view({b, 1}), (w - 1) - forward, forward);
  if (padding > 0) cols = cols + draw.dx.to(device).view({b, 1});
  return x.gather(3, cols.view({b, 1, 1, w}).expand({b, c, h, w}));
}

}  // namespace dataproxy::detail
