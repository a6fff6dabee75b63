#include <cmath>

#include "dataproxy/error.h"
#include "models/networks.h"

namespace dataproxy::models {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false));
}

/// Two KxK convolutions with batch norm; a 1x1 projection shortcut when the shape changes.
class BasicBlockImpl : public nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t k, int64_t stride)
      : conv1_(register_module("conv1", conv(in, out, k, stride))),
        bn1_(register_module("bn1", nn::BatchNorm2d(out))),
        conv2_(register_module("conv2", conv(out, out, k, 1))),
        bn2_(register_module("bn2", nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out) {
      shortcut_ = register_module("shortcut",
                                  nn::Sequential(conv(in, out, 1, stride), nn::BatchNorm2d(out)));
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1_(conv1_(x)));
    out = bn2_(conv2_(out));
    return torch::relu(out + (shortcut_ ? shortcut_->forward(x) : x));
  }

 private:
  nn::Conv2d conv1_;
  nn::BatchNorm2d bn1_;
  nn::Conv2d conv2_;
  nn::BatchNorm2d bn2_;
  nn::Sequential shortcut_{nullptr};
};
TORCH_MODULE(BasicBlock);

class ResNet : public Network {
 public:
  ResNet(const ResNetSpec& spec, const InputShape& input, int64_t num_classes)
      : feature_stage_(spec.feature_stage == 0 ? spec.stages : spec.feature_stage),
        feature_dim_(spec.width(feature_stage_ - 1)) {
    stem_ = register_module("stem", conv(input.channels, spec.width(0), spec.stem_kernel, 1));
    stem_bn_ = register_module("stem_bn", nn::BatchNorm2d(spec.width(0)));
    int64_t in = spec.width(0);
    for (int64_t s = 0; s < spec.stages; ++s) {
      nn::Sequential stage;
      for (int64_t b = 0; b < spec.blocks_per_stage; ++b) {
        const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
        stage->push_back(BasicBlock(in, spec.width(s), spec.kernel, stride));
        in = spec.width(s);
      }
      stages_.push_back(register_module("stage" + std::to_string(s + 1), stage));
    }
    fc_ = register_module("fc", nn::Linear(in, num_classes));
    for (auto& m : modules(false)) {
      if (auto* c = m->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      }
    }
  }

  torch::Tensor forward(torch::Tensor x) override {
    return fc_(trunk(x, static_cast<int64_t>(stages_.size())).mean({2, 3}));
  }
  torch::Tensor features(torch::Tensor x) override { return trunk(x, feature_stage_).mean({2, 3}); }
  int64_t feature_dim() const override { return feature_dim_; }

 private:
  torch::Tensor trunk(torch::Tensor x, int64_t stages) {
    x = torch::relu(stem_bn_(stem_(x)));
    for (int64_t s = 0; s < stages; ++s) x = stages_[s]->forward(x);
    return x;
  }

  int64_t feature_stage_;
  int64_t feature_dim_;
  nn::Conv2d stem_{nullptr};
  nn::BatchNorm2d stem_bn_{nullptr};
  std::vector<nn::Sequential> stages_;
  nn::Linear fc_{nullptr};
};

}  // namespace

ResNetSpec ResNetSpec::from(const SearchSpace& space, const Config& config) {
  auto get = [&](const char* key) { return space.setting(config, key).get<int64_t>(); };
  ResNetSpec s;
  s.base_filters = get("B");
  s.kernel = get("K");
  s.multiplier = get("M");
  s.blocks_per_stage = get("blocks_per_stage");
  s.stages = get("stages");
  s.stem_kernel = get("stem_kernel");
  s.feature_stage = get("feature_stage");
  return s;
}

int64_t ResNetSpec::width(int64_t stage) const {
  int64_t w = base_filters;
  for (int64_t i = 0; i < stage; ++i) w *= multiplier;
  return w;
}

std::shared_ptr<Network> build_resnet(const ResNetSpec& spec, const InputShape& input,
                                      int64_t num_classes) {
  return std::make_shared<ResNet>(spec, input, num_classes);
}

int64_t resnet_macs(const ResNetSpec& spec, const InputShape& input, int64_t num_classes) {
  int64_t h = input.height, w = input.width;
  int64_t macs = conv_macs(h, w, input.channels, spec.width(0), spec.stem_kernel);
  int64_t in = spec.width(0);
  for (int64_t s = 0; s < spec.stages; ++s) {
    const int64_t out = spec.width(s);
    for (int64_t b = 0; b < spec.blocks_per_stage; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      const int64_t oh = conv_out(h, spec.kernel, stride), ow = conv_out(w, spec.kernel, stride);
      macs += conv_macs(oh, ow, in, out, spec.kernel);
      macs += conv_macs(oh, ow, out, out, spec.kernel);
      if (stride != 1 || in != out) macs += conv_macs(oh, ow, in, out, 1);
      h = oh;
      w = ow;
      in = out;
    }
  }
  return macs + in * num_classes;
}

}  // namespace dataproxy::models
