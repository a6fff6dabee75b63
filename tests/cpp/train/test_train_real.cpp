// A short real run: the resnet_tiny space (B8 K3 M2, its 3 epochs) on 3000/1000 images of
// Fashion-MNIST.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "dataproxy/dataset.h"
#include "dataproxy/model.h"
#include "dataproxy/search_space.h"
#include "dataproxy/trainer.h"
#include "test_data_root.h"

namespace dataproxy {
namespace {

fs::path source_dir() {
  const char* dir = std::getenv("DATAPROXY_SOURCE_DIR");
  return dir ? fs::path(dir) : fs::path(DATAPROXY_TEST_SOURCE_DIR);
}

TEST(TrainReal, ResnetTinyLearnsFashionMnistSlice) {
  if (!test::has_fashion_mnist()) {
    GTEST_SKIP() << "Fashion-MNIST not found in " << test::data_root() / "fashion-mnist"
                 << ": run scripts/setup.sh or set DATAPROXY_DATA_ROOT";
  }
  LoadOptions load;
  load.max_train = 3000;
  load.max_test = 1000;
  auto data = load_dataset("fashion-mnist", test::data_root(), load);

  ASSERT_EQ(data.train.size(), 3000);
  ASSERT_EQ(data.test.size(), 1000);

  auto space = SearchSpace::load(source_dir() / "search_spaces" / "resnet_tiny.yaml");
  auto config = space.validate({{"B", 8}, {"K", 3}, {"M", 2}});
  TrainOptions options;
  options.device = "cpu";
  options.threads = 1;
  options.seed = 1;
  options.epochs = 3;
  seed_everything(options.seed);
  InputShape input{data.train.channels(), data.train.height(), data.train.width()};
  auto net = build_model(space, config, input, data.train.num_classes);
  auto reporter = make_reporter(ReportMode::jsonl, &std::cerr);  // epochs show in the log
  Trainer trainer(space.training(), options, *reporter);
  auto result = trainer.fit(*net, data.train, data.test);
  ASSERT_EQ(result.epochs.size(), 3u);
  // Python PyTorch with the same network and settings reaches about 0.68 here.
  EXPECT_GT(result.final_accuracy, 0.55) << "chance is 0.1";
  auto features = trainer.features(*net, data.test);
  EXPECT_EQ(features.sizes(), torch::IntArrayRef({1000, net->feature_dim()}));
  EXPECT_TRUE(torch::isfinite(features).all().item<bool>());
}

}  // namespace
}  // namespace dataproxy
