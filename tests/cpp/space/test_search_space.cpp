#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/search_space.h"

namespace dataproxy {
namespace {

fs::path spaces_dir() { return fs::path(DATAPROXY_TEST_SOURCE_DIR) / "search_spaces"; }

/// The message of the InvalidInput that `fn` throws, or a failure when it throws none.
template <typename Fn>
std::string invalid_input_message(Fn fn) {
  try {
    fn();
  } catch (const InvalidInput& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected InvalidInput";
  return "";
}

const char* kSmall = R"(
name: small
family: resnet
parameters:
  - name: B
    choices: [8, 16, 32]
  - name: K
    choices: [3, 5]
model:
  blocks_per_stage: 1
)";

TEST(SearchSpace, ResNet20HasTheTwelvePaperConfigsInLexicographicOrder) {
  const auto sp = SearchSpace::load(spaces_dir() / "resnet20.yaml");
  EXPECT_EQ(sp.name(), "resnet20");
  EXPECT_EQ(sp.family(), "resnet");
  EXPECT_NE(sp.notes().find("B*M^2"), std::string::npos);
  ASSERT_EQ(sp.size(), 12u);
  const auto configs = sp.enumerate();
  ASSERT_EQ(configs.size(), 12u);
  EXPECT_EQ(sp.config_id(configs.front()), "B8_K3_M2");
  EXPECT_EQ(sp.config_id(configs[1]), "B8_K3_M4");
  EXPECT_EQ(sp.config_id(configs[2]), "B8_K5_M2");
  EXPECT_EQ(sp.config_id(configs.back()), "B32_K5_M4");
  EXPECT_EQ(configs[4], (json{{"B", 16}, {"K", 3}, {"M", 2}}));
  EXPECT_EQ(sp.model_settings().at("blocks_per_stage"), 3);
  EXPECT_FALSE(sp.model_settings().contains("B"));
  EXPECT_EQ(sp.training().optimizer, "adam");
}

TEST(SearchSpace, EfficientNetNamedChoicesResolveToLists) {
  const auto sp = SearchSpace::load(spaces_dir() / "efficientnet_b0.yaml");
  EXPECT_EQ(sp.family(), "efficientnet");
  ASSERT_EQ(sp.size(), 12u);
  const auto configs = sp.enumerate();
  EXPECT_EQ(sp.config_id(configs.front()), "r1_k1_f1");
  EXPECT_EQ(sp.config_id(configs.back()), "r2_k2_f3");
  EXPECT_EQ(sp.resolve(configs.back(), "f"), json::array({32, 16, 24, 40, 80, 112, 192}));
  EXPECT_EQ(sp.resolve(configs.front(), "r"), json::array({1, 2, 2, 2, 2, 3, 1}));
  EXPECT_EQ(sp.setting(configs.front(), "k"), json::array({3, 3, 3, 3, 3, 3, 3}));
  EXPECT_EQ(sp.setting(configs.front(), "head_channels"), 1280);
  EXPECT_NE(sp.notes().find("input width of stage"), std::string::npos);
}

TEST(SearchSpace, TinySpaceHasTwelveConfigs) {
  const auto sp = SearchSpace::load(spaces_dir() / "resnet_tiny.yaml");
  EXPECT_EQ(sp.size(), 12u);
  EXPECT_EQ(sp.model_settings().at("blocks_per_stage"), 1);
}

TEST(SearchSpace, DefaultsFillUnsetModelSettings) {
  const auto sp = SearchSpace::parse(kSmall, "small.yaml");
  EXPECT_EQ(sp.size(), 6u);
  EXPECT_EQ(sp.model_settings().at("M"), 2);
  EXPECT_EQ(sp.model_settings().at("stages"), 3);
  EXPECT_EQ(sp.setting({{"B", 8}, {"K", 5}}, "K"), 5);
  EXPECT_EQ(sp.setting({{"B", 8}, {"K", 5}}, "M"), 2);
  EXPECT_THROW(sp.setting({{"B", 8}, {"K", 5}}, "depth"), InvalidInput);
  EXPECT_EQ(sp.training().epochs, TrainSettings{}.epochs);
}

TEST(SearchSpace, ValidateAcceptsIntegralFloatsAndReturnsTheCanonicalChoice) {
  const auto sp = SearchSpace::load(spaces_dir() / "resnet20.yaml");
  const Config c = sp.validate({{"B", 16.0}, {"K", 3}, {"M", 4}});
  EXPECT_TRUE(c.at("B").is_number_integer());
  EXPECT_EQ(sp.config_id(c), "B16_K3_M4");
  EXPECT_EQ(sp.validate({{"B", 16}, {"K", 3}, {"M", 4}}), c);
}

TEST(SearchSpace, ValidateRejectsUnknownMissingAndOutOfDomainValues) {
  const auto sp = SearchSpace::load(spaces_dir() / "resnet20.yaml");
  std::string msg = invalid_input_message([&] {
    sp.validate({{"B", 16}, {"K", 3}, {"M", 4}, {"depth", 20}});
  });
  EXPECT_NE(msg.find("unknown parameter 'depth'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("B, K, M"), std::string::npos) << msg;

  msg = invalid_input_message([&] { sp.validate({{"B", 16}, {"K", 3}}); });
  EXPECT_NE(msg.find("missing parameter 'M'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2, 4]"), std::string::npos) << msg;

  msg = invalid_input_message([&] { sp.validate({{"B", 12}, {"K", 3}, {"M", 4}}); });
  EXPECT_NE(msg.find("B = 12"), std::string::npos) << msg;
  EXPECT_NE(msg.find("allowed choices: [8, 16, 32]"), std::string::npos) << msg;

  msg = invalid_input_message([&] { sp.validate({{"B", "16"}, {"K", 3}, {"M", 4}}); });
  EXPECT_NE(msg.find("B = \"16\""), std::string::npos) << msg;

  msg = invalid_input_message([&] {
    sp.validate({{"B", 16}, {"K", 3}, {"M", 4}, {"_dataproxy", json::object()}});
  });
  EXPECT_NE(msg.find("_dataproxy"), std::string::npos) << msg;

  EXPECT_THROW(sp.validate(json::array({16, 3, 4})), InvalidInput);
}

TEST(SearchSpace, ValidateNamedChoices) {
  const auto sp = SearchSpace::load(spaces_dir() / "efficientnet_b0.yaml");
  EXPECT_EQ(sp.config_id(sp.validate({{"r", "r2"}, {"k", "k1"}, {"f", "f2"}})), "r2_k1_f2");
  const std::string msg = invalid_input_message([&] {
    sp.validate({{"r", "r3"}, {"k", "k1"}, {"f", "f2"}});
  });
  EXPECT_NE(msg.find("[\"r1\", \"r2\"]"), std::string::npos) << msg;
}

TEST(SearchSpace, ExportsToNniAndOptuna) {
  const auto sp = SearchSpace::load(spaces_dir() / "resnet20.yaml");
  const json nni = sp.to_nni();
  EXPECT_EQ(nni, json::parse(R"({"B": {"_type": "choice", "_value": [8, 16, 32]},
                                 "K": {"_type": "choice", "_value": [3, 5]},
                                 "M": {"_type": "choice", "_value": [2, 4]}})"));
  const json optuna = sp.to_optuna();
  EXPECT_EQ(optuna.at("B"), json::parse(R"({"name": "CategoricalDistribution",
                                            "attributes": {"choices": [8, 16, 32]}})"));
  EXPECT_EQ(optuna.size(), 3u);
  const auto eff = SearchSpace::load(spaces_dir() / "efficientnet_b0.yaml");
  EXPECT_EQ(eff.to_nni().at("f").at("_value"), json::array({"f1", "f2", "f3"}));
}

TEST(SearchSpace, ContentHashIgnoresNotesAndFormattingButNotSettings) {
  const auto a = SearchSpace::parse(kSmall, "a.yaml");
  const auto b = SearchSpace::parse(std::string(kSmall) + "notes: any text\n", "b.yaml");
  const auto c = SearchSpace::parse(
      "{name: small, family: resnet, parameters: [{name: B, choices: [8, "
      "16, 32]}, {name: K, choices: [3, 5]}], model: {blocks_per_stage: 1, "
      "M: 2}}",
      "c.yaml");
  const auto d = SearchSpace::parse(std::string(kSmall) + "training: {epochs: 5}\n", "d.yaml");
  EXPECT_EQ(a.content_hash().size(), 64u);
  EXPECT_EQ(a.content_hash(), b.content_hash());
  EXPECT_EQ(a.content_hash(), c.content_hash());
  EXPECT_NE(a.content_hash(), d.content_hash());
  EXPECT_EQ(a.content_hash(), sha256_hex([&] {
              json j = a.to_json();
              j.erase("notes");
              for (auto& p : j["parameters"]) p.erase("description");
              return j.dump();
            }()));
}

TEST(SearchSpace, TrainingSettingsAreParsed) {
  const auto sp = SearchSpace::parse(std::string(kSmall) + R"(
training:
  optimizer: sgd
  learning_rate: 0.1
  momentum: 0.8
  batch_size: 32
  epochs: 7
  schedule: step
  step_milestones: [3, 5]
  step_gamma: 0.5
  augmentation: {random_crop_padding: 2, horizontal_flip: false}
)",
                                     "t.yaml");
  const auto& t = sp.training();
  EXPECT_EQ(t.optimizer, "sgd");
  EXPECT_DOUBLE_EQ(t.learning_rate, 0.1);
  EXPECT_DOUBLE_EQ(t.momentum, 0.8);
  EXPECT_EQ(t.batch_size, 32);
  EXPECT_EQ(t.epochs, 7);
  EXPECT_EQ(t.step_milestones, (std::vector<int64_t>{3, 5}));
  EXPECT_DOUBLE_EQ(t.step_gamma, 0.5);
  EXPECT_EQ(t.augmentation.random_crop_padding, 2);
  EXPECT_FALSE(t.augmentation.horizontal_flip);
  EXPECT_EQ(t.to_json().at("schedule"), "step");
}

struct BadCase {
  std::string yaml;
  std::vector<std::string> expected;  ///< substrings of the message besides the file name
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.yaml; }

class MalformedSpace : public ::testing::TestWithParam<BadCase> {};

TEST_P(MalformedSpace, IsRejectedNamingTheFileAndTheProblem) {
  const fs::path dir =
      fs::temp_directory_path() / ("dataproxy_space_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "bad.yaml";
  {
    std::ofstream out(file);
    out << GetParam().yaml;
  }
  const std::string msg = invalid_input_message([&] { SearchSpace::load(file); });
  fs::remove_all(dir);
  RecordProperty("message", msg);
  EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
  for (const auto& s : GetParam().expected) EXPECT_NE(msg.find(s), std::string::npos) << msg;
}

const std::string kHead = "name: x\nfamily: resnet\n";

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedSpace,
    ::testing::Values(
        BadCase{"name: x\nfamily: resnet\nparameters: [{name: B, choices: [8, 16]\n",
                {"not valid YAML", "bad.yaml:"}},
        BadCase{kHead + "parameters:\n  - name: B\n    choices: [8]\ncolour: red\n",
                {"bad.yaml:6:1", "unknown key 'colour'", "known keys"}},
        BadCase{kHead + "parameters:\n  - name: B\n    choices: []\n",
                {"parameters.B.choices", "non-empty"}},
        BadCase{kHead + "parameters:\n  - {name: B, choices: [8]}\n  - {name: B, choices: [4]}\n",
                {"duplicate parameter", "parameters.B"}},
        BadCase{kHead + "parameters:\n  - {name: B, choices: [8, 8.0]}\n", {"duplicate choice"}},
        BadCase{kHead + "parameters:\n  - {name: B, choices: [8, big]}\n",
                {"named choice 'big' has no value", "values"}},
        BadCase{kHead + "parameters:\n  - {name: depth, choices: [20]}\n",
                {"not a setting of family resnet", "B, K, M"}},
        BadCase{kHead + "parameters:\n  - {name: K, choices: [3, 4]}\n",
                {"parameters.K.choices[1]", "odd"}},
        BadCase{kHead + "parameters:\n  - {name: B, choices: [8]}\ntraining:\n  epochs: many\n",
                {"bad.yaml:6:11", "training.epochs", "expected an integer", "'many'"}},
        BadCase{kHead + "parameters:\n  - {name: B, choices: [8]}\ntraining:\n  optimizer: adamw\n",
                {"training.optimizer", "'adamw'", "adam, sgd"}},
        BadCase{kHead + "parameters:\n  - {name: B, choices: [8]}\nmodel:\n  B: 4\n",
                {"model.B", "also a searched parameter"}},
        BadCase{kHead + "parameters:\n  - {name: B, choices: [8]}\nmodel:\n  widths: 4\n",
                {"model.widths", "unknown setting"}},
        BadCase{kHead + "parameters:\n  - {name: B, choices: [8]}\nmodel:\n  feature_stage: 5\n",
                {"feature_stage 5", "B8"}},
        BadCase{"name: x\nfamily: vgg\nparameters:\n  - {name: B, choices: [8]}\n",
                {"unknown family 'vgg'", "resnet, efficientnet"}},
        BadCase{"name: x\nfamily: efficientnet\nparameters:\n  - {name: r, choices: [r1], values: "
                "{r1: [1, 2]}}\n",
                {"one entry per stage"}},
        BadCase{"family: resnet\nparameters:\n  - {name: B, choices: [8]}\n",
                {"`name`", "missing"}},
        BadCase{kHead + "parameters:\n  - {name: B, choices: [8]}\ntraining:\n  schedule: step\n",
                {"step_milestones"}}));

}  // namespace
}  // namespace dataproxy
