// Search spaces: a YAML file names the model family, its categorical parameters, fixed model
// settings and the training settings. One file drives the model builder, the probe choice, and
// the exports to NNI and Optuna.
//
// Schema (every key below is known; any other key is an error; search_spaces/README.md has more):
//   name: text                      required
//   family: resnet | efficientnet | torchscript   required
//   notes: text                     optional (how the paper was read, ...)
//   parameters:                     required, at least one; each a family setting that is searched
//     - name: B                     a setting of the family (see below), unique
//       choices: [8, 16, 32]        numbers or names, at least one, no duplicates
//       values: {r1: [1, 2]}        required for named choices: what each name stands for
//       description: text           optional
//   model: {setting: value}         fixed family settings (not searched); defaults fill the rest
//   torchscript:                    family torchscript only (your own networks):
//     module: net.py, function: build, exports: net.export, seed: 0
//   training:                       optional; defaults as in TrainSettings
//     optimizer: adam | sgd, learning_rate, weight_decay, momentum, batch_size, epochs,
//     schedule: constant | cosine | step, step_milestones: [..], step_gamma,
//     augmentation: {random_crop_padding: 4, horizontal_flip: true}
// Family settings (a setting is either a parameter or a fixed `model:` value, not both):
//   resnet:       B (base filters), K (kernel), M (width multiplier per stage), blocks_per_stage,
//                 stages, stem_kernel, feature_stage (0 = last stage)
//   efficientnet: r (repeats per stage), k (kernel per stage), f (input width per stage),
//                 expand_ratios, strides, stem_stride, stem_kernel, output_width,
//                 output_width_reference, head_channels, se_ratio, dropout, feature_stage
//   torchscript:  any names and values: they are the `config` your build(config) function reads
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace dataproxy {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// A configuration: parameter name -> chosen value (a number or a choice name), as JSON object.
using Config = json;

/// One categorical parameter of the space.
struct Parameter {
  std::string name;
  std::vector<json> choices;  ///< numbers or strings, in the file's order
  /// For named choices (e.g. "r1"): name -> the value the model builder receives (e.g. a list).
  json values = json::object();
  std::string description;
};

/// Augmentation applied to training batches.
struct Augmentation {
  int64_t random_crop_padding = 4;  ///< pad then crop back; 0 disables cropping
  bool horizontal_flip = true;
};

/// Training settings shared by every candidate of the space.
struct TrainSettings {
  std::string optimizer = "adam";  ///< "adam" or "sgd"
  double learning_rate = 1e-3;
  double weight_decay = 0.0;
  double momentum = 0.9;  ///< sgd only
  int64_t batch_size = 128;
  int64_t epochs = 30;
  std::string schedule = "cosine";       ///< "constant", "cosine" or "step"
  std::vector<int64_t> step_milestones;  ///< epochs at which "step" multiplies lr by step_gamma
  double step_gamma = 0.1;
  Augmentation augmentation;
  json to_json() const;
};

/// Family torchscript: where the user's networks come from. `build(config)` in `module` makes
/// each configuration's torch.nn.Module; `python3 -m dataproxy.export` scripts every one of them
/// into `exports` once, and build_model loads them from there (search_spaces/README.md).
struct TorchScriptSource {
  fs::path space_file;  ///< the space's file (the origin it was parsed from), for messages
  fs::path module;      ///< the Python file defining `function`
  std::string function = "build";
  fs::path exports;           ///< folder with index.json and one TorchScript file per network
  int64_t seed = 0;           ///< torch.manual_seed before each build: fixes initial weights
  std::string module_sha256;  ///< of `module` when the space was read
};

/// A parsed, validated search space.
class SearchSpace {
 public:
  /// Parses a YAML file; throws InvalidInput naming the file, key and value on any error.
  static SearchSpace load(const fs::path& path);
  /// Parses YAML text; `origin` names it in error messages.
  static SearchSpace parse(const std::string& yaml_text, const std::string& origin);

  const std::string& name() const { return name_; }
  /// Model family: "resnet", "efficientnet" or "torchscript".
  const std::string& family() const { return family_; }
  /// Family torchscript: the `torchscript:` block, paths made absolute. Empty for other families.
  const TorchScriptSource& torchscript() const { return torchscript_; }
  const std::vector<Parameter>& parameters() const { return parameters_; }
  /// Fixed model settings for the family (e.g. blocks per stage): the `model:` key, with the
  /// family's defaults filled in for every setting that is neither given nor searched.
  const json& model_settings() const { return model_settings_; }
  const TrainSettings& training() const { return training_; }
  /// Free-text notes from the file (e.g. how the paper's lists were read).
  const std::string& notes() const { return notes_; }

  /// Every configuration, in lexicographic order of the parameters as listed.
  std::vector<Config> enumerate() const;
  /// Number of configurations.
  std::size_t size() const;
  /// Checks a parameter set: every parameter present, no unknown key, each value one of the
  /// choices (numbers compared by value, so 16 and 16.0 match). Returns the canonical Config.
  /// Throws InvalidInput naming the key, the value and the allowed choices.
  Config validate(const json& params) const;
  /// The value the model builder receives for `param` in `config` (resolves named choices).
  json resolve(const Config& config, const std::string& param) const;
  /// The value of family setting `key` for `config`: the resolved parameter when the space
  /// searches it, else the fixed model setting. Throws InvalidInput for an unknown key.
  json setting(const Config& config, const std::string& key) const;
  /// Short stable text for a config, e.g. "B16_K3_M2" (numbers prefixed with the parameter's
  /// name, named choices as they are: "r1_k2_f3").
  std::string config_id(const Config& config) const;

  /// NNI search-space JSON: {"B": {"_type": "choice", "_value": [8, 16, 32]}, ...}.
  json to_nni() const;
  /// Optuna distributions JSON: {"B": {"name": "CategoricalDistribution",
  /// "attributes": {"choices": [8, 16, 32]}}, ...} (optuna.distributions.json_to_distribution).
  json to_optuna() const;
  /// SHA-256 of the canonical content (not the file's bytes; notes and descriptions left out, as
  /// they change no result): part of proxy cache keys.
  std::string content_hash() const;
  /// The whole space as JSON (canonical form).
  json to_json() const;

 private:
  std::string name_, family_, notes_;
  std::vector<Parameter> parameters_;
  json model_settings_ = json::object();
  TrainSettings training_;
  TorchScriptSource torchscript_;
};

}  // namespace dataproxy
