#include <gtest/gtest.h>
#include <torch/torch.h>

#include "data_test_util.h"
#include "dataproxy/dataset.h"
#include "dataproxy/error.h"
#include "test_data_root.h"

namespace dataproxy {
namespace {

using test::error_of;
using test::TempFolder;

class Readers : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
  TempFolder tmp;
};

TEST_F(Readers, Cifar10KeepsLabelsAndPlaneLayoutAcrossFiles) {
  const auto a = test::cifar10_records({3, 0, 9}, 1);
  const auto b = test::cifar10_records({7, 7}, 2);
  test::write_file(tmp / "a.bin", a);
  test::write_file(tmp / "b.bin", b);
  const auto d = read_cifar10_batches({tmp / "a.bin", tmp / "b.bin"}, "c10");
  ASSERT_EQ(d.size(), 5);
  EXPECT_EQ(d.images.sizes(), torch::IntArrayRef({5, 3, 32, 32}));
  EXPECT_EQ(d.images.dtype(), torch::kUInt8);
  EXPECT_TRUE(d.images.is_contiguous());
  EXPECT_EQ(d.labels.dtype(), torch::kInt64);
  EXPECT_EQ(std::vector<int64_t>(d.labels.data_ptr<int64_t>(), d.labels.data_ptr<int64_t>() + 5),
            std::vector<int64_t>({3, 0, 9, 7, 7}));
  EXPECT_EQ(d.num_classes, 10);
  ASSERT_EQ(d.class_names.size(), 10u);
  EXPECT_EQ(d.class_names[0], "airplane");
  // Record 3 (first of b): channel 1 (G), row 2, column 5.
  EXPECT_EQ(d.images[3][1][2][5].item<uint8_t>(), static_cast<uint8_t>(b[1 + 1024 + 2 * 32 + 5]));
  EXPECT_EQ(d.images[2][2][31][31].item<uint8_t>(), static_cast<uint8_t>(a[2 * 3073 + 3072]));
}

TEST_F(Readers, Cifar10WrongSizeNamesFileAndProblem) {
  test::write_file(tmp / "short.bin", test::cifar10_records({1, 2}, 1).substr(0, 3073 + 100));
  const auto msg = error_of<DataError>([&] { read_cifar10_batches({tmp / "short.bin"}, "c10"); });
  EXPECT_TRUE(test::contains(msg, (tmp / "short.bin").string()));
  EXPECT_TRUE(test::contains(msg, "wrong size 3173 bytes"));
}

TEST_F(Readers, Cifar10EmptyFileIsRefused) {
  test::write_file(tmp / "empty.bin", "");
  const auto msg = error_of<DataError>([&] { read_cifar10_batches({tmp / "empty.bin"}, "c"); });
  EXPECT_TRUE(test::contains(msg, "empty.bin"));
  EXPECT_TRUE(test::contains(msg, "wrong size 0 bytes"));
}

TEST_F(Readers, Cifar10LabelOutOfRange) {
  test::write_file(tmp / "bad.bin", test::cifar10_records({1, 10, 2}, 1));
  const auto msg = error_of<DataError>([&] { read_cifar10_batches({tmp / "bad.bin"}, "c10"); });
  EXPECT_TRUE(test::contains(msg, "bad.bin"));
  EXPECT_TRUE(test::contains(msg, "record 1 has label 10, out of range 0..9"));
}

TEST_F(Readers, MissingFileNamesIt) {
  const auto msg = error_of<DataError>([&] { read_cifar10_batches({tmp / "nope.bin"}, "c10"); });
  EXPECT_TRUE(test::contains(msg, "nope.bin"));
  EXPECT_TRUE(test::contains(msg, "no such file"));
}

std::string cifar100_records(const std::vector<std::pair<int, int>>& labels, uint32_t seed) {
  std::string out;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    out.push_back(static_cast<char>(labels[i].first));
    out.push_back(static_cast<char>(labels[i].second));
    out += test::random_bytes(3072, seed + static_cast<uint32_t>(i));
  }
  return out;
}

TEST_F(Readers, Cifar100FineAndCoarseLabels) {
  const auto bytes = cifar100_records({{19, 99}, {0, 0}, {4, 42}}, 5);
  test::write_file(tmp / "train.bin", bytes);
  const auto fine = read_cifar100_file(tmp / "train.bin", Cifar100Label::fine, "f");
  const auto coarse = read_cifar100_file(tmp / "train.bin", Cifar100Label::coarse, "c");
  EXPECT_EQ(fine.num_classes, 100);
  EXPECT_EQ(coarse.num_classes, 20);
  EXPECT_EQ(fine.labels[0].item<int64_t>(), 99);
  EXPECT_EQ(fine.labels[2].item<int64_t>(), 42);
  EXPECT_EQ(coarse.labels[0].item<int64_t>(), 19);
  EXPECT_EQ(coarse.labels[2].item<int64_t>(), 4);
  EXPECT_TRUE(torch::equal(fine.images, coarse.images));
  EXPECT_EQ(fine.images[1][0][0][0].item<uint8_t>(), static_cast<uint8_t>(bytes[3074 + 2]));
  EXPECT_EQ(fine.images[2][2][31][31].item<uint8_t>(), static_cast<uint8_t>(bytes[3 * 3074 - 1]));
}

TEST_F(Readers, Cifar100LabelOutOfRangeEitherKind) {
  test::write_file(tmp / "c.bin", cifar100_records({{1, 1}, {20, 3}}, 1));
  auto msg =
      error_of<DataError>([&] { read_cifar100_file(tmp / "c.bin", Cifar100Label::fine, "x"); });
  EXPECT_TRUE(test::contains(msg, "c.bin"));
  EXPECT_TRUE(test::contains(msg, "coarse label) 1 has label 20"));
  test::write_file(tmp / "f.bin", cifar100_records({{1, 100}}, 1));
  msg = error_of<DataError>([&] { read_cifar100_file(tmp / "f.bin", Cifar100Label::coarse, "x"); });
  EXPECT_TRUE(test::contains(msg, "f.bin"));
  EXPECT_TRUE(test::contains(msg, "fine label) 0 has label 100, out of range 0..99"));
}

TEST_F(Readers, Cifar100WrongSize) {
  test::write_file(tmp / "c.bin", test::cifar10_records({1, 2}, 1));  // 3073-byte records
  const auto msg =
      error_of<DataError>([&] { read_cifar100_file(tmp / "c.bin", Cifar100Label::fine, "x"); });
  EXPECT_TRUE(test::contains(msg, "c.bin"));
  EXPECT_TRUE(test::contains(msg, "wrong size 6146 bytes"));
}

TEST_F(Readers, IdxRawAndGzipGiveTheSameData) {
  const auto images = test::idx_images(4, 28, 28, 9);
  const auto labels = test::idx_labels({9, 0, 3, 3});
  test::write_file(tmp / "i", images);
  test::write_file(tmp / "l", labels);
  test::write_gzip(tmp / "i.gz", images);
  test::write_gzip(tmp / "l.gz", labels);
  const auto raw = read_idx(tmp / "i", tmp / "l", "raw");
  const auto gz = read_idx(tmp / "i.gz", tmp / "l.gz", "gz");
  ASSERT_EQ(raw.images.sizes(), torch::IntArrayRef({4, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(raw.images, gz.images));
  EXPECT_TRUE(torch::equal(raw.labels, gz.labels));
  EXPECT_EQ(raw.labels[0].item<int64_t>(), 9);
  EXPECT_EQ(raw.images[1][0][2][3].item<uint8_t>(),
            static_cast<uint8_t>(images[16 + 784 + 2 * 28 + 3]));
  EXPECT_EQ(fingerprint(raw), fingerprint(gz));
}

TEST_F(Readers, IdxWrongMagic) {
  test::write_file(tmp / "i", test::idx_labels({1, 2}));  // a label file where images belong
  test::write_file(tmp / "l", test::idx_labels({1, 2}));
  const auto msg = error_of<DataError>([&] { read_idx(tmp / "i", tmp / "l", "x"); });
  EXPECT_TRUE(test::contains(msg, (tmp / "i").string()));
  EXPECT_TRUE(test::contains(msg, "wrong magic 0x801, expected 0x803"));
}

TEST_F(Readers, IdxTruncatedRaw) {
  test::write_file(tmp / "i", test::idx_images(3, 28, 28, 1).substr(0, 16 + 2 * 784));
  test::write_file(tmp / "l", test::idx_labels({1, 2, 3}));
  const auto msg = error_of<DataError>([&] { read_idx(tmp / "i", tmp / "l", "x"); });
  EXPECT_TRUE(test::contains(msg, (tmp / "i").string()));
  EXPECT_TRUE(test::contains(msg, "wrong size 1584 bytes"));
  EXPECT_TRUE(test::contains(msg, "which needs 2368 bytes"));
}

TEST_F(Readers, IdxShorterThanHeader) {
  test::write_file(tmp / "i", test::idx_images(1, 2, 2, 1));
  test::write_file(tmp / "l", test::be32(0x801));
  const auto msg = error_of<DataError>([&] { read_idx(tmp / "i", tmp / "l", "x"); });
  EXPECT_TRUE(test::contains(msg, (tmp / "l").string()));
  EXPECT_TRUE(test::contains(msg, "shorter than the 8-byte IDX header"));
}

TEST_F(Readers, IdxTruncatedGzip) {
  test::write_gzip(tmp / "full.gz", test::idx_images(50, 28, 28, 3));
  const auto gz = test::read_all(tmp / "full.gz");
  test::write_file(tmp / "i.gz", gz.substr(0, gz.size() / 2));
  test::write_file(tmp / "l", test::idx_labels(std::vector<int>(50, 1)));
  const auto msg = error_of<DataError>([&] { read_idx(tmp / "i.gz", tmp / "l", "x"); });
  EXPECT_TRUE(test::contains(msg, (tmp / "i.gz").string()));
  EXPECT_TRUE(test::contains(msg, "truncated gzip"));
}

TEST_F(Readers, IdxCorruptGzip) {
  test::write_gzip(tmp / "full.gz", test::idx_images(5, 28, 28, 3));
  auto gz = test::read_all(tmp / "full.gz");
  for (std::size_t i = 12; i < 40; ++i) gz[i] = static_cast<char>(0xff);
  test::write_file(tmp / "i.gz", gz);
  test::write_file(tmp / "l", test::idx_labels({1, 1, 1, 1, 1}));
  const auto msg = error_of<DataError>([&] { read_idx(tmp / "i.gz", tmp / "l", "x"); });
  EXPECT_TRUE(test::contains(msg, (tmp / "i.gz").string()));
  EXPECT_TRUE(test::contains(msg, "gzip"));
}

TEST_F(Readers, IdxCountMismatchNamesBothFiles) {
  test::write_file(tmp / "i", test::idx_images(5, 28, 28, 1));
  test::write_file(tmp / "l", test::idx_labels({1, 2, 3, 4}));
  const auto msg = error_of<DataError>([&] { read_idx(tmp / "i", tmp / "l", "x"); });
  EXPECT_TRUE(test::contains(msg, "image/label count mismatch"));
  EXPECT_TRUE(test::contains(msg, (tmp / "i").string() + " holds 5 images"));
  EXPECT_TRUE(test::contains(msg, (tmp / "l").string() + " holds 4 labels"));
}

TEST_F(Readers, IdxLabelOutOfRange) {
  test::write_file(tmp / "i", test::idx_images(3, 28, 28, 1));
  test::write_file(tmp / "l", test::idx_labels({1, 2, 10}));
  const auto msg = error_of<DataError>([&] { read_idx(tmp / "i", tmp / "l", "x"); });
  EXPECT_TRUE(test::contains(msg, (tmp / "l").string()));
  EXPECT_TRUE(test::contains(msg, "label 2 has label 10, out of range 0..9"));
}

void write_cifar10_tree(const fs::path& dir, int per_batch) {
  for (int b = 1; b <= 5; ++b) {
    std::vector<int> labels;
    for (int i = 0; i < per_batch; ++i) labels.push_back((b + i) % 10);
    test::write_file(dir / ("data_batch_" + std::to_string(b) + ".bin"),
                     test::cifar10_records(labels, 100 * b));
  }
  test::write_file(dir / "test_batch.bin", test::cifar10_records({0, 1, 2, 3}, 7));
}

TEST_F(Readers, LoadCifar10WithSlicing) {
  write_cifar10_tree(tmp / "cifar-10-batches-bin", 3);
  LoadOptions opt;
  opt.official_sizes = false;
  const auto all = load_dataset("cifar10", tmp.path(), opt);
  EXPECT_EQ(all.train.size(), 15);
  EXPECT_EQ(all.test.size(), 4);
  EXPECT_EQ(all.train.name, "cifar10/train");
  opt.max_train = 7;
  opt.max_test = 2;
  const auto some = load_dataset("cifar10", tmp.path(), opt);
  ASSERT_EQ(some.train.size(), 7);
  ASSERT_EQ(some.test.size(), 2);
  EXPECT_TRUE(torch::equal(some.train.images, all.train.images.narrow(0, 0, 7)));
  EXPECT_TRUE(torch::equal(some.train.labels, all.train.labels.narrow(0, 0, 7)));
  EXPECT_TRUE(torch::equal(some.test.images, all.test.images.narrow(0, 0, 2)));
  // A maximum above the size keeps everything; the root itself may hold the files.
  opt.max_train = 1000;
  opt.max_test = 0;
  EXPECT_EQ(load_dataset("cifar10", tmp / "cifar-10-batches-bin", opt).train.size(), 15);
  opt.max_train = -1;
  EXPECT_TRUE(
      test::contains(error_of<InvalidInput>([&] { load_dataset("cifar10", tmp.path(), opt); }),
                     "max_train and max_test must be >= 0"));
}

TEST_F(Readers, LoadCifar10RefusesUnofficialSizesByDefault) {
  write_cifar10_tree(tmp / "cifar-10-batches-bin", 3);
  const auto msg = error_of<DataError>([&] { load_dataset("cifar10", tmp.path()); });
  EXPECT_TRUE(test::contains(msg, "data_batch_1.bin"));
  EXPECT_TRUE(test::contains(msg, "expected the official 10000"));
}

TEST_F(Readers, LoadCifar100BothKindsWithNames) {
  const auto dir = tmp / "cifar-100-binary";
  test::write_file(dir / "train.bin", cifar100_records({{1, 11}, {2, 22}, {3, 33}}, 1));
  test::write_file(dir / "test.bin", cifar100_records({{4, 44}}, 2));
  std::string names;
  for (int i = 0; i < 20; ++i) names += "coarse" + std::to_string(i) + "\n";
  test::write_file(dir / "coarse_label_names.txt", names);
  LoadOptions opt;
  opt.official_sizes = false;
  opt.max_train = 2;
  const auto fine = load_dataset("cifar100", tmp.path(), opt);
  const auto coarse = load_dataset("cifar100-coarse", tmp.path(), opt);
  EXPECT_EQ(fine.train.size(), 2);
  EXPECT_EQ(fine.train.labels[1].item<int64_t>(), 22);
  EXPECT_EQ(fine.test.labels[0].item<int64_t>(), 44);
  EXPECT_EQ(coarse.train.labels[1].item<int64_t>(), 2);
  EXPECT_EQ(fine.train.num_classes, 100);
  EXPECT_EQ(coarse.train.num_classes, 20);
  EXPECT_TRUE(fine.train.class_names.empty());
  ASSERT_EQ(coarse.train.class_names.size(), 20u);
  EXPECT_EQ(coarse.train.class_names[19], "coarse19");
}

TEST_F(Readers, LoadFashionMnistFromGeneratedGzip) {
  const auto dir = tmp / "fashion-mnist";
  test::write_gzip(dir / "train-images-idx3-ubyte.gz", test::idx_images(6, 28, 28, 1));
  test::write_gzip(dir / "train-labels-idx1-ubyte.gz", test::idx_labels({0, 1, 2, 3, 4, 5}));
  test::write_file(dir / "t10k-images-idx3-ubyte", test::idx_images(2, 28, 28, 2));
  test::write_file(dir / "t10k-labels-idx1-ubyte", test::idx_labels({9, 8}));
  LoadOptions opt;
  opt.official_sizes = false;
  opt.max_test = 1;
  const auto s = load_dataset("fashion-mnist", tmp.path(), opt);
  EXPECT_EQ(s.train.size(), 6);
  EXPECT_EQ(s.test.size(), 1);
  EXPECT_EQ(s.test.labels[0].item<int64_t>(), 9);
  EXPECT_EQ(s.train.class_names.at(9), "Ankle boot");
  EXPECT_TRUE(
      test::contains(error_of<DataError>([&] { load_dataset("fashion-mnist", tmp.path()); }),
                     "expected the official 60000"));
}

TEST_F(Readers, LoadMissingDataSaysWhatToDo) {
  auto msg = error_of<DataError>([&] { load_dataset("cifar10", tmp.path()); });
  EXPECT_TRUE(test::contains(msg, "data_batch_1.bin: no such file"));
  EXPECT_TRUE(
      test::contains(msg, "dataproxy fetch-data cifar10 --data-root " + tmp.path().string()));
  msg = error_of<DataError>([&] { load_dataset("cifar100-coarse", tmp.path()); });
  EXPECT_TRUE(test::contains(msg, "train.bin: no such file"));
  EXPECT_TRUE(test::contains(msg, "CIFAR-100 cannot be fetched"));
}

TEST_F(Readers, UnknownDatasetListsKnownNames) {
  const auto msg = error_of<InvalidInput>([&] { load_dataset("mnist", tmp.path()); });
  EXPECT_TRUE(test::contains(msg, "unknown dataset 'mnist'"));
  EXPECT_TRUE(test::contains(msg, "cifar100-coarse"));
}

Dataset small_dataset() {
  Dataset d;
  d.name = "small";
  d.images = torch::arange(6 * 3 * 4 * 4, torch::kInt64)
                 .remainder(256)
                 .to(torch::kUInt8)
                 .view({6, 3, 4, 4});
  d.labels = torch::tensor({0, 1, 1, 2, 2, 2}, torch::kInt64);
  d.num_classes = 4;
  return d;
}

TEST(Dataset, FingerprintChangesWithOneByte) {
  const auto d = small_dataset();
  const auto f = fingerprint(d);
  EXPECT_EQ(f.size(), 64u);
  auto same = small_dataset();
  same.name = "another name";
  EXPECT_EQ(fingerprint(same), f);
  auto pixel = small_dataset();
  pixel.images[5][2][3][3] += 1;
  EXPECT_NE(fingerprint(pixel), f);
  auto label = small_dataset();
  label.labels[0] = 3;
  EXPECT_NE(fingerprint(label), f);
  auto shape = small_dataset();
  shape.images = shape.images.view({6, 3, 2, 8});
  EXPECT_NE(fingerprint(shape), f);
}

TEST(Dataset, SubsetAndClassCounts) {
  const auto d = small_dataset();
  EXPECT_TRUE(torch::equal(d.class_counts(), torch::tensor({1, 2, 3, 0}, torch::kInt64)));
  const auto s = subset(d, torch::tensor({5, 0, 3}, torch::kInt64));
  ASSERT_EQ(s.size(), 3);
  EXPECT_TRUE(torch::equal(s.images[0], d.images[5]));
  EXPECT_TRUE(torch::equal(s.images[1], d.images[0]));
  EXPECT_EQ(s.labels[2].item<int64_t>(), 2);
  EXPECT_EQ(s.num_classes, 4);
  EXPECT_TRUE(test::contains(error_of<InvalidInput>([&] {
                               subset(d, torch::tensor({0, 6}, torch::kInt64));
                             }),
                             "index out of range"));
  EXPECT_EQ(subset(d, torch::empty({0}, torch::kInt64)).size(), 0);
}

TEST(Dataset, RealFashionMnistFromTheDataRoot) {
  const fs::path root = test::data_root();
  if (!test::has_fashion_mnist()) {
    GTEST_SKIP() << root / "fashion-mnist"
                 << " absent: run scripts/setup.sh or set DATAPROXY_DATA_ROOT";
  }
  torch::set_num_threads(1);
  const auto s = load_dataset("fashion-mnist", root);
  EXPECT_EQ(s.train.size(), 60000);
  EXPECT_EQ(s.test.size(), 10000);
  EXPECT_EQ(s.train.images.sizes(), torch::IntArrayRef({60000, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(s.train.class_counts(), torch::full({10}, 6000, torch::kInt64)));
  EXPECT_TRUE(torch::equal(s.test.class_counts(), torch::full({10}, 1000, torch::kInt64)));
}

}  // namespace
}  // namespace dataproxy
