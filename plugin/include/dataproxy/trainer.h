// Training and evaluation of one network with a search space's training settings.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dataproxy/dataset.h"
#include "dataproxy/model.h"
#include "dataproxy/progress.h"
#include "dataproxy/search_space.h"

namespace dataproxy {

/// Layout of activations and convolution weights.
enum class MemoryFormat {
  kAuto,          ///< channels_last on CUDA; on the CPU, see prefers_channels_last()
  kChannelsLast,  ///< NHWC
  kContiguous,    ///< NCHW
};
/// "auto", "channels-last" or "contiguous"; throws InvalidInput for anything else.
MemoryFormat parse_memory_format(const std::string& name);
std::string to_string(MemoryFormat format);

/// Options for one training run. Zero means "take it from the space's TrainSettings".
struct TrainOptions {
  std::string device = "auto";  ///< "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"
  int threads = 0;     ///< CPU intra-op threads (process-wide); 0 = all cores this process may use
  uint64_t seed = 0;   ///< seeds shuffling, augmentation, random layers (weights: seed_everything)
  int64_t epochs = 0;  ///< 0 = TrainSettings::epochs
  /// Stop after this many optimizer steps, the learning-rate schedule spanning them (the last
  /// epoch may be partial); `epochs` is then derived. 0 = epochs x batches per epoch.
  int64_t max_steps = 0;
  int64_t batch_size = 0;       ///< 0 = TrainSettings::batch_size
  double learning_rate = 0;     ///< 0 = TrainSettings::learning_rate
  bool mixed_precision = true;  ///< bf16 autocast on CUDA; ignored on CPU
  MemoryFormat memory_format = MemoryFormat::kAuto;
  /// Batch size of evaluation, predict() and features(); 0 = chosen for the device and the
  /// network (eval_batch_size_for).
  int64_t eval_batch_size = 0;
  bool evaluate_each_epoch = true;  ///< test accuracy after every epoch (else only at the end)
  /// Samples of the test split evaluated after each epoch but the last (for pruners and
  /// curves): a fixed subset drawn with `seed`, the same for every candidate of a seed. The
  /// last epoch, and so the final accuracy, always uses the whole split. 0 = the whole split
  /// every epoch.
  int64_t eval_subset = 1000;
};

/// The eval batch size `options` asks for on `device` for `model` on images of `image_shape`
/// (C, H, W). eval_batch_size = 0 resolves to 2000 on CUDA; on the CPU, to the batch whose
/// first full-resolution activation fits in three quarters of the threads' L2 caches (16 to
/// 1000), where a forward pass runs several times faster than with larger batches.
int64_t eval_batch_size_for(const TrainOptions& options, const torch::Device& device,
                            Network& model, at::IntArrayRef image_shape);

/// Per-channel mean and standard deviation of the pixels, on the 0..1 scale.
struct Normalization {
  std::vector<double> mean;  ///< one value per channel
  std::vector<double> std;   ///< one value per channel, > 0
};

/// Mean and standard deviation per channel of `data`'s images (uint8 [N, C, H, W]).
Normalization compute_normalization(const Dataset& data);

/// What one epoch did.
struct EpochStats {
  int64_t epoch = 0;  ///< 1-based
  double train_loss = 0;
  double train_accuracy = 0;
  double test_accuracy = -1;  ///< -1 when not evaluated this epoch
  int64_t eval_samples = 0;   ///< test samples behind test_accuracy (subset or whole split)
  double seconds = 0;         ///< training time of the epoch, evaluation excluded
  double eval_seconds = 0;    ///< evaluation time after the epoch
  double images_per_second = 0;
};

/// What a training run produced.
struct TrainResult {
  std::vector<EpochStats> epochs;
  /// Accuracy on the whole test split after the last epoch; -1 if test is empty. A run stopped
  /// early by the callback is not evaluated again: it keeps its last epoch's accuracy, which
  /// may be on the subset (final_eval_samples says).
  double final_accuracy = -1;
  int64_t final_eval_samples = 0;  ///< test samples behind final_accuracy
  double train_seconds = 0;        ///< all epochs, evaluation excluded
  double eval_seconds = 0;         ///< all evaluations (per epoch and final)
  double total_seconds = 0;        ///< wall time including evaluation and data upload
  int64_t steps = 0;               ///< optimizer steps taken
  int64_t samples_seen = 0;  ///< training images processed (steps x batch, last batch partial)
  /// Per-test-sample correctness after the last epoch, bool [T] on the CPU; undefined when
  /// the test split is empty.
  torch::Tensor final_correct;
  bool stopped_early = false;                              ///< the epoch callback asked to stop
  std::string device;                                      ///< e.g. "cpu", "cuda:0"
  MemoryFormat memory_format = MemoryFormat::kContiguous;  ///< the layout used (never kAuto)
};

/// Called after each epoch; return false to stop training (pruning, SIGINT).
using EpochCallback = std::function<bool(const EpochStats&)>;

/// Seeds the global CPU and CUDA generators: call it before building a network so that the
/// same seed gives the same initial weights.
void seed_everything(uint64_t seed);
/// Resolves "auto"/"cpu"/"cuda[:N]"; throws InvalidInput for CUDA when none is present.
torch::Device resolve_device(const std::string& name);
/// Whether kAuto trains `model` channels_last on `device`. Deterministic: it depends on the
/// network's shape only, so a seed gives the same result run after run.
bool prefers_channels_last(Network& model, const torch::Device& device);
/// Sets the CPU intra-op thread count (0 = all cores) and returns what is in force.
int configure_threads(int threads);

/// Trains and evaluates networks. Data is uploaded to the device once as uint8; augmentation
/// and normalisation run on whole batches there. Shuffling and augmentation draw from a CPU
/// generator seeded with TrainOptions::seed, so the order of samples and the crops do not
/// depend on the device. Inputs are normalised with the training split's statistics, which
/// fit() keeps for later evaluate(), predict() and features() calls.
class Trainer {
 public:
  Trainer(TrainSettings settings, TrainOptions options, Reporter& reporter = null_reporter());

  /// Trains `model` on `train` (labels must lie in [0, num_classes) of the model) and evaluates
  /// on `test` (may be empty: no evaluation then). Seeded: on the CPU, the same seed, the same
  /// thread count and the same initial weights (see seed_everything) give the same result.
  /// Emits an "epoch" event per epoch and throttled progress through the reporter. Throws
  /// InvalidInput for unusable data or settings.
  TrainResult fit(Network& model, const Dataset& train, const Dataset& test,
                  const EpochCallback& on_epoch = nullptr);
  /// The three calls below run `model` in eval mode (its mode is restored after), in batches of
  /// eval_batch_size, normalised with the last fit()'s statistics or set_normalization()'s.
  /// Accuracy of `model` on `data`.
  double evaluate(Network& model, const Dataset& data);
  /// Predicted class per sample, int64 [N] on the CPU.
  torch::Tensor predict(Network& model, const Dataset& data);
  /// Network::features per sample, float32 [N, D] on the CPU.
  torch::Tensor features(Network& model, const Dataset& data);

  /// Statistics used to normalise inputs; empty before fit() or set_normalization().
  const Normalization& normalization() const { return normalization_; }
  void set_normalization(Normalization normalization);

  const torch::Device& device() const { return device_; }
  const TrainSettings& settings() const { return settings_; }
  const TrainOptions& options() const { return options_; }

 private:
  TrainSettings settings_;
  TrainOptions options_;
  Reporter& reporter_;
  torch::Device device_;
  Normalization normalization_;
};

}  // namespace dataproxy
