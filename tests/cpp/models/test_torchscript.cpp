// Family torchscript: the wrapper around torch::jit::Module, the export index and its refusals,
// and training by the same Trainer as a built-in network. The TorchScript modules are written
// here in TorchScript source (torch::jit::Module::define), so no Python is needed; the Python
// export helper has its own tests (tests/python/test_torchscript_family.py).
#include <gtest/gtest.h>
#include <torch/script.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>

#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/model.h"
#include "dataproxy/trainer.h"
#include "models/torchscript.h"
#include "train/synthetic.h"

namespace dataproxy {
namespace {

using testing::synthetic_dataset;
using testing::TinyNet;

/// TinyNet (tests/cpp/train/synthetic.h) in TorchScript: the same aten operations, with the
/// parameters and batch-norm buffers as module attributes.
const char* kTinyNetSource = R"(
def features(self, x):
    x = torch.conv2d(x, self.conv1_weight, self.conv1_bias, [1, 1], [1, 1])
    if self.training:
        self.bn1_num_batches_tracked.add_(1)
    x = torch.batch_norm(x, self.bn1_weight, self.bn1_bias, self.bn1_running_mean,
                         self.bn1_running_var, self.training, 0.1, 1e-5, False)
    x = torch.relu(x)
    x = torch.relu(torch.conv2d(x, self.conv2_weight, self.conv2_bias, [2, 2], [1, 1]))
    return torch.flatten(torch.adaptive_avg_pool2d(x, [2, 2]), 1)

def forward(self, x):
    return torch.linear(self.features(x), self.fc_weight, self.fc_bias)
)";

/// A TorchScript twin of `net`, starting from a copy of its parameters and buffers; `source`
/// replaces the methods (to make broken modules).
torch::jit::Module script_twin(TinyNet& net, const std::string& source = kTinyNetSource) {
  torch::jit::Module m("TinyNetTS");
  m.register_attribute("training", c10::BoolType::get(), true);
  torch::NoGradGuard no_grad;
  for (const auto& p : net.named_parameters()) {
    std::string name = p.key();
    std::replace(name.begin(), name.end(), '.', '_');
    m.register_parameter(name, p.value().clone().requires_grad_(true), /*is_buffer=*/false);
  }
  for (const auto& b : net.named_buffers()) {
    std::string name = b.key();
    std::replace(name.begin(), name.end(), '.', '_');
    m.register_buffer(name, b.value().clone());
  }
  m.define(source);
  return m;
}

/// A folder with a torchscript space (net.py as the module), exported modules and their index.
class TorchScriptSpace : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    dir_ = fs::temp_directory_path() /
           ("dataproxy-ts-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "exports");
    write("net.py", "def build(config):\n    ...\n");
    write("space.yaml",
          "name: tiny_ts\nfamily: torchscript\n"
          "torchscript: {module: net.py, exports: exports, seed: 3}\n"
          "parameters:\n  - {name: width, choices: [4, 8]}\n"
          "model: {kind: tiny}\n");
    index_ = {{"format", "dataproxy-torchscript-index"},
              {"version", 1},
              {"module_sha256", sha256_file(dir_ / "net.py")},
              {"function", "build"},
              {"seed", 3},
              {"configs", json::object()}};
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  SearchSpace space() const { return SearchSpace::load(dir_ / "space.yaml"); }

  /// Saves `module` as the export of configuration width`width` for `input` and `classes`.
  void add_export(torch::jit::Module module, int64_t width, const InputShape& input,
                  int64_t classes, int64_t macs = 1000) {
    const std::string file = "width" + std::to_string(width) + ".pt";
    module.save((dir_ / "exports" / file).string());
    index_["configs"]["width" + std::to_string(width)].push_back(
        {{"config", {{"width", width}}},
         {"input", {input.channels, input.height, input.width}},
         {"classes", classes},
         {"file", file},
         {"sha256", sha256_file(dir_ / "exports" / file)},
         {"macs", macs},
         {"params", 77},
         {"feature_dim", 8 * width},
         {"torch_version", "1.13.0"}});
    save_index();
  }
  void save_index() { write("exports/index.json", index_.dump(1)); }

  /// The message of the InvalidInput that building width`width` throws ("" if none).
  std::string build_error(int64_t width, const InputShape& input, int64_t classes) {
    try {
      build_model(space(), {{"width", width}}, input, classes);
    } catch (const InvalidInput& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
  json index_;
  const InputShape input_{3, 16, 16};
};

TEST_F(TorchScriptSpace, SpaceFileTakesAnyParameterNamesAndResolvesPaths) {
  const auto sp = space();
  EXPECT_EQ(sp.family(), "torchscript");
  EXPECT_EQ(sp.torchscript().module, dir_ / "net.py");
  EXPECT_EQ(sp.torchscript().exports, dir_ / "exports");
  EXPECT_EQ(sp.torchscript().function, "build");
  EXPECT_EQ(sp.torchscript().seed, 3);
  EXPECT_EQ(sp.size(), 2u);
  EXPECT_EQ(sp.config_id({{"width", 8}}), "width8");
  EXPECT_EQ(sp.setting({{"width", 8}}, "kind"), "tiny");
  EXPECT_EQ(sp.to_json().at("torchscript").at("module_sha256"), sha256_file(dir_ / "net.py"));

  // The network's source is part of the content hash (proxy cache keys), its folder is not.
  const std::string before = sp.content_hash();
  write("net.py", "def build(config):\n    return None\n");
  EXPECT_NE(space().content_hash(), before);

  write("other.yaml",
        "{name: o, family: torchscript, torchscript: {module: net.py}, "
        "parameters: [{name: w, choices: [a, b], values: {a: [1, 2], b: {deep: true}}}]}");
  const auto other = SearchSpace::load(dir_ / "other.yaml");
  EXPECT_EQ(other.torchscript().exports, dir_ / "other.export");  // the default folder
  EXPECT_EQ(other.resolve({{"w", "b"}}, "w"), (json{{"deep", true}}));
}

TEST_F(TorchScriptSpace, SpaceFileRefusals) {
  auto expect_refused = [&](const std::string& yaml, const std::string& fragment) {
    write("bad.yaml", yaml);
    try {
      SearchSpace::load(dir_ / "bad.yaml");
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_refused("{name: b, family: torchscript, parameters: [{name: w, choices: [1]}]}",
                 "add `torchscript: {module: ");
  expect_refused(
      "{name: b, family: torchscript, torchscript: {module: gone.py}, "
      "parameters: [{name: w, choices: [1]}]}",
      "gone.py does not exist");
  expect_refused(
      "{name: b, family: resnet, torchscript: {module: net.py}, "
      "parameters: [{name: B, choices: [8]}]}",
      "only family torchscript reads this block");
  expect_refused(
      "{name: b, family: torchscript, torchscript: {module: net.py, func: x}, "
      "parameters: [{name: w, choices: [1]}]}",
      "unknown key 'func'");
  expect_refused(
      "{name: b, family: torchscript, torchscript: {module: net.py, function: 2x}, "
      "parameters: [{name: w, choices: [1]}]}",
      "'2x' is not a Python function name");
  expect_refused(
      "{name: b, family: torchscript, torchscript: {module: net.py}, "
      "parameters: [{name: num_classes, choices: [1]}]}",
      "set by the export helper");
  expect_refused(
      "{name: b, family: torchscript, torchscript: {module: net.py}, "
      "parameters: [{name: w, choices: [1]}], model: {input_shape: [1, 2, 3]}}",
      "set by the export helper");
}

TEST_F(TorchScriptSpace, WrapsTheModuleLikeABuiltInNetwork) {
  seed_everything(1);
  TinyNet cpp_net(6, 4);
  add_export(script_twin(cpp_net), 4, input_, 6, 1234);

  auto net = build_model(space(), {{"width", 4}}, input_, 6);
  EXPECT_TRUE(net->is_training());
  EXPECT_EQ(net->feature_dim(), 32);
  const ModelCost cost = model_cost(space(), {{"width", 4}}, input_, 6);
  EXPECT_EQ(cost.macs, 1234);
  EXPECT_EQ(cost.params, 77);

  // The same parameters, in the same order, as the C++ network it was made from.
  ASSERT_EQ(net->parameters().size(), cpp_net.parameters().size());
  for (std::size_t i = 0; i < net->parameters().size(); ++i) {
    EXPECT_TRUE(net->parameters()[i].equal(cpp_net.parameters()[i]));
    EXPECT_TRUE(net->parameters()[i].requires_grad());
  }
  EXPECT_EQ(net->buffers().size(), cpp_net.buffers().size());

  const auto x = torch::randn({5, 3, 16, 16});
  net->eval();
  cpp_net.eval();
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::allclose(net->forward(x), cpp_net.forward(x)));
    EXPECT_TRUE(torch::allclose(net->features(x), cpp_net.features(x)));
    EXPECT_EQ(net->features(x).sizes(), (std::vector<int64_t>{5, 32}));
  }

  // train()/eval() reach the module: batch norm updates its running mean in train mode only.
  const auto mean = net->buffers()[0].clone();
  {
    torch::NoGradGuard no_grad;
    net->forward(x);
    EXPECT_TRUE(net->buffers()[0].equal(mean));
    net->train();
    net->forward(x);
    EXPECT_FALSE(net->buffers()[0].equal(mean));
  }

  // An optimizer step on the wrapper's parameters changes what the module computes.
  torch::optim::SGD sgd(net->parameters(), 0.1);
  net->eval();
  torch::Tensor before;
  {
    torch::NoGradGuard no_grad;
    before = net->forward(x);
  }
  net->train();
  sgd.zero_grad();
  net->forward(x).sum().backward();
  for (const auto& p : net->parameters()) EXPECT_TRUE(p.grad().defined());
  sgd.step();
  net->eval();
  torch::NoGradGuard no_grad;
  EXPECT_FALSE(torch::allclose(net->forward(x), before));

  // Channels-last weights (what the trainer sets) and to(): the module follows.
  const auto reference = net->forward(x);
  for (auto& p : net->parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
  net->to(torch::kCPU);
  net->to(torch::kDouble);
  EXPECT_EQ(net->parameters()[0].scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::allclose(
      net->forward(x.to(torch::kDouble).contiguous(torch::MemoryFormat::ChannelsLast)),
      reference.to(torch::kDouble), 1e-4, 1e-5));
  net->to(torch::kFloat);
  EXPECT_TRUE(prefers_channels_last(*net, torch::kCPU) ==
              prefers_channels_last(cpp_net, torch::kCPU));
}

/// The trainer trains the TorchScript twin as it trains the C++ network: same initial weights,
/// same seed, same data, same accuracy and losses.
TEST_F(TorchScriptSpace, TrainsToTheSameAccuracyAsItsCppTwin) {
  const Dataset train = synthetic_dataset(1200, 1, "synthetic/train");
  const Dataset test = synthetic_dataset(600, 2, "synthetic/test");
  seed_everything(5);
  TinyNet cpp_net(6, 8);
  add_export(script_twin(cpp_net), 8, input_, 6);
  auto ts_net = build_model(space(), {{"width", 8}}, input_, 6);

  TrainSettings settings;
  settings.learning_rate = 1e-2;
  settings.batch_size = 64;
  settings.epochs = 3;
  settings.augmentation.random_crop_padding = 2;
  TrainOptions options;
  options.device = "cpu";
  options.threads = 1;
  options.seed = 7;
  options.eval_batch_size = 256;

  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  Trainer cpp_trainer(settings, options);
  const TrainResult cpp = cpp_trainer.fit(cpp_net, train, test);
  auto t1 = Clock::now();
  Trainer ts_trainer(settings, options);
  const TrainResult ts = ts_trainer.fit(*ts_net, train, test);
  auto t2 = Clock::now();

  EXPECT_GE(cpp.final_accuracy, 0.9);
  EXPECT_NEAR(ts.final_accuracy, cpp.final_accuracy, 0.01);
  EXPECT_EQ(ts.memory_format, cpp.memory_format);
  ASSERT_EQ(ts.epochs.size(), cpp.epochs.size());
  for (std::size_t e = 0; e < cpp.epochs.size(); ++e) {
    EXPECT_NEAR(ts.epochs[e].train_loss, cpp.epochs[e].train_loss,
                1e-3 * cpp.epochs[e].train_loss + 1e-4);
  }
  // Features for the proxy stage, through the same trainer call.
  const auto f_cpp = cpp_trainer.features(cpp_net, test);
  const auto f_ts = ts_trainer.features(*ts_net, test);
  EXPECT_EQ(f_ts.sizes(), f_cpp.sizes());
  EXPECT_TRUE(torch::allclose(f_ts, f_cpp, 1e-2, 1e-3));
  const double s_cpp = std::chrono::duration<double>(t1 - t0).count();
  const double s_ts = std::chrono::duration<double>(t2 - t1).count();
  std::cout << "[ info ] accuracy C++ " << cpp.final_accuracy << " TorchScript "
            << ts.final_accuracy << "; fit " << s_cpp << " s vs " << s_ts << " s\n";
}

TEST_F(TorchScriptSpace, RefusesAMissingIndexOrConfiguration) {
  std::string e = build_error(4, input_, 6);
  EXPECT_NE(e.find("exports/index.json does not exist"), std::string::npos) << e;
  EXPECT_NE(e.find("python3 -m dataproxy.export --space "), std::string::npos) << e;
  EXPECT_NE(e.find("--input 3,16,16 --classes 6"), std::string::npos) << e;

  seed_everything(1);
  TinyNet cpp_net(6, 4);
  add_export(script_twin(cpp_net), 4, input_, 6);
  e = build_error(8, input_, 6);
  EXPECT_NE(e.find("configuration width8 of search space 'tiny_ts' is not in"), std::string::npos)
      << e;
  try {
    model_cost(space(), {{"width", 8}}, input_, 6);
    ADD_FAILURE() << "model_cost of an unexported configuration";
  } catch (const InvalidInput& err) {
    EXPECT_NE(std::string(err.what()).find("export every configuration"), std::string::npos);
  }

  write("exports/index.json", "{not json");
  EXPECT_THROW(build_model(space(), {{"width", 4}}, input_, 6), DataError);
}

TEST_F(TorchScriptSpace, RefusesAnExportForOtherDataOrAnotherModule) {
  seed_everything(1);
  TinyNet cpp_net(6, 4);
  add_export(script_twin(cpp_net), 4, input_, 6);
  std::string e = build_error(4, input_, 10);
  EXPECT_NE(e.find("was exported for input 3,16,16 with 6 classes"), std::string::npos) << e;
  EXPECT_NE(e.find("needs input 3,16,16 with 10 classes"), std::string::npos) << e;
  e = build_error(4, {1, 28, 28}, 6);
  EXPECT_NE(e.find("needs input 1,28,28 with 6 classes"), std::string::npos) << e;

  // The index records the module it came from: an edited module needs a new export.
  write("net.py", "def build(config):\n    return 2\n");
  e = build_error(4, input_, 6);
  EXPECT_NE(e.find("changed since its networks were exported"), std::string::npos) << e;
  write("net.py", "def build(config):\n    ...\n");
  index_["seed"] = 4;
  save_index();
  e = build_error(4, input_, 6);
  EXPECT_NE(e.find("exported with function 'build' and seed 4"), std::string::npos) << e;
}

TEST_F(TorchScriptSpace, RefusesAMissingChangedOrCorruptFile) {
  seed_everything(1);
  TinyNet cpp_net(6, 4);
  add_export(script_twin(cpp_net), 4, input_, 6);
  const fs::path file = dir_ / "exports" / "width4.pt";
  const std::string bytes = read_file(file);

  write("exports/width4.pt", bytes.substr(0, bytes.size() / 2));
  try {
    build_model(space(), {{"width", 4}}, input_, 6);
    ADD_FAILURE() << "a changed file was loaded";
  } catch (const DataError& err) {
    EXPECT_NE(std::string(err.what()).find("the file was changed or damaged after export"),
              std::string::npos)
        << err.what();
  }

  // A damaged file whose index entry matches it: refused by the loader, as data.
  index_["configs"]["width4"][0]["sha256"] = sha256_file(file);
  save_index();
  try {
    build_model(space(), {{"width", 4}}, input_, 6);
    ADD_FAILURE() << "a damaged file was loaded";
  } catch (const DataError& err) {
    EXPECT_NE(std::string(err.what()).find("does not load as TorchScript"), std::string::npos)
        << err.what();
  }

  fs::remove(file);
  try {
    build_model(space(), {{"width", 4}}, input_, 6);
    ADD_FAILURE() << "a missing file was loaded";
  } catch (const DataError& err) {
    EXPECT_NE(std::string(err.what()).find("is missing"), std::string::npos) << err.what();
  }
}

TEST_F(TorchScriptSpace, RefusesModulesThatDoNotFitTheData) {
  seed_everything(1);
  TinyNet cpp_net(6, 4);
  // No features method.
  add_export(script_twin(cpp_net, R"(
def forward(self, x):
    return torch.zeros([x.size(0), 6])
)"),
             4, input_, 6);
  std::string e = build_error(4, input_, 6);
  EXPECT_NE(e.find("has no `features` method"), std::string::npos) << e;

  // Logits for another number of classes than the index says.
  index_["configs"] = json::object();
  add_export(script_twin(cpp_net), 4, input_, 5);
  e = build_error(4, input_, 5);
  EXPECT_NE(e.find("to [1, 6], but this data has 5 classes"), std::string::npos) << e;

  // Features that are not one vector per image.
  index_["configs"] = json::object();
  add_export(script_twin(cpp_net, R"(
def features(self, x):
    return x
def forward(self, x):
    return torch.zeros([x.size(0), 6])
)"),
             4, input_, 6);
  e = build_error(4, input_, 6);
  EXPECT_NE(e.find("features() returns [1, 3, 16, 16]"), std::string::npos) << e;

  // Input of another channel count than the network's first convolution takes.
  index_["configs"] = json::object();
  add_export(script_twin(cpp_net), 4, {1, 16, 16}, 6);
  e = build_error(4, {1, 16, 16}, 6);
  EXPECT_NE(e.find("fails on one zero image of shape [1, 1,16,16]"), std::string::npos) << e;
}

TEST_F(TorchScriptSpace, RefusesParametersWhoseNamesCollide) {
  torch::jit::Module m("Clash");
  m.register_attribute("training", c10::BoolType::get(), true);
  m.register_parameter("a_b", torch::zeros({1}), false);
  torch::jit::Module sub("Sub");
  sub.register_attribute("training", c10::BoolType::get(), true);
  sub.register_parameter("b", torch::zeros({1}), false);
  m.register_module("a", sub);
  m.define("def features(self, x):\n    return x\ndef forward(self, x):\n    return x\n");
  try {
    models::wrap_torchscript(m, input_, 6, "clash.pt");
    ADD_FAILURE() << "colliding names were accepted";
  } catch (const InvalidInput& err) {
    EXPECT_NE(std::string(err.what()).find("both named 'a_b'"), std::string::npos) << err.what();
  }
}

}  // namespace
}  // namespace dataproxy
