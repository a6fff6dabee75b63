// Models: the networks of a search space, built from a configuration. Families (resnet,
// efficientnet) and their settings are described in search_spaces/README.md. Networks accept
// any input size and channel count, contiguous or channels_last, and batch-wise only.
// Family torchscript loads the user's own networks, exported once per configuration by
// `python3 -m dataproxy.export`, for the input shape and class count they were exported for.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "dataproxy/search_space.h"

namespace dataproxy {

/// Shape of one input image.
struct InputShape {
  int64_t channels = 3;
  int64_t height = 32;
  int64_t width = 32;
};

/// A classification network that also exposes an intermediate-layer feature vector.
class Network : public torch::nn::Module {
 public:
  /// Logits [N, num_classes] for float images [N, C, H, W] (already normalised).
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  /// Features [N, D] from an intermediate layer (globally pooled): the proxy stage's space.
  /// The layer is the output of the space's `feature_stage` (default: the last stage, the
  /// representation the classifier reads). Call in eval mode for deterministic features.
  virtual torch::Tensor features(torch::Tensor x) = 0;
  /// Width D of features().
  virtual int64_t feature_dim() const = 0;
};

/// Compute cost of one configuration for one image.
struct ModelCost {
  /// Multiply-accumulates of one forward pass of one image: convolutions, linear layers and
  /// squeeze-excitation, counted analytically; batch norm, activations, pooling and residual
  /// additions are not counted. Family torchscript: read from the export index, where the
  /// export helper recorded PyTorch's profiler count (FLOPs of conv2d and matrix products / 2).
  int64_t macs = 0;
  int64_t params = 0;  ///< trainable parameters
};

/// Builds the network of `config` (validated against `space`) for the given input and classes.
/// Family torchscript: loads the exported file after checking it against the export index and
/// with a dry forward of one zero image; throws InvalidInput (DataError for a damaged file)
/// saying how to export again.
std::shared_ptr<Network> build_model(const SearchSpace& space, const Config& config,
                                     const InputShape& input, int64_t num_classes);

/// MACs and parameter count of `config`, without training anything.
ModelCost model_cost(const SearchSpace& space, const Config& config, const InputShape& input,
                     int64_t num_classes);

}  // namespace dataproxy
