#include "space/families.h"

#include <cmath>
#include <sstream>

namespace dataproxy::space {
namespace {

using Kind = SettingSpec::Kind;

std::string check_resnet(const json& s) {
  const int64_t stages = s.at("stages").get<int64_t>();
  const int64_t feature_stage = s.at("feature_stage").get<int64_t>();
  if (feature_stage > stages) {
    return "feature_stage " + std::to_string(feature_stage) + " is past the last stage (" +
           std::to_string(stages) + ")";
  }
  return "";
}

std::string check_efficientnet(const json& s) {
  const std::size_t n = s.at("r").size();
  for (const char* key : {"k", "f", "expand_ratios", "strides"}) {
    if (s.at(key).size() != n) {
      return std::string("the per-stage lists must have one entry per stage: r has ") +
             std::to_string(n) + " entries, " + key + " has " + std::to_string(s.at(key).size());
    }
  }
  const int64_t feature_stage = s.at("feature_stage").get<int64_t>();
  if (feature_stage > static_cast<int64_t>(n)) {
    return "feature_stage " + std::to_string(feature_stage) + " is past the last stage (" +
           std::to_string(n) + ")";
  }
  return "";
}

const std::vector<Family>& families() {
  static const std::vector<Family> all = {
      {"resnet",
       {
           {"B", Kind::Int, 16, 1, 1e6, false, "base filters: width of the stem and stage 1"},
           {"K", Kind::Int, 3, 1, 15, true, "kernel size of the residual blocks' convolutions"},
           {"M", Kind::Int, 2, 1, 64, false, "width multiplier from one stage to the next"},
           {"blocks_per_stage", Kind::Int, 3, 1, 1000, false, "basic blocks in each stage"},
           {"stages", Kind::Int, 3, 1, 8, false, "stages; each after the first halves H and W"},
           {"stem_kernel", Kind::Int, 3, 1, 15, true, "kernel size of the stem convolution"},
           {"feature_stage", Kind::Int, 0, 0, 8, false,
            "stage whose pooled output features() returns; 0 = the last"},
       },
       check_resnet},
      {"efficientnet",
       {
           {"r", Kind::IntList, json::array({1, 2, 2, 3, 3, 4, 1}), 1, 100, false,
            "MBConv blocks in each stage"},
           {"k", Kind::IntList, json::array({3, 3, 5, 3, 5, 5, 3}), 1, 15, true,
            "depthwise kernel size of each stage"},
           {"f", Kind::IntList, json::array({32, 16, 24, 40, 80, 112, 192}), 1, 1e6, false,
            "input width of each stage (the first is the stem's output)"},
           {"expand_ratios", Kind::IntList, json::array({1, 6, 6, 6, 6, 6, 6}), 1, 64, false,
            "MBConv expansion of each stage"},
           {"strides", Kind::IntList, json::array({1, 1, 2, 2, 1, 2, 1}), 1, 2, false,
            "stride of each stage's first block"},
           {"stem_stride", Kind::Int, 1, 1, 2, false, "stride of the stem convolution"},
           {"stem_kernel", Kind::Int, 3, 1, 15, true, "kernel size of the stem convolution"},
           {"output_width", Kind::Int, 320, 1, 1e6, false,
            "last stage's output width when its input is output_width_reference wide"},
           {"output_width_reference", Kind::Int, 192, 1, 1e6, false,
            "input width of the last stage at which its output is output_width"},
           {"head_channels", Kind::Int, 1280, 1, 1e6, false, "width of the 1x1 head conv"},
           {"se_ratio", Kind::Float, 0.25, 0, 1, false,
            "squeeze-excitation width as a fraction of the block input; 0 = none"},
           {"dropout", Kind::Float, 0.2, 0, 0.99, false, "dropout before the classifier"},
           {"feature_stage", Kind::Int, 0, 0, 100, false,
            "stage whose pooled output features() returns; 0 = the last"},
       },
       check_efficientnet},
      // The user's own networks, built in Python and exported to TorchScript (models/torchscript).
      {"torchscript", {}, nullptr, true},
  };
  return all;
}

std::string check_number(const SettingSpec& spec, const json& v, bool integer) {
  std::ostringstream os;
  if (!v.is_number() ||
      (integer && !(v.is_number_integer() || std::floor(v.get<double>()) == v.get<double>()))) {
    return integer ? "expected an integer" : "expected a number";
  }
  const double x = v.get<double>();
  if (x < spec.min || x > spec.max) {
    os << "expected a value in [" << spec.min << ", " << spec.max << "]";
    return os.str();
  }
  if (spec.odd && static_cast<int64_t>(x) % 2 == 0) return "expected an odd integer";
  return "";
}

}  // namespace

const Family* find_family(const std::string& name) {
  for (const auto& f : families()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string family_names() {
  std::string out;
  for (const auto& f : families()) out += (out.empty() ? "" : ", ") + f.name;
  return out;
}

const SettingSpec* find_setting(const Family& family, const std::string& setting) {
  static const SettingSpec any{"", Kind::Any, nullptr, 0, 0, false, "a setting of your network"};
  if (family.open) return &any;
  for (const auto& s : family.settings) {
    if (s.name == setting) return &s;
  }
  return nullptr;
}

std::string check_value(const SettingSpec& spec, const json& value) {
  switch (spec.kind) {
    case Kind::Int:
      return check_number(spec, value, true);
    case Kind::Float:
      return check_number(spec, value, false);
    case Kind::IntList:
      if (!value.is_array() || value.empty()) return "expected a non-empty list of integers";
      for (const auto& v : value) {
        std::string e = check_number(spec, v, true);
        if (!e.empty()) return "every entry: " + e;
      }
      return "";
    case Kind::Any:
      return "";
  }
  return "";
}

}  // namespace dataproxy::space
