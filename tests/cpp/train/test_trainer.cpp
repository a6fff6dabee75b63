#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "dataproxy/candidate.h"
#include "dataproxy/error.h"
#include "dataproxy/trainer.h"
#include "synthetic.h"

namespace dataproxy {
namespace {

using testing::synthetic_dataset;
using testing::TinyNet;

TrainSettings small_settings() {
  TrainSettings s;
  s.optimizer = "adam";
  s.learning_rate = 1e-2;
  s.batch_size = 64;
  s.epochs = 4;
  s.schedule = "cosine";
  s.augmentation.random_crop_padding = 2;
  s.augmentation.horizontal_flip = true;
  return s;
}

TrainOptions cpu_options(uint64_t seed) {
  TrainOptions o;
  o.device = "cpu";
  o.threads = 1;
  o.seed = seed;
  o.eval_batch_size = 256;
  return o;
}

std::shared_ptr<TinyNet> seeded_net(uint64_t seed) {
  seed_everything(seed);
  return std::make_shared<TinyNet>(6);
}

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    train_ = new Dataset(synthetic_dataset(1200, 1, "synthetic/train"));
    test_ = new Dataset(synthetic_dataset(600, 2, "synthetic/test"));
  }
  static void TearDownTestSuite() {
    delete train_;
    delete test_;
  }
  static Dataset* train_;
  static Dataset* test_;
};
Dataset* TrainerTest::train_ = nullptr;
Dataset* TrainerTest::test_ = nullptr;

TEST_F(TrainerTest, LearnsASyntheticTask) {
  auto net = seeded_net(3);
  Trainer trainer(small_settings(), cpu_options(3));
  auto result = trainer.fit(*net, *train_, *test_);
  ASSERT_EQ(result.epochs.size(), 4u);
  EXPECT_GE(result.final_accuracy, 0.95);
  EXPECT_EQ(result.final_accuracy, result.epochs.back().test_accuracy);
  EXPECT_FALSE(result.stopped_early);
  EXPECT_EQ(result.device, "cpu");
  EXPECT_LT(result.epochs.back().train_loss, result.epochs.front().train_loss);
  for (const auto& e : result.epochs) {
    EXPECT_GT(e.seconds, 0);
    EXPECT_GT(e.images_per_second, 0);
    EXPECT_GE(e.test_accuracy, 0);
  }
  EXPECT_TRUE(net->is_training());

  auto predicted = trainer.predict(*net, *test_);
  EXPECT_EQ(predicted.scalar_type(), torch::kInt64);
  EXPECT_EQ(predicted.sizes(), torch::IntArrayRef({600}));
  EXPECT_DOUBLE_EQ(predicted.eq(test_->labels).to(torch::kDouble).mean().item<double>(),
                   result.final_accuracy);
  EXPECT_DOUBLE_EQ(trainer.evaluate(*net, *test_), result.final_accuracy);
  auto features = trainer.features(*net, *test_);
  EXPECT_EQ(features.scalar_type(), torch::kFloat);
  EXPECT_EQ(features.sizes(), torch::IntArrayRef({600, 64}));
  EXPECT_TRUE(features.device().is_cpu());
  EXPECT_TRUE(net->is_training()) << "evaluation must restore the module's mode";
  // Features of a sample do not depend on the batch it is computed in (eval mode).
  Trainer small_batches(small_settings(), [] {
    auto o = cpu_options(3);
    o.eval_batch_size = 7;
    return o;
  }());
  small_batches.set_normalization(trainer.normalization());
  EXPECT_TRUE(torch::allclose(small_batches.features(*net, *test_), features, 1e-4, 1e-5));
}

TEST_F(TrainerTest, SameSeedSameResultOtherSeedDiffers) {
  auto settings = small_settings();
  settings.epochs = 1;
  auto run = [&](uint64_t seed) {
    auto net = seeded_net(seed);
    Trainer trainer(settings, cpu_options(seed));
    auto result = trainer.fit(*net, *train_, *test_);
    return std::make_pair(net, result);
  };
  auto [a, ra] = run(11);
  auto [b, rb] = run(11);
  auto [c, rc] = run(12);
  auto pa = a->parameters(), pb = b->parameters(), pc = c->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  bool any_differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::equal(pa[i], pb[i])) << "parameter " << i;
    any_differs = any_differs || !torch::equal(pa[i], pc[i]);
  }
  EXPECT_TRUE(any_differs);
  EXPECT_EQ(ra.final_accuracy, rb.final_accuracy);
  EXPECT_EQ(ra.epochs[0].train_loss, rb.epochs[0].train_loss);
  EXPECT_NE(ra.epochs[0].train_loss, rc.epochs[0].train_loss);
}

TEST_F(TrainerTest, SameInitialWeightsDifferentSeedChangesOrderAndCrops) {
  auto settings = small_settings();
  settings.epochs = 1;
  auto a = seeded_net(5), b = seeded_net(5);
  Trainer(settings, cpu_options(1)).fit(*a, *train_, *test_);
  Trainer(settings, cpu_options(2)).fit(*b, *train_, *test_);
  EXPECT_FALSE(torch::equal(a->parameters()[0], b->parameters()[0]));
}

TEST_F(TrainerTest, CallbackStopsTraining) {
  auto settings = small_settings();
  settings.epochs = 5;
  auto net = seeded_net(1);
  Trainer trainer(settings, cpu_options(1));
  std::vector<int64_t> seen;
  auto result = trainer.fit(*net, *train_, *test_, [&](const EpochStats& e) {
    seen.push_back(e.epoch);
    return e.epoch < 2;
  });
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(result.epochs.size(), 2u);
  EXPECT_TRUE(result.stopped_early);
  EXPECT_EQ(result.final_accuracy, result.epochs.back().test_accuracy);
}

TEST_F(TrainerTest, EvaluatesOnlyAtTheEndWhenAsked) {
  auto settings = small_settings();
  settings.epochs = 2;
  auto options = cpu_options(1);
  options.evaluate_each_epoch = false;
  auto net = seeded_net(1);
  auto result = Trainer(settings, options).fit(*net, *train_, *test_);
  EXPECT_EQ(result.epochs[0].test_accuracy, -1);
  EXPECT_GE(result.epochs[1].test_accuracy, 0);
  // A stop after the first epoch still yields a final accuracy.
  auto net2 = seeded_net(1);
  auto stopped = Trainer(settings, options).fit(*net2, *train_, *test_, [](const EpochStats&) {
    return false;
  });
  EXPECT_TRUE(stopped.stopped_early);
  EXPECT_GE(stopped.final_accuracy, 0);
}

TEST_F(TrainerTest, EvaluatesEpochsOnASeededSubsetAndTheWholeSplitAtTheEnd) {
  auto settings = small_settings();
  settings.epochs = 3;
  auto with_subset = cpu_options(4);
  with_subset.eval_subset = 150;
  auto whole = cpu_options(4);
  whole.eval_subset = 0;

  auto net = seeded_net(4);
  Trainer trainer(settings, with_subset);
  auto result = trainer.fit(*net, *train_, *test_);
  ASSERT_EQ(result.epochs.size(), 3u);
  EXPECT_EQ(result.epochs[0].eval_samples, 150);
  EXPECT_EQ(result.epochs[1].eval_samples, 150);
  EXPECT_EQ(result.epochs[2].eval_samples, 600) << "the last epoch is evaluated on the whole split";
  EXPECT_EQ(result.final_eval_samples, 600);
  for (const auto& e : result.epochs) {
    EXPECT_GE(e.test_accuracy, 0);
    EXPECT_GT(e.eval_seconds, 0);
  }
  EXPECT_NEAR(
      result.eval_seconds,
      result.epochs[0].eval_seconds + result.epochs[1].eval_seconds + result.epochs[2].eval_seconds,
      1e-9);
  // A subset accuracy is a multiple of 1/150.
  const double hits = result.epochs[0].test_accuracy * 150;
  EXPECT_NEAR(hits, std::round(hits), 1e-9);

  // Evaluating on a subset changes nothing in training: the final accuracy, what gets ranked,
  // is the whole split's and the same with and without the subset.
  auto net_whole = seeded_net(4);
  auto reference = Trainer(settings, whole).fit(*net_whole, *train_, *test_);
  EXPECT_EQ(reference.epochs[0].eval_samples, 600);
  EXPECT_EQ(result.final_accuracy, reference.final_accuracy);
  EXPECT_TRUE(torch::equal(result.final_correct, reference.final_correct));
  EXPECT_DOUBLE_EQ(trainer.evaluate(*net, *test_), result.final_accuracy);

  // The subset is fixed by the seed: the same run gives the same curve.
  auto net_again = seeded_net(4);
  auto again = Trainer(settings, with_subset).fit(*net_again, *train_, *test_);
  for (size_t i = 0; i < again.epochs.size(); ++i) {
    EXPECT_EQ(again.epochs[i].test_accuracy, result.epochs[i].test_accuracy);
  }

  // A subset as large as the split is the split.
  auto large = cpu_options(4);
  large.eval_subset = 600;
  auto net_large = seeded_net(4);
  settings.epochs = 2;
  auto all = Trainer(settings, large).fit(*net_large, *train_, *test_);
  EXPECT_EQ(all.epochs[0].eval_samples, 600);
}

TEST_F(TrainerTest, StoppedOnASubsetEpochKeepsThatAccuracy) {
  auto options = cpu_options(1);
  options.eval_subset = 100;
  auto net = seeded_net(1);
  auto result =
      Trainer(small_settings(), options).fit(*net, *train_, *test_, [](const EpochStats&) {
        return false;
      });
  EXPECT_TRUE(result.stopped_early);
  EXPECT_EQ(result.final_eval_samples, 100) << "a pruned run is not evaluated again";
  EXPECT_EQ(result.final_accuracy, result.epochs.back().test_accuracy);
}

TEST_F(TrainerTest, EvaluationResultsAreOrdinaryTensors) {
  // Evaluation runs under InferenceMode; what it returns must still take in-place updates.
  auto net = seeded_net(2);
  auto settings = small_settings();
  settings.epochs = 1;
  Trainer trainer(settings, cpu_options(2));
  trainer.fit(*net, *train_, *test_);
  auto features = trainer.features(*net, *test_);
  EXPECT_FALSE(features.is_inference());
  EXPECT_NO_THROW(features.sub_(features.mean(0)));
  auto predicted = trainer.predict(*net, *test_);
  EXPECT_FALSE(predicted.is_inference());
  EXPECT_NO_THROW(predicted.add_(1));
  // A later training step on the same network still works (no inference tensors in the model).
  EXPECT_NO_THROW(trainer.fit(*net, *train_, *test_));
}

TEST(EvalBatchSize, ChosenForTheDeviceAndNetworkUnlessGiven) {
  TrainOptions o;
  TinyNet narrow(10, 4), wide(10, 32);
  const std::vector<int64_t> small{3, 16, 16}, large{3, 64, 64};
  EXPECT_EQ(eval_batch_size_for(o, torch::Device(torch::kCUDA, 0), narrow, small), 2000);
  const int64_t cpu = eval_batch_size_for(o, torch::Device(torch::kCPU), narrow, small);
  EXPECT_GE(cpu, 16);
  EXPECT_LE(cpu, 1000);
  EXPECT_EQ(cpu % 8, 0);
  // A wider stem or larger images make each image's activation larger: never a larger batch,
  // and the widest network on the largest images gets the floor of 16 on any machine's L2.
  EXPECT_LE(eval_batch_size_for(o, torch::Device(torch::kCPU), wide, small), cpu);
  EXPECT_LE(eval_batch_size_for(o, torch::Device(torch::kCPU), narrow, large), cpu);
  EXPECT_LT(eval_batch_size_for(o, torch::Device(torch::kCPU), wide, large), cpu);
  const std::vector<int64_t> giant{3, 1024, 1024};
  EXPECT_EQ(eval_batch_size_for(o, torch::Device(torch::kCPU), wide, giant), 16);
  o.eval_batch_size = 64;
  EXPECT_EQ(eval_batch_size_for(o, torch::Device(torch::kCPU), wide, large), 64);
  EXPECT_EQ(eval_batch_size_for(o, torch::Device(torch::kCUDA, 0), wide, large), 64);
}

TEST_F(TrainerTest, MaxStepsTrainsExactlyThatManyStepsAndKeepsCorrectness) {
  // 1200 samples, batch 64: 19 batches an epoch. 30 steps = one epoch and 11 batches.
  auto options = cpu_options(2);
  options.max_steps = 30;
  auto net = seeded_net(2);
  auto result = Trainer(small_settings(), options).fit(*net, *train_, *test_);
  EXPECT_EQ(result.steps, 30);
  EXPECT_EQ(result.samples_seen, 1200 + 11 * 64);
  ASSERT_EQ(result.epochs.size(), 2u);
  ASSERT_TRUE(result.final_correct.defined());
  ASSERT_EQ(result.final_correct.size(0), test_->size());
  EXPECT_DOUBLE_EQ(result.final_correct.to(torch::kDouble).mean().item<double>(),
                   result.final_accuracy);
  // Whole epochs count their steps too.
  auto whole = Trainer(small_settings(), cpu_options(2)).fit(*seeded_net(2), *train_, *test_);
  EXPECT_EQ(whole.steps, 4 * 19);
  EXPECT_EQ(whole.samples_seen, 4 * 1200);
  options.max_steps = -1;
  EXPECT_THROW(Trainer(small_settings(), options), InvalidInput);
}

TEST_F(TrainerTest, EmptyTestSplitSkipsEvaluation) {
  auto settings = small_settings();
  settings.epochs = 1;
  auto net = seeded_net(1);
  auto result = Trainer(settings, cpu_options(1)).fit(*net, *train_, Dataset{});
  EXPECT_EQ(result.final_accuracy, -1);
  EXPECT_EQ(result.epochs[0].test_accuracy, -1);
}

TEST_F(TrainerTest, SgdAndStepScheduleTrain) {
  auto settings = small_settings();
  settings.optimizer = "sgd";
  settings.learning_rate = 0.05;
  settings.schedule = "step";
  settings.step_milestones = {2};
  settings.epochs = 3;
  auto net = seeded_net(4);
  auto result = Trainer(settings, cpu_options(4)).fit(*net, *train_, *test_);
  EXPECT_GE(result.final_accuracy, 0.8);
}

TEST_F(TrainerTest, RefusesLabelsOutOfRange) {
  auto settings = small_settings();
  settings.epochs = 1;
  Trainer trainer(settings, cpu_options(1));
  auto net = seeded_net(1);
  Dataset bad = *train_;
  bad.labels = train_->labels.clone();
  bad.labels[5] = 6;
  EXPECT_THROW(trainer.fit(*net, bad, *test_), InvalidInput);
  bad.labels[5] = -1;
  EXPECT_THROW(trainer.fit(*net, bad, *test_), InvalidInput);
  Dataset bad_test = *test_;
  bad_test.labels = test_->labels.clone();
  bad_test.labels[0] = 9;
  EXPECT_THROW(trainer.fit(*net, *train_, bad_test), InvalidInput);
  try {
    trainer.fit(*net, bad, *test_);
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("synthetic/train"), std::string::npos) << e.what();
  }
}

TEST_F(TrainerTest, RefusesBadDataAndSettings) {
  auto settings = small_settings();
  auto net = seeded_net(1);
  Trainer trainer(settings, cpu_options(1));
  Dataset floats = *train_;
  floats.images = train_->images.to(torch::kFloat);
  EXPECT_THROW(trainer.fit(*net, floats, *test_), InvalidInput);
  Dataset wrong_shape = *test_;
  wrong_shape.images = torch::zeros({600, 3, 8, 8}, torch::kUInt8);
  EXPECT_THROW(trainer.fit(*net, *train_, wrong_shape), InvalidInput);
  EXPECT_THROW(trainer.predict(*net, *test_), InvalidInput) << "no normalisation yet";

  auto bad = settings;
  bad.optimizer = "adagrad";
  EXPECT_THROW(Trainer(bad, cpu_options(1)), InvalidInput);
  bad = settings;
  bad.schedule = "linear";
  EXPECT_THROW(Trainer(bad, cpu_options(1)), InvalidInput);
  auto options = cpu_options(1);
  options.batch_size = -1;
  EXPECT_THROW(Trainer(settings, options), InvalidInput);
  options = cpu_options(1);
  options.eval_subset = -1;
  EXPECT_THROW(Trainer(settings, options), InvalidInput);
  options = cpu_options(1);
  options.eval_batch_size = -1;
  EXPECT_THROW(Trainer(settings, options), InvalidInput);
}

TEST_F(TrainerTest, EmitsEpochEventsAsJsonLines) {
  auto settings = small_settings();
  settings.epochs = 2;
  std::ostringstream out;
  auto reporter = make_reporter(ReportMode::jsonl, &out);
  auto net = seeded_net(1);
  Trainer(settings, cpu_options(1), *reporter).fit(*net, *train_, *test_);
  std::istringstream in(out.str());
  std::string line;
  int epochs = 0, progress = 0;
  while (std::getline(in, line)) {
    auto e = nlohmann::json::parse(line);
    ASSERT_TRUE(e.is_object());
    if (e["event"] == "epoch") {
      ++epochs;
      EXPECT_EQ(e["epoch"], epochs);
      EXPECT_EQ(e["epochs"], 2);
      for (const char* key :
           {"train_loss", "train_accuracy", "test_accuracy", "seconds", "images_per_second"}) {
        EXPECT_TRUE(e[key].is_number()) << key << " in " << line;
      }
    } else {
      ASSERT_EQ(e["event"], "progress") << line;
      ++progress;
      EXPECT_TRUE(e["loss"].is_number()) << line;
      EXPECT_TRUE(e["done"].is_number_integer()) << line;
    }
  }
  EXPECT_EQ(epochs, 2);
  EXPECT_GE(progress, 1);
}

TEST_F(TrainerTest, MemoryFormatFollowsTheNetworksWidthUnlessForced) {
  const torch::Device cpu(torch::kCPU);
  auto settings = small_settings();
  settings.epochs = 1;
  auto conv_weight = [](TinyNet& net) { return net.named_parameters()["conv1.weight"]; };

  seed_everything(4);
  auto narrow = std::make_shared<TinyNet>(6, 4);
  EXPECT_FALSE(prefers_channels_last(*narrow, cpu));
  auto r = Trainer(settings, cpu_options(4)).fit(*narrow, *train_, *test_);
  EXPECT_EQ(r.memory_format, MemoryFormat::kContiguous);
  EXPECT_TRUE(conv_weight(*narrow).is_contiguous());

  auto wide = seeded_net(4);
  EXPECT_TRUE(prefers_channels_last(*wide, cpu));
  auto rw = Trainer(settings, cpu_options(4)).fit(*wide, *train_, *test_);
  EXPECT_EQ(rw.memory_format, MemoryFormat::kChannelsLast);
  EXPECT_TRUE(conv_weight(*wide).is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_FALSE(conv_weight(*wide).is_contiguous());

  // Forcing a layout trains the same network to the same place, up to rounding.
  auto forced = seeded_net(4);
  auto options = cpu_options(4);
  options.memory_format = MemoryFormat::kContiguous;
  auto rf = Trainer(settings, options).fit(*forced, *train_, *test_);
  EXPECT_EQ(rf.memory_format, MemoryFormat::kContiguous);
  EXPECT_TRUE(conv_weight(*forced).is_contiguous());
  EXPECT_NEAR(rf.epochs[0].train_loss, rw.epochs[0].train_loss,
              1e-3 * std::abs(rw.epochs[0].train_loss));
  // The same Trainer converts back when a later fit asks for the other layout.
  options.memory_format = MemoryFormat::kChannelsLast;
  Trainer(settings, options).fit(*forced, *train_, *test_);
  EXPECT_TRUE(conv_weight(*forced).is_contiguous(torch::MemoryFormat::ChannelsLast));
}

TEST(MemoryFormat, ParsesNamesAndRefusesOthers) {
  EXPECT_EQ(parse_memory_format("auto"), MemoryFormat::kAuto);
  EXPECT_EQ(parse_memory_format("channels-last"), MemoryFormat::kChannelsLast);
  EXPECT_EQ(parse_memory_format("contiguous"), MemoryFormat::kContiguous);
  for (auto f : {MemoryFormat::kAuto, MemoryFormat::kChannelsLast, MemoryFormat::kContiguous}) {
    EXPECT_EQ(parse_memory_format(to_string(f)), f);
  }
  try {
    parse_memory_format("nhwc");
    FAIL() << "nhwc is not a memory format name";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("channels-last"), std::string::npos) << e.what();
  }
}

TEST(Device, ResolvesNamesAndRefusesMissingCuda) {
  EXPECT_TRUE(resolve_device("cpu").is_cpu());
  EXPECT_THROW(resolve_device("tpu"), InvalidInput);
  EXPECT_THROW(resolve_device("cuda:x"), InvalidInput);
  if (torch::cuda::is_available()) {
    EXPECT_TRUE(resolve_device("auto").is_cuda());
    EXPECT_TRUE(resolve_device("cuda").is_cuda());
    EXPECT_THROW(resolve_device("cuda:999"), InvalidInput);
  } else {
    EXPECT_TRUE(resolve_device("auto").is_cpu());
    EXPECT_THROW(resolve_device("cuda"), InvalidInput);
    EXPECT_THROW(resolve_device("cuda:0"), InvalidInput);
  }
}

TEST(Threads, ConfiguresTheCount) {
  EXPECT_EQ(configure_threads(1), 1);
  EXPECT_EQ(configure_threads(2), 2);
  EXPECT_GE(configure_threads(0), 1);
  EXPECT_THROW(configure_threads(-1), InvalidInput);
  configure_threads(2);
}

// train_candidate(): the one train-and-record loop of the trial runner, evaluate and calibrate.
class CandidateTest : public TrainerTest {
 protected:
  static SearchSpace space() {
    return SearchSpace::load(fs::path(DATAPROXY_TEST_SOURCE_DIR) / "search_spaces" /
                             "resnet_tiny.yaml");
  }
  static CandidateOptions options(uint64_t seed) {
    CandidateOptions o;
    o.train = cpu_options(seed);
    o.train.epochs = 2;
    o.train.eval_subset = 0;
    return o;
  }
};

TEST_F(CandidateTest, TrainsBothPhasesAndRecordsTypedFields) {
  const SearchSpace s = space();
  const Config config = s.validate(json{{"B", 4}, {"K", 3}, {"M", 1}});
  const Dataset proxy_train = subset(*train_, torch::arange(0, 300));
  CandidateOptions o = options(3);
  o.proxy_epochs = 3;
  o.record_correct = true;
  CandidateData data;
  data.proxy = {&proxy_train, test_, 6};
  data.full = {train_, test_, 0};
  const CandidateOutcome out = train_candidate(s, config, data, o);
  const TrialRecord& r = out.record;
  EXPECT_FALSE(out.stopped);
  EXPECT_EQ(r.status, "complete");
  EXPECT_EQ(r.config_id, s.config_id(config));
  ASSERT_TRUE(r.proxy_accuracy && r.full_accuracy);
  EXPECT_TRUE(r.spot_check);
  EXPECT_EQ(r.proxy_curve.size(), 3u);
  EXPECT_EQ(r.training.full_curve.size(), 2u);
  EXPECT_DOUBLE_EQ(r.proxy_curve.back(), *r.proxy_accuracy);
  EXPECT_DOUBLE_EQ(r.training.full_curve.back(), *r.full_accuracy);
  EXPECT_EQ(r.training.epochs, 2);
  EXPECT_EQ(r.training.proxy_epochs, 3);
  EXPECT_EQ(r.training.seed, 3u);
  EXPECT_EQ(r.training.threads, 1);
  EXPECT_EQ(r.training.steps, 2 * ((train_->size() + 63) / 64));
  EXPECT_FALSE(r.training.memory_format.empty());
  EXPECT_EQ(r.data.train_size, train_->size());  // the last phase's
  EXPECT_EQ(r.data.test_size, test_->size());
  EXPECT_EQ(r.data.num_classes, 6);
  EXPECT_GT(r.macs, 0);
  EXPECT_EQ(r.device, "cpu");
  ASSERT_TRUE(r.correct.has_value());
  EXPECT_EQ(r.correct->on, "test");
  const auto bytes = static_cast<std::size_t>((test_->size() + 7) / 8);
  EXPECT_EQ(r.correct->bits.size(), 4 * ((bytes + 2) / 3));  // base64 of one bit per sample
  ASSERT_TRUE(r.timing.has_value());
  EXPECT_GT(r.timing->train, 0);
  EXPECT_EQ(r.timing->eval_final, test_->size());
  EXPECT_GT(r.proxy_seconds, 0);
  EXPECT_GT(r.full_seconds, 0);
}

TEST_F(CandidateTest, SameSeedSameRecordAsTrainingByHand) {
  const SearchSpace s = space();
  const Config config = s.validate(json{{"B", 4}, {"K", 3}, {"M", 2}});
  CandidateData data;
  data.proxy = {train_, test_, 0};
  const TrialRecord a = train_candidate(s, config, data, options(5)).record;
  const TrialRecord b = train_candidate(s, config, data, options(5)).record;
  EXPECT_EQ(a.proxy_curve, b.proxy_curve);
  EXPECT_EQ(*a.proxy_accuracy, *b.proxy_accuracy);
  EXPECT_FALSE(a.full_accuracy.has_value());
  EXPECT_FALSE(a.spot_check);

  // What the callers did before train_candidate existed.
  TrainOptions t = options(5).train;
  Trainer trainer(s.training(), t);
  seed_everything(5);
  const InputShape shape{train_->channels(), train_->height(), train_->width()};
  auto model = build_model(s, config, shape, train_->num_classes);
  EXPECT_EQ(trainer.fit(*model, *train_, *test_).final_accuracy, *a.proxy_accuracy);
}

TEST_F(CandidateTest, AnObserverStopsTheCandidate) {
  const SearchSpace s = space();
  const Config config = s.validate(json{{"B", 4}, {"K", 3}, {"M", 1}});
  struct StopAfterOne : CandidateObserver {
    std::vector<std::string> phases;
    void phase_started(CandidatePhase p) override { phases.push_back(to_string(p)); }
    bool epoch_done(CandidatePhase, const EpochStats&, int64_t epochs) override {
      EXPECT_EQ(epochs, 4);
      return false;
    }
  } observer;
  CandidateOptions o = options(1);
  o.proxy_epochs = 4;
  CandidateData data;
  data.proxy = {train_, test_, 0};
  data.full = {train_, test_, 0};
  const CandidateOutcome out = train_candidate(s, config, data, o, null_reporter(), &observer);
  EXPECT_TRUE(out.stopped);
  EXPECT_EQ(out.stopped_in, CandidatePhase::kProxy);
  EXPECT_EQ(out.record.status, "interrupted");
  EXPECT_EQ(out.record.proxy_curve.size(), 1u);
  ASSERT_TRUE(out.record.proxy_accuracy.has_value());
  EXPECT_DOUBLE_EQ(*out.record.proxy_accuracy, out.record.proxy_curve.back());
  EXPECT_FALSE(out.record.full_accuracy.has_value());
  EXPECT_EQ(observer.phases, std::vector<std::string>{"proxy"});
  EXPECT_THROW(train_candidate(s, config, CandidateData{}, o), InvalidInput);
}

}  // namespace
}  // namespace dataproxy
