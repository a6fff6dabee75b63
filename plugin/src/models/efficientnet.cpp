#include <algorithm>
#include <cmath>

#include "dataproxy/error.h"
#include "models/networks.h"

namespace dataproxy::models {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t groups = 1,
                bool bias = false) {
  return nn::Conv2d(
      nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).groups(groups).bias(bias));
}

/// Width of the squeeze-excitation bottleneck: a fraction of the block's input width.
int64_t se_width(int64_t in, double ratio) {
  return ratio > 0 ? std::max<int64_t>(1, static_cast<int64_t>(in * ratio)) : 0;
}

/// Rounds a width to a multiple of 8, never down by more than 10% (EfficientNet's rule).
int64_t round_width(double w) {
  int64_t r = std::max<int64_t>(8, static_cast<int64_t>(w + 4) / 8 * 8);
  if (r < 0.9 * w) r += 8;
  return r;
}

/// Inverted residual: 1x1 expansion, depthwise KxK, squeeze-excitation, 1x1 projection.
class MBConvImpl : public nn::Module {
 public:
  MBConvImpl(int64_t in, int64_t out, int64_t expand, int64_t k, int64_t stride, double se_ratio)
      : residual_(stride == 1 && in == out) {
    const int64_t mid = in * expand;
    if (expand != 1) {
      expand_ = register_module("expand", conv(in, mid, 1, 1));
      expand_bn_ = register_module("expand_bn", nn::BatchNorm2d(mid));
    }
    depthwise_ = register_module("depthwise", conv(mid, mid, k, stride, mid));
    depthwise_bn_ = register_module("depthwise_bn", nn::BatchNorm2d(mid));
    if (const int64_t se = se_width(in, se_ratio); se > 0) {
      se_reduce_ = register_module("se_reduce", conv(mid, se, 1, 1, 1, true));
      se_expand_ = register_module("se_expand", conv(se, mid, 1, 1, 1, true));
    }
    project_ = register_module("project", conv(mid, out, 1, 1));
    project_bn_ = register_module("project_bn", nn::BatchNorm2d(out));
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor h = x;
    if (expand_) h = torch::silu(expand_bn_(expand_(h)));
    h = torch::silu(depthwise_bn_(depthwise_(h)));
    if (se_reduce_) {
      torch::Tensor s = h.mean({2, 3}, /*keepdim=*/true);
      s = torch::sigmoid(se_expand_(torch::silu(se_reduce_(s))));
      h = h * s;
    }
    h = project_bn_(project_(h));
    return residual_ ? h + x : h;
  }

 private:
  bool residual_;
  nn::Conv2d expand_{nullptr}, depthwise_{nullptr}, se_reduce_{nullptr}, se_expand_{nullptr},
      project_{nullptr};
  nn::BatchNorm2d expand_bn_{nullptr}, depthwise_bn_{nullptr}, project_bn_{nullptr};
};
TORCH_MODULE(MBConv);

class EfficientNet : public Network {
 public:
  EfficientNet(const EfficientNetSpec& spec, const InputShape& input, int64_t num_classes)
      : feature_stage_(spec.feature_stage == 0 ? spec.stages() : spec.feature_stage),
        feature_dim_(spec.stage_output(feature_stage_ - 1)) {
    stem_ = register_module(
        "stem", conv(input.channels, spec.filters[0], spec.stem_kernel, spec.stem_stride));
    stem_bn_ = register_module("stem_bn", nn::BatchNorm2d(spec.filters[0]));
    int64_t in = spec.filters[0];
    for (int64_t s = 0; s < spec.stages(); ++s) {
      nn::Sequential stage;
      for (int64_t b = 0; b < spec.repeats[s]; ++b) {
        stage->push_back(MBConv(in, spec.stage_output(s), spec.expand_ratios[s], spec.kernels[s],
                                b == 0 ? spec.strides[s] : 1, spec.se_ratio));
        in = spec.stage_output(s);
      }
      stages_.push_back(register_module("stage" + std::to_string(s + 1), stage));
    }
    head_ = register_module("head", conv(in, spec.head_channels, 1, 1));
    head_bn_ = register_module("head_bn", nn::BatchNorm2d(spec.head_channels));
    dropout_ = register_module("dropout", nn::Dropout(spec.dropout));
    fc_ = register_module("fc", nn::Linear(spec.head_channels, num_classes));
    for (auto& m : modules(false)) {
      if (auto* c = m->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      }
    }
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = trunk(x, static_cast<int64_t>(stages_.size()));
    x = torch::silu(head_bn_(head_(x))).mean({2, 3});
    return fc_(dropout_(x));
  }
  torch::Tensor features(torch::Tensor x) override { return trunk(x, feature_stage_).mean({2, 3}); }
  int64_t feature_dim() const override { return feature_dim_; }

 private:
  torch::Tensor trunk(torch::Tensor x, int64_t stages) {
    x = torch::silu(stem_bn_(stem_(x)));
    for (int64_t s = 0; s < stages; ++s) x = stages_[s]->forward(x);
    return x;
  }

  int64_t feature_stage_;
  int64_t feature_dim_;
  nn::Conv2d stem_{nullptr}, head_{nullptr};
  nn::BatchNorm2d stem_bn_{nullptr}, head_bn_{nullptr};
  std::vector<nn::Sequential> stages_;
  nn::Dropout dropout_{nullptr};
  nn::Linear fc_{nullptr};
};

std::vector<int64_t> int_list(const json& v) { return v.get<std::vector<int64_t>>(); }

}  // namespace

EfficientNetSpec EfficientNetSpec::from(const SearchSpace& space, const Config& config) {
  auto get = [&](const char* key) { return space.setting(config, key); };
  EfficientNetSpec s;
  s.repeats = int_list(get("r"));
  s.kernels = int_list(get("k"));
  s.filters = int_list(get("f"));
  s.expand_ratios = int_list(get("expand_ratios"));
  s.strides = int_list(get("strides"));
  s.stem_stride = get("stem_stride").get<int64_t>();
  s.stem_kernel = get("stem_kernel").get<int64_t>();
  s.output_width = round_width(static_cast<double>(get("output_width").get<int64_t>()) *
                               static_cast<double>(s.filters.back()) /
                               static_cast<double>(get("output_width_reference").get<int64_t>()));
  s.head_channels = get("head_channels").get<int64_t>();
  s.se_ratio = get("se_ratio").get<double>();
  s.dropout = get("dropout").get<double>();
  s.feature_stage = get("feature_stage").get<int64_t>();
  return s;
}

int64_t EfficientNetSpec::stage_output(int64_t stage) const {
  return stage + 1 < stages() ? filters[stage + 1] : output_width;
}

std::shared_ptr<Network> build_efficientnet(const EfficientNetSpec& spec, const InputShape& input,
                                            int64_t num_classes) {
  return std::make_shared<EfficientNet>(spec, input, num_classes);
}

int64_t efficientnet_macs(const EfficientNetSpec& spec, const InputShape& input,
                          int64_t num_classes) {
  int64_t h = conv_out(input.height, spec.stem_kernel, spec.stem_stride);
  int64_t w = conv_out(input.width, spec.stem_kernel, spec.stem_stride);
  int64_t macs = conv_macs(h, w, input.channels, spec.filters[0], spec.stem_kernel);
  int64_t in = spec.filters[0];
  for (int64_t s = 0; s < spec.stages(); ++s) {
    const int64_t out = spec.stage_output(s), k = spec.kernels[s];
    for (int64_t b = 0; b < spec.repeats[s]; ++b) {
      const int64_t mid = in * spec.expand_ratios[s], stride = b == 0 ? spec.strides[s] : 1;
      if (mid != in) macs += conv_macs(h, w, in, mid, 1);
      const int64_t oh = conv_out(h, k, stride), ow = conv_out(w, k, stride);
      macs += conv_macs(oh, ow, mid, mid, k, mid);
      const int64_t se = se_width(in, spec.se_ratio);
      macs += 2 * mid * se;
      macs += conv_macs(oh, ow, mid, out, 1);
      h = oh;
      w = ow;
      in = out;
    }
  }
  macs += conv_macs(h, w, in, spec.head_channels, 1);
  return macs + spec.head_channels * num_classes;
}

}  // namespace dataproxy::models
