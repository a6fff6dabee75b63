// The model families behind build_model and model_cost. Each family reads its settings from
// the search space into a plain struct, builds a torch::nn network from it, and counts its MACs
// layer by layer with the same shape arithmetic the network uses.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dataproxy/model.h"

namespace dataproxy::models {

/// Settings of one ResNet configuration (see search_spaces/README.md).
struct ResNetSpec {
  int64_t base_filters = 16;  ///< B
  int64_t kernel = 3;         ///< K
  int64_t multiplier = 2;     ///< M
  int64_t blocks_per_stage = 3;
  int64_t stages = 3;
  int64_t stem_kernel = 3;
  int64_t feature_stage = 0;  ///< 1-based; 0 = the last stage
  static ResNetSpec from(const SearchSpace& space, const Config& config);
  int64_t width(int64_t stage) const;  ///< 0-based stage
};

/// Settings of one EfficientNet configuration (see search_spaces/README.md).
struct EfficientNetSpec {
  std::vector<int64_t> repeats, kernels, filters, expand_ratios, strides;
  int64_t stem_stride = 1;
  int64_t stem_kernel = 3;
  int64_t output_width = 320;  ///< the last stage's output, already scaled
  int64_t head_channels = 1280;
  double se_ratio = 0.25;
  double dropout = 0.2;
  int64_t feature_stage = 0;  ///< 1-based; 0 = the last stage
  static EfficientNetSpec from(const SearchSpace& space, const Config& config);
  int64_t stages() const { return static_cast<int64_t>(repeats.size()); }
  int64_t stage_output(int64_t stage) const;  ///< 0-based stage
};

std::shared_ptr<Network> build_resnet(const ResNetSpec& spec, const InputShape& input,
                                      int64_t num_classes);
std::shared_ptr<Network> build_efficientnet(const EfficientNetSpec& spec, const InputShape& input,
                                            int64_t num_classes);
int64_t resnet_macs(const ResNetSpec& spec, const InputShape& input, int64_t num_classes);
int64_t efficientnet_macs(const EfficientNetSpec& spec, const InputShape& input,
                          int64_t num_classes);

/// Output size of a convolution with "same" padding (k / 2) and the given stride.
inline int64_t conv_out(int64_t size, int64_t kernel, int64_t stride) {
  return (size + 2 * (kernel / 2) - kernel) / stride + 1;
}

/// MACs of a convolution: every output element sums in_channels / groups * k * k products.
inline int64_t conv_macs(int64_t out_h, int64_t out_w, int64_t in_c, int64_t out_c, int64_t k,
                         int64_t groups = 1) {
  return out_h * out_w * out_c * (in_c / groups) * k * k;
}

}  // namespace dataproxy::models
