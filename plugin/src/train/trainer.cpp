#include "dataproxy/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include "dataproxy/clock.h"
#include "dataproxy/error.h"
#include "train/augment.h"
#include "train/autocast.h"

namespace dataproxy {
namespace {

using Clock = std::chrono::steady_clock;

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// Restores a module's train/eval mode when it goes out of scope.
class ModeGuard {
 public:
  ModeGuard(torch::nn::Module& module, bool training)
      : module_(module), was_training_(module.is_training()) {
    module_.train(training);
  }
  ~ModeGuard() { module_.train(was_training_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

void check_dataset(const Dataset& data, const std::string& role) {
  const std::string where = role + " split '" + data.name + "'";
  DATAPROXY_CHECK(data.images.defined() && data.labels.defined(), InvalidInput,
                  where << " has no images or labels: load it with load_dataset() first");
  DATAPROXY_CHECK(data.images.dim() == 4 && data.images.scalar_type() == torch::kUInt8,
                  InvalidInput,
                  where << " images must be uint8 [N, C, H, W], got " << data.images.scalar_type()
                        << ' ' << data.images.sizes());
  DATAPROXY_CHECK(data.labels.dim() == 1 && data.labels.scalar_type() == torch::kInt64,
                  InvalidInput,
                  where << " labels must be int64 [N], got " << data.labels.scalar_type() << ' '
                        << data.labels.sizes());
  DATAPROXY_CHECK(data.images.size(0) == data.labels.size(0), InvalidInput,
                  where << " has " << data.images.size(0) << " images but " << data.labels.size(0)
                        << " labels");
}

void check_labels(const Dataset& data, const std::string& role, int64_t classes) {
  if (data.size() == 0) return;
  auto range = torch::aminmax(data.labels);
  int64_t lo = std::get<0>(range).item<int64_t>(), hi = std::get<1>(range).item<int64_t>();
  DATAPROXY_CHECK(lo >= 0 && hi < classes, InvalidInput,
                  role << " split '" << data.name << "' has labels in [" << lo << ", " << hi
                       << "] but the model has " << classes
                       << " outputs: build the model for the dataset's classes, or remap the "
                          "labels to [0, "
                       << classes << ")");
}

// Normalisation folded into one multiply-add per pixel: x * scale + shift on the 0..255 scale.
struct DeviceNormalization {
  torch::Tensor scale, shift;  // float [1, C, 1, 1] on the device
};

DeviceNormalization to_device(const Normalization& n, const torch::Device& device) {
  auto c = static_cast<int64_t>(n.mean.size());
  auto mean = torch::tensor(n.mean, torch::kDouble).view({1, c, 1, 1});
  auto std = torch::tensor(n.std, torch::kDouble).view({1, c, 1, 1});
  return {(1.0 / (255.0 * std)).to(torch::kFloat).to(device),
          (-mean / std).to(torch::kFloat).to(device)};
}

torch::Tensor normalize(const torch::Tensor& images, const DeviceNormalization& n,
                        bool channels_last) {
  auto x = images.to(torch::kFloat).mul_(n.scale).add_(n.shift);
  return channels_last ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
}

double learning_rate_at(const TrainSettings& s, double base, int64_t epoch, int64_t step,
                        int64_t total_steps) {
  if (s.schedule == "cosine") {
    return base * 0.5 *
           (1.0 + std::cos(M_PI * double(step) / double(std::max<int64_t>(1, total_steps))));
  }
  if (s.schedule == "step") {
    double lr = base;
    for (int64_t milestone : s.step_milestones) {
      if (epoch >= milestone) lr *= s.step_gamma;
    }
    return lr;
  }
  return base;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainSettings& s,
                                                        std::vector<torch::Tensor> params,
                                                        double lr) {
  if (s.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(
        std::move(params),
        torch::optim::SGDOptions(lr).momentum(s.momentum).weight_decay(s.weight_decay));
  }
  return std::make_unique<torch::optim::Adam>(
      std::move(params), torch::optim::AdamOptions(lr).weight_decay(s.weight_decay));
}

}  // namespace

MemoryFormat parse_memory_format(const std::string& name) {
  if (name == "auto") return MemoryFormat::kAuto;
  if (name == "channels-last" || name == "channels_last") return MemoryFormat::kChannelsLast;
  if (name == "contiguous" || name == "nchw") return MemoryFormat::kContiguous;
  throw InvalidInput("unknown memory format '" + name +
                     "': use auto, channels-last (NHWC) or contiguous (NCHW)");
}

std::string to_string(MemoryFormat format) {
  switch (format) {
    case MemoryFormat::kAuto:
      return "auto";
    case MemoryFormat::kChannelsLast:
      return "channels-last";
    case MemoryFormat::kContiguous:
      break;
  }
  return "contiguous";
}

bool prefers_channels_last(Network& model, const torch::Device& device) {
  if (device.is_cuda()) return true;
  // On the CPU (LibTorch 1.13, oneDNN), NHWC batch norm is slow for a handful of channels and
  // NCHW convolution backward is slow for wide layers: a network whose narrowest convolution
  // has fewer than 8 output channels trains up to 1.7x faster in NCHW, one with 8 or more up
  // to 1.4x faster in NHWC (benchmarks/run_memory_format.sh). Timing it per run
  // instead would make a seeded result depend on the machine's load.
  // 1x1 convolutions (squeeze-excitation, projections) are left out: their width says little
  // about the spatial layers.
  int64_t narrowest = 0;
  for (const auto& p : model.parameters()) {
    const bool spatial_conv = p.dim() == 4 && p.size(2) * p.size(3) > 1;
    if (spatial_conv && (narrowest == 0 || p.size(0) < narrowest)) narrowest = p.size(0);
  }
  return narrowest >= 8;
}

namespace {

bool resolve_channels_last(MemoryFormat format, Network& model, const torch::Device& device) {
  if (format == MemoryFormat::kAuto) return prefers_channels_last(model, device);
  return format == MemoryFormat::kChannelsLast;
}

}  // namespace

void seed_everything(uint64_t seed) { torch::manual_seed(seed); }

int64_t eval_batch_size_for(const TrainOptions& options, const torch::Device& device,
                            Network& model, at::IntArrayRef image_shape) {
  if (options.eval_batch_size > 0) return options.eval_batch_size;
  if (device.is_cuda()) return 2000;
  // On the CPU a forward pass slows 3-5x once one batch's first full-resolution activation
  // outgrows the L2 caches of the threads that compute it (bench_train_speed --eval-batches:
  // resnet_tiny B4 at 28x28 runs 69k images/s at batch 128, 10k at 1000). The stem's output
  // channels times the image's pixels stand for that activation.
  int64_t channels = image_shape.size() >= 1 ? image_shape[0] : 1;
  for (const auto& p : model.parameters()) {
    if (p.dim() == 4) {
      channels = std::max<int64_t>(channels, p.size(0));
      break;
    }
  }
  int64_t pixels = 1;
  for (size_t i = 1; i < image_shape.size(); ++i) pixels *= image_shape[i];
  long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (l2 <= 0) l2 = 1L << 20;
  const double budget = 0.75 * double(l2) * double(std::max(1, torch::get_num_threads()));
  const double per_image = double(channels) * double(pixels) * sizeof(float);
  const auto fit = static_cast<int64_t>(budget / per_image);
  return std::clamp<int64_t>(fit / 8 * 8, 16, 1000);
}

torch::Device resolve_device(const std::string& name) {
  if (name == "auto" || name.empty()) {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0)
                                       : torch::Device(torch::kCPU);
  }
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    DATAPROXY_CHECK(torch::cuda::is_available(), InvalidInput,
                    "device '" << name
                               << "' asked for, but this LibTorch sees no CUDA device: use "
                                  "--device cpu or auto, or a CUDA build of LibTorch");
    int64_t index = 0;
    if (name.size() > 5) {
      const std::string digits = name.substr(5);
      DATAPROXY_CHECK(
          !digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos,
          InvalidInput, "device '" << name << "': use cuda or cuda:N");
      index = std::stoll(digits);
    }
    auto count = static_cast<int64_t>(torch::cuda::device_count());
    DATAPROXY_CHECK(index < count, InvalidInput,
                    "device '" << name << "' asked for, but only " << count
                               << " CUDA device(s) exist: use cuda:0.." << count - 1);
    return torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(index));
  }
  throw InvalidInput("unknown device '" + name + "': use auto, cpu, cuda or cuda:N");
}

int configure_threads(int threads) {
  DATAPROXY_CHECK(threads >= 0, InvalidInput,
                  "thread count " << threads << " is negative: use 0 (all cores) or more");
  torch::set_num_threads(threads == 0 ? available_cores() : threads);
  return torch::get_num_threads();
}

Normalization compute_normalization(const Dataset& data) {
  check_dataset(data, "normalisation");
  DATAPROXY_CHECK(data.size() > 0, InvalidInput,
                  "cannot compute normalisation of the empty split '" << data.name << "'");
  const int64_t c = data.channels();
  auto sum = torch::zeros({c}, torch::kDouble), sum_sq = torch::zeros({c}, torch::kDouble);
  // Chunks keep the float64 copy small for large datasets.
  const int64_t chunk = 2048;
  for (int64_t i = 0; i < data.size(); i += chunk) {
    auto x = data.images.slice(0, i, std::min(data.size(), i + chunk)).to(torch::kDouble);
    sum += x.sum({0, 2, 3});
    sum_sq += x.square().sum({0, 2, 3});
  }
  const double count = double(data.size()) * data.height() * data.width();
  auto mean = sum / count;
  auto var = (sum_sq / count - mean.square()).clamp_min(0);
  auto std = var.sqrt() / 255.0;
  mean = mean / 255.0;
  Normalization n;
  for (int64_t i = 0; i < c; ++i) {
    n.mean.push_back(mean[i].item<double>());
    // A constant channel would divide by zero; 1 leaves it centred and unscaled.
    double s = std[i].item<double>();
    n.std.push_back(s > 1e-8 ? s : 1.0);
  }
  return n;
}

Trainer::Trainer(TrainSettings settings, TrainOptions options, Reporter& reporter)
    : settings_(std::move(settings)),
      options_(std::move(options)),
      reporter_(reporter),
      device_(resolve_device(options_.device)) {
  const auto& s = settings_;
  DATAPROXY_CHECK(s.optimizer == "adam" || s.optimizer == "sgd", InvalidInput,
                  "training.optimizer is '" << s.optimizer << "': use adam or sgd");
  DATAPROXY_CHECK(s.schedule == "constant" || s.schedule == "cosine" || s.schedule == "step",
                  InvalidInput,
                  "training.schedule is '" << s.schedule << "': use constant, cosine or step");
  if (options_.epochs == 0) options_.epochs = s.epochs;
  if (options_.batch_size == 0) options_.batch_size = s.batch_size;
  if (options_.learning_rate == 0) options_.learning_rate = s.learning_rate;
  DATAPROXY_CHECK(options_.epochs > 0, InvalidInput,
                  "epochs is " << options_.epochs << ": use 1 or more");
  DATAPROXY_CHECK(options_.max_steps >= 0, InvalidInput,
                  "max_steps is " << options_.max_steps << ": use 0 (whole epochs) or more");
  DATAPROXY_CHECK(options_.batch_size > 0, InvalidInput,
                  "batch_size is " << options_.batch_size << ": use 1 or more");
  DATAPROXY_CHECK(options_.learning_rate > 0 && std::isfinite(options_.learning_rate), InvalidInput,
                  "learning_rate is " << options_.learning_rate << ": use a positive number");
  DATAPROXY_CHECK(options_.eval_batch_size >= 0, InvalidInput,
                  "eval_batch_size is " << options_.eval_batch_size
                                        << ": use 0 (chosen for the device) or more");
  DATAPROXY_CHECK(options_.eval_subset >= 0, InvalidInput,
                  "eval_subset is " << options_.eval_subset
                                    << ": use 0 (the whole test split every epoch) or more");
  DATAPROXY_CHECK(s.augmentation.random_crop_padding >= 0, InvalidInput,
                  "training.augmentation.random_crop_padding is "
                      << s.augmentation.random_crop_padding << ": use 0 (no crop) or more");
  configure_threads(options_.threads);
}

void Trainer::set_normalization(Normalization normalization) {
  DATAPROXY_CHECK(
      !normalization.mean.empty() && normalization.mean.size() == normalization.std.size(),
      InvalidInput,
      "normalisation needs one mean and one std per channel, got "
          << normalization.mean.size() << " and " << normalization.std.size());
  for (double s : normalization.std) {
    DATAPROXY_CHECK(s > 0 && std::isfinite(s), InvalidInput,
                    "normalisation std " << s << " must be positive");
  }
  normalization_ = std::move(normalization);
}

namespace {

// Runs `fn` on normalised batches of `images` (uint8, on the device) in eval mode, forward
// only, and concatenates the results on the CPU.
torch::Tensor map_batches(Network& model, const torch::Tensor& images,
                          const DeviceNormalization& norm, const TrainOptions& options, bool amp,
                          bool channels_last, const torch::Device& device,
                          const std::function<torch::Tensor(const torch::Tensor&)>& fn) {
  ModeGuard mode(model, false);
  std::vector<torch::Tensor> parts;
  {
    // InferenceMode skips autograd's bookkeeping (version counters, views) that NoGradGuard
    // still pays. Its tensors refuse in-place updates outside it, so the results are
    // concatenated below, outside, into an ordinary tensor the caller may modify.
    c10::InferenceMode inference;
    const int64_t size = eval_batch_size_for(options, device, model, images.sizes().slice(1));
    for (int64_t i = 0; i < images.size(0); i += size) {
      auto batch =
          images.slice(0, i, std::min(images.size(0), i + size)).to(device, /*non_blocking=*/true);
      auto x = normalize(batch, norm, channels_last);
      detail::AutocastGuard autocast(amp);
      parts.push_back(fn(x));
    }
  }
  if (parts.empty()) return torch::Tensor();
  return torch::cat(parts).cpu();
}

// The fixed evaluation subset of a test split of `size` samples: `count` indices drawn with
// `seed`, sorted. Its own generator, so that the draw does not shift training's.
torch::Tensor eval_subset_indices(int64_t size, int64_t count, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed ^ 0x65'76'61'6c'5f'73'75'62ULL);
  auto perm = torch::randperm(size, generator, torch::kInt64);
  return std::get<0>(perm.slice(0, 0, count).sort());
}

}  // namespace

TrainResult Trainer::fit(Network& model, const Dataset& train, const Dataset& test,
                         const EpochCallback& on_epoch) {
  const auto start = Clock::now();
  check_dataset(train, "train");
  DATAPROXY_CHECK(train.size() > 0, InvalidInput,
                  "train split '" << train.name << "' is empty: nothing to train on");
  if (test.size() > 0) {
    check_dataset(test, "test");
    DATAPROXY_CHECK(test.images.sizes().slice(1) == train.images.sizes().slice(1), InvalidInput,
                    "test split '" << test.name << "' images are " << test.images.sizes()
                                   << " but train images are " << train.images.sizes()
                                   << ": both splits must have the same C, H, W");
  }
  normalization_ = compute_normalization(train);
  const auto norm = to_device(normalization_, device_);
  const bool amp = options_.mixed_precision && device_.is_cuda();
  const bool cl = resolve_channels_last(options_.memory_format, model, device_);

  model.to(device_);
  {
    torch::NoGradGuard no_grad;
    const auto layout = cl ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
    for (auto& p : model.parameters()) {
      if (p.dim() == 4) p.set_data(p.data().contiguous(layout));
    }
  }

  // The whole split goes to the device once; batches are gathered there by index.
  const auto train_images = train.images.contiguous().to(device_);
  const auto train_labels = train.labels.to(device_);
  const auto test_images = test.size() > 0 ? test.images.contiguous().to(device_) : torch::Tensor();
  // Epochs before the last are evaluated on a fixed subset when one is asked for and smaller
  // than the split: pruners and curves need a value per epoch, not the whole split's.
  const bool use_subset = options_.eval_subset > 0 && options_.eval_subset < test.size();
  torch::Tensor subset_images, subset_labels;
  if (use_subset) {
    auto index = eval_subset_indices(test.size(), options_.eval_subset, options_.seed);
    subset_images = test_images.index_select(0, index.to(device_));
    subset_labels = test.labels.index_select(0, index);
  }
  auto evaluate_on = [&](const torch::Tensor& images, const torch::Tensor& labels) {
    auto predicted =
        map_batches(model, images, norm, options_, amp, cl, device_,
                    [&](const torch::Tensor& x) { return model.forward(x).argmax(1); });
    return predicted.eq(labels).to(torch::kCPU);
  };

  int64_t classes = 0;
  try {
    auto probe = map_batches(model, train_images.slice(0, 0, 1), norm, options_, amp, cl, device_,
                             [&](const torch::Tensor& x) { return model.forward(x); });
    DATAPROXY_CHECK(
        probe.dim() == 2, InvalidInput,
        "the model returned logits of shape " << probe.sizes() << "; expected [N, classes]");
    classes = probe.size(1);
  } catch (const c10::Error& e) {
    throw InvalidInput("the model does not accept images of shape " +
                       c10::str(train.images.sizes().slice(1)) + " from '" + train.name +
                       "': build it for this dataset's input shape (" + e.what_without_backtrace() +
                       ")");
  }
  check_labels(train, "train", classes);
  check_labels(test, "test", classes);

  seed_everything(options_.seed);
  auto generator = at::detail::createCPUGenerator(options_.seed);
  const double base_lr = options_.learning_rate;
  auto params = model.parameters();
  auto optimizer = make_optimizer(settings_, params, base_lr);

  const int64_t n = train.size(), bs = options_.batch_size;
  const int64_t batches = (n + bs - 1) / bs;
  const int64_t total_steps =
      options_.max_steps > 0 ? options_.max_steps : options_.epochs * batches;
  const int64_t epochs = (total_steps + batches - 1) / batches;
  const auto& aug = settings_.augmentation;
  const bool augment = aug.random_crop_padding > 0 || aug.horizontal_flip;
  auto on_device = torch::TensorOptions().device(device_);

  TrainResult result;
  result.device = device_.str();
  result.memory_format = cl ? MemoryFormat::kChannelsLast : MemoryFormat::kContiguous;
  model.train();
  for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    auto last_report = epoch_start;
    auto perm = torch::randperm(n, generator, torch::kInt64).to(device_);
    auto loss_sum = torch::zeros({}, on_device.dtype(torch::kDouble));
    auto correct = torch::zeros({}, on_device.dtype(torch::kInt64));
    const int64_t epoch_batches = std::min(batches, total_steps - (epoch - 1) * batches);
    int64_t epoch_seen = 0;
    for (int64_t b = 0; b < epoch_batches; ++b) {
      const int64_t step = (epoch - 1) * batches + b;
      const double lr = learning_rate_at(settings_, base_lr, epoch - 1, step, total_steps);
      for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);

      auto index = perm.slice(0, b * bs, std::min(n, (b + 1) * bs));
      auto images = train_images.index_select(0, index);
      auto labels = train_labels.index_select(0, index);
      if (augment) {
        auto draw = detail::draw_augmentation(index.size(0), aug, generator);
        images = detail::apply_augmentation(images, aug.random_crop_padding, draw);
      }
      auto x = normalize(images, norm, cl);

      for (auto& p : params) {
        if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
      }
      torch::Tensor logits;
      {
        detail::AutocastGuard autocast(amp);
        logits = model.forward(x);
      }
      logits = logits.to(torch::kFloat);
      auto loss = torch::nn::functional::cross_entropy(logits, labels);
      loss.backward();
      optimizer->step();
      ++result.steps;
      epoch_seen += index.size(0);
      {
        torch::NoGradGuard no_grad;
        loss_sum += loss.detach().to(torch::kDouble) * double(index.size(0));
        correct += logits.argmax(1).eq(labels).sum();
      }

      if (seconds_since(last_report) >= 0.25 || b + 1 == epoch_batches) {
        last_report = Clock::now();
        const int64_t seen = epoch_seen;
        const double elapsed = seconds_since(epoch_start);
        const double rate = elapsed > 0 ? double(seen) / elapsed : 0.0;
        const double remaining_images = double(n - seen) + double(epochs - epoch) * double(n);
        reporter_.progress("epoch " + std::to_string(epoch) + "/" + std::to_string(epochs), b + 1,
                           epoch_batches,
                           {{"unit", "batch"},
                            {"loss", loss_sum.item<double>() / double(seen)},
                            {"images_per_second", rate},
                            {"eta_seconds", rate > 0 ? remaining_images / rate : -1.0}});
      }
    }
    EpochStats stats;
    stats.epoch = epoch;
    result.samples_seen += epoch_seen;
    stats.train_loss = loss_sum.item<double>() / double(epoch_seen);  // waits for the device
    stats.train_accuracy = double(correct.item<int64_t>()) / double(epoch_seen);
    stats.seconds = seconds_since(epoch_start);
    stats.images_per_second = stats.seconds > 0 ? double(epoch_seen) / stats.seconds : 0.0;
    result.train_seconds += stats.seconds;
    if (test.size() > 0 && (options_.evaluate_each_epoch || epoch == epochs)) {
      const auto eval_start = Clock::now();
      if (use_subset && epoch < epochs) {
        auto correct_on_subset = evaluate_on(subset_images, subset_labels);
        stats.test_accuracy = correct_on_subset.to(torch::kDouble).mean().item<double>();
        stats.eval_samples = correct_on_subset.size(0);
      } else {
        result.final_correct = evaluate_on(test_images, test.labels);
        stats.test_accuracy = result.final_correct.to(torch::kDouble).mean().item<double>();
        stats.eval_samples = test.size();
      }
      stats.eval_seconds = seconds_since(eval_start);
      result.eval_seconds += stats.eval_seconds;
    }
    result.epochs.push_back(stats);
    reporter_.event(
        {{"event", "epoch"},
         {"epoch", stats.epoch},
         {"epochs", epochs},
         {"train_loss", stats.train_loss},
         {"train_accuracy", stats.train_accuracy},
         {"test_accuracy",
          stats.test_accuracy >= 0 ? nlohmann::json(stats.test_accuracy) : nlohmann::json()},
         {"eval_samples", stats.eval_samples},
         {"seconds", stats.seconds},
         {"eval_seconds", stats.eval_seconds},
         {"images_per_second", stats.images_per_second}});
    if (on_epoch && !on_epoch(stats)) {
      result.stopped_early = epoch < epochs;
      break;
    }
  }
  if (test.size() > 0) {
    auto& last = result.epochs.back();
    if (last.test_accuracy < 0) {
      // Stopped early without an evaluation this epoch: the whole split, once.
      const auto eval_start = Clock::now();
      result.final_correct = evaluate_on(test_images, test.labels);
      last.test_accuracy = result.final_correct.to(torch::kDouble).mean().item<double>();
      last.eval_samples = test.size();
      last.eval_seconds = seconds_since(eval_start);
      result.eval_seconds += last.eval_seconds;
    }
    result.final_accuracy = last.test_accuracy;
    result.final_eval_samples = last.eval_samples;
  }
  result.total_seconds = seconds_since(start);
  return result;
}

double Trainer::evaluate(Network& model, const Dataset& data) {
  if (data.size() == 0) return -1;
  check_dataset(data, "evaluation");
  auto predicted = predict(model, data);
  return predicted.eq(data.labels).to(torch::kDouble).mean().item<double>();
}

torch::Tensor Trainer::predict(Network& model, const Dataset& data) {
  check_dataset(data, "prediction");
  DATAPROXY_CHECK(!normalization_.mean.empty(), InvalidInput,
                  "predict() needs the training statistics: call fit() or set_normalization() "
                  "first");
  model.to(device_);
  auto out = map_batches(model, data.images.contiguous(), to_device(normalization_, device_),
                         options_, options_.mixed_precision && device_.is_cuda(),
                         resolve_channels_last(options_.memory_format, model, device_), device_,
                         [&](const torch::Tensor& x) { return model.forward(x).argmax(1); });
  return out.defined() ? out : torch::empty({0}, torch::kInt64);
}

torch::Tensor Trainer::features(Network& model, const Dataset& data) {
  check_dataset(data, "features");
  DATAPROXY_CHECK(!normalization_.mean.empty(), InvalidInput,
                  "features() needs the training statistics: call fit() or set_normalization() "
                  "first");
  model.to(device_);
  auto out =
      map_batches(model, data.images.contiguous(), to_device(normalization_, device_), options_,
                  options_.mixed_precision && device_.is_cuda(),
                  resolve_channels_last(options_.memory_format, model, device_), device_,
                  [&](const torch::Tensor& x) { return model.features(x).to(torch::kFloat); });
  return out.defined() ? out : torch::empty({0, model.feature_dim()}, torch::kFloat);
}

}  // namespace dataproxy
