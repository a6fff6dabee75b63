#include "models/torchscript.h"

#include <torch/version.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "dataproxy/error.h"
#include "dataproxy/files.h"

namespace dataproxy::models {
namespace {

std::string shape_text(const InputShape& s) {
  return std::to_string(s.channels) + "," + std::to_string(s.height) + "," +
         std::to_string(s.width);
}

/// The command that (re)writes the export this run needs.
std::string export_command(const SearchSpace& space, const InputShape& input, int64_t classes) {
  return "python3 -m dataproxy.export --space " + space.torchscript().space_file.string() +
         " --input " + shape_text(input) + " --classes " + std::to_string(classes) +
         " (the Python that has torch; in a source checkout put plugin/python on PYTHONPATH)";
}

json read_index(const SearchSpace& space, const InputShape& input, int64_t classes) {
  const auto& ts = space.torchscript();
  const fs::path path = ts.exports / "index.json";
  if (!fs::exists(path)) {
    throw InvalidInput(
        "search space '" + space.name() + "' (family torchscript) has no export: " + path.string() +
        " does not exist; export its networks once with " + export_command(space, input, classes));
  }
  json index;
  try {
    index = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw DataError(path.string() + " is not valid JSON (" + e.what() + "); export again with " +
                    export_command(space, input, classes));
  }
  DATAPROXY_CHECK(index.is_object() && index.value("format", "") == "dataproxy-torchscript-index" &&
                      index.value("version", 0) == 1 && index.contains("configs") &&
                      index.at("configs").is_object(),
                  DataError,
                  path.string() << " is not a dataproxy TorchScript export index (format "
                                   "dataproxy-torchscript-index, version 1); export again with "
                                << export_command(space, input, classes));
  const std::string module_sha = index.value("module_sha256", "");
  DATAPROXY_CHECK(module_sha == ts.module_sha256, InvalidInput,
                  ts.module.string()
                      << " changed since its networks were exported to " << ts.exports.string()
                      << " (sha256 " << ts.module_sha256.substr(0, 12) << ", the export has "
                      << module_sha.substr(0, 12) << "); export again with "
                      << export_command(space, input, classes));
  DATAPROXY_CHECK(index.value("function", "") == ts.function && index.value("seed", -1) == ts.seed,
                  InvalidInput,
                  path.string() << " was exported with function '" << index.value("function", "")
                                << "' and seed " << index.value("seed", -1)
                                << ", but the space asks for '" << ts.function << "' and seed "
                                << ts.seed << "; export again with "
                                << export_command(space, input, classes));
  return index;
}

InputShape entry_shape(const json& e) {
  const auto& s = e.at("input");
  return InputShape{s.at(0).get<int64_t>(), s.at(1).get<int64_t>(), s.at(2).get<int64_t>()};
}

bool same_shape(const InputShape& a, const InputShape& b) {
  return a.channels == b.channels && a.height == b.height && a.width == b.width;
}

/// Major.minor of a version text such as "1.13.0a0" or "2.5.1+cu121"; {0, 0} if unreadable.
std::pair<int, int> major_minor(const std::string& version) {
  int major = 0, minor = 0;
  char dot = 0;
  std::istringstream in(version);
  in >> major >> dot >> minor;
  return {major, minor};
}

/// The cause of a failure inside TorchScript code: the last line of the interpreter's report
/// (e.g. "RuntimeError: Given groups=1, ..."), without the TorchScript and C++ backtraces.
std::string script_error(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10_error != nullptr ? c10_error->what_without_backtrace() : e.what();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const auto line = text.rfind('\n');
  return line == std::string::npos ? text : text.substr(line + 1);
}

/// Every parameter and buffer of `module`, named without dots (nn::Module's rule).
std::string flat_name(const std::string& name) {
  std::string out = name;
  std::replace(out.begin(), out.end(), '.', '_');
  return out;
}

/// A torch::jit::Module as a Network. Its tensors are registered as this module's parameters
/// and buffers: the same tensors, so what the optimizer, to() and set_data() do to them is what
/// the TorchScript code sees.
class TorchScriptNetwork : public Network {
 public:
  TorchScriptNetwork(torch::jit::Module module, std::string origin)
      : module_(std::move(module)), origin_(std::move(origin)) {
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) {
      const std::string name = flat_name(p.name);
      DATAPROXY_CHECK(!named_parameters(false).contains(name), InvalidInput,
                      origin_ << ": two parameters are both named '" << name
                              << "' once dots become underscores; rename one of them");
      register_parameter(name, p.value, p.value.requires_grad());
    }
    for (const auto& b : module_.named_buffers(/*recurse=*/true)) {
      register_buffer(flat_name(b.name), b.value);
    }
    Network::train(module_.is_training());
  }

  torch::Tensor forward(torch::Tensor x) override { return module_.forward({x}).toTensor(); }
  torch::Tensor features(torch::Tensor x) override {
    return module_.run_method("features", x).toTensor();
  }
  int64_t feature_dim() const override { return feature_dim_; }
  void set_feature_dim(int64_t d) { feature_dim_ = d; }

  void train(bool on = true) override {
    Network::train(on);
    module_.train(on);
  }
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override {
    module_.to(device, dtype, non_blocking);
  }
  void to(torch::Dtype dtype, bool non_blocking = false) override {
    module_.to(dtype, non_blocking);
  }
  void to(torch::Device device, bool non_blocking = false) override {
    module_.to(device, non_blocking);
  }

  const std::string& origin() const { return origin_; }

 private:
  torch::jit::Module module_;
  std::string origin_;
  int64_t feature_dim_ = 0;
};

}  // namespace

TorchScriptExport find_torchscript_export(const SearchSpace& space, const Config& config,
                                          const InputShape& input, int64_t num_classes) {
  const json index = read_index(space, input, num_classes);
  const std::string id = space.config_id(config);
  const auto& configs = index.at("configs");
  const fs::path index_path = space.torchscript().exports / "index.json";
  if (!configs.contains(id) || !configs.at(id).is_array() || configs.at(id).empty()) {
    throw InvalidInput("configuration " + id + " of search space '" + space.name() +
                       "' is not in " + index_path.string() + "; export every configuration with " +
                       export_command(space, input, num_classes));
  }
  std::string exported;
  for (const auto& e : configs.at(id)) {
    try {
      const InputShape shape = entry_shape(e);
      const int64_t classes = e.at("classes").get<int64_t>();
      if (!same_shape(shape, input) || classes != num_classes) {
        exported += (exported.empty() ? "" : "; ") + shape_text(shape) + " with " +
                    std::to_string(classes) + " classes";
        continue;
      }
      TorchScriptExport out;
      out.config_id = id;
      out.file = space.torchscript().exports / e.at("file").get<std::string>();
      out.sha256 = e.at("sha256").get<std::string>();
      out.input = shape;
      out.classes = classes;
      out.macs = e.at("macs").get<int64_t>();
      out.params = e.at("params").get<int64_t>();
      out.torch_version = e.value("torch_version", "");
      return out;
    } catch (const json::exception& err) {
      throw DataError(index_path.string() + ": the entry of configuration " + id +
                      " is incomplete (" + err.what() + "); export again with " +
                      export_command(space, input, num_classes));
    }
  }
  throw InvalidInput("configuration " + id + " was exported for input " + exported + " (" +
                     index_path.string() + "), but this data needs input " + shape_text(input) +
                     " with " + std::to_string(num_classes) + " classes; export for it with " +
                     export_command(space, input, num_classes));
}

std::shared_ptr<Network> wrap_torchscript(torch::jit::Module module, const InputShape& input,
                                          int64_t num_classes, const std::string& origin) {
  DATAPROXY_CHECK(module.find_method("features").has_value(), InvalidInput,
                  origin << " has no `features` method, so the proxy stage cannot read the upper "
                            "probe's features; give the module a method `def features(self, x)` "
                            "returning the pooled penultimate activations [N, D] and export it "
                            "again");
  auto net = std::make_shared<TorchScriptNetwork>(std::move(module), origin);
  bool trainable = false;
  for (const auto& p : net->parameters()) trainable = trainable || p.requires_grad();
  DATAPROXY_CHECK(trainable, InvalidInput,
                  origin << " has no trainable parameter (none requires grad): there is nothing "
                            "to train; export the network with its parameters trainable");
  const bool was_training = net->is_training();
  net->eval();
  torch::Tensor logits, features;
  try {
    torch::NoGradGuard no_grad;
    const auto x = torch::zeros({1, input.channels, input.height, input.width});
    logits = net->forward(x);
    features = net->features(x);
  } catch (const std::exception& e) {
    throw InvalidInput(origin + " fails on one zero image of shape [1, " + shape_text(input) +
                       "] (this data's input): " + script_error(e) +
                       "; build the network for this input and export it again");
  }
  net->train(was_training);
  DATAPROXY_CHECK(
      logits.dim() == 2 && logits.size(0) == 1 && logits.size(1) == num_classes, InvalidInput,
      origin << " maps one image of shape [1, " << shape_text(input) << "] to " << logits.sizes()
             << ", but this data has " << num_classes << " classes: forward must return logits [N, "
             << num_classes << "]; build it for " << num_classes << " classes and export it again");
  DATAPROXY_CHECK(features.dim() == 2 && features.size(0) == 1 && features.size(1) > 0,
                  InvalidInput,
                  origin << ": features() returns " << features.sizes()
                         << " for one image; it must return one vector per image, [N, D] "
                            "(pool and flatten the penultimate activations)");
  net->set_feature_dim(features.size(1));
  return net;
}

std::shared_ptr<Network> load_torchscript(const SearchSpace& space, const Config& config,
                                          const InputShape& input, int64_t num_classes) {
  const TorchScriptExport e = find_torchscript_export(space, config, input, num_classes);
  const std::string again = "; export again with " + export_command(space, input, num_classes);
  DATAPROXY_CHECK(fs::is_regular_file(e.file), DataError,
                  "the TorchScript file of configuration " << e.config_id << ", " << e.file.string()
                                                           << ", is missing" << again);
  const std::string sha = sha256_file(e.file);
  DATAPROXY_CHECK(sha == e.sha256, DataError,
                  e.file.string() << " has sha256 " << sha.substr(0, 12) << ", but the index says "
                                  << e.sha256.substr(0, 12)
                                  << ": the file was changed or damaged after export" << again);
  torch::jit::Module module;
  try {
    module = torch::jit::load(e.file.string(), torch::Device(torch::kCPU));
  } catch (const std::exception& err) {
    const auto [major, minor] = major_minor(e.torch_version);
    std::string why;
    if (major > TORCH_VERSION_MAJOR ||
        (major == TORCH_VERSION_MAJOR && minor > TORCH_VERSION_MINOR)) {
      why = "; it was written by torch " + e.torch_version + ", newer than this LibTorch " +
            std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
            ": export with a Python torch of this LibTorch's version";
    }
    throw DataError(e.file.string() + " does not load as TorchScript (" + script_error(err) + ")" +
                    why + again);
  }
  return wrap_torchscript(
      std::move(module), input, num_classes,
      "the TorchScript network " + e.file.string() + " (configuration " + e.config_id + ")");
}

}  // namespace dataproxy::models
