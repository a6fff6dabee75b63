// Batch augmentation on the training device: random crop of the zero-padded image and
// horizontal flip, for a whole batch at once (one gather, no per-sample loop).
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "dataproxy/search_space.h"

namespace dataproxy::detail {

/// The random choices for one batch, on the CPU.
struct AugmentDraw {
  torch::Tensor dy;    ///< int64 [B], crop row offset into the padded image, in [0, 2*padding]
  torch::Tensor dx;    ///< int64 [B], crop column offset, in [0, 2*padding]
  torch::Tensor flip;  ///< bool [B], true = mirror left-right
};

/// Draws the crop offsets and flips for `batch` samples from `generator` (a CPU generator).
AugmentDraw draw_augmentation(int64_t batch, const Augmentation& augmentation,
                              at::Generator& generator);

/// Applies `draw` to `images` [B, C, H, W] (any dtype, any device): output pixel (y, x) of
/// sample b is pixel (dy + y, dx + x) of the image zero-padded by `padding` on each side, or
/// (dy + y, dx + W - 1 - x) when flip[b]. Returns the same shape and dtype, on the same device.
torch::Tensor apply_augmentation(const torch::Tensor& images, int64_t padding,
                                 const AugmentDraw& draw);

}  // namespace dataproxy::detail
