#include <gtest/gtest.h>
#include <png.h>
#include <torch/torch.h>

#include "data/cifar_png.h"
#include "data_test_util.h"
#include "dataproxy/dataset.h"
#include "dataproxy/error.h"
#include "dataproxy/fetch.h"
#include "dataproxy/files.h"

namespace dataproxy {
namespace {

using test::contains;
using test::error_of;
using test::TempFolder;

void write_png(const fs::path& path, int width, int height, const std::string& pixels,
               png_uint_32 format) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = format;
  ASSERT_TRUE(png_image_write_to_file(&image, path.c_str(), 0, pixels.data(), 0, nullptr))
      << image.message;
}

class Fetch : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
  TempFolder tmp;
};

TEST_F(Fetch, PngRowsBecomeCifarRecords) {
  // Three 32x32 images, one per PNG row, pixel p of a row stored as R,G,B.
  const auto pixels = test::random_bytes(3 * 1024 * 3, 11);
  write_png(tmp / "batch.png", 1024, 3, pixels, PNG_FORMAT_RGB);
  const auto labels = torch::tensor({3, 0, 9}, torch::kInt64);
  data::convert_cifar_png(tmp / "batch.png", labels, tmp / "batch.bin");
  const auto bin = test::read_all(tmp / "batch.bin");
  ASSERT_EQ(bin.size(), 3u * 3073);
  for (int n = 0; n < 3; ++n) {
    EXPECT_EQ(bin[n * 3073], static_cast<char>(labels[n].item<int64_t>()));
    for (int c = 0; c < 3; ++c) {
      for (int p : {0, 1, 31, 32, 500, 1023}) {
        ASSERT_EQ(bin[n * 3073 + 1 + c * 1024 + p], pixels[(n * 1024 + p) * 3 + c])
            << "image " << n << " channel " << c << " pixel " << p;
      }
    }
  }
  const auto d = read_cifar10_batches({tmp / "batch.bin"}, "converted");
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.labels[2].item<int64_t>(), 9);
}

TEST_F(Fetch, PngConversionRefusesMismatches) {
  const auto pixels = test::random_bytes(2 * 1024 * 3, 1);
  write_png(tmp / "two.png", 1024, 2, pixels, PNG_FORMAT_RGB);
  auto msg = error_of<DataError>([&] {
    data::convert_cifar_png(tmp / "two.png", torch::tensor({1, 2, 3}, torch::kInt64),
                            tmp / "x.bin");
  });
  EXPECT_TRUE(contains(msg, "two.png"));
  EXPECT_TRUE(contains(msg, "image/label count mismatch: 2 images, 3 labels"));
  msg = error_of<DataError>([&] {
    data::convert_cifar_png(tmp / "two.png", torch::tensor({1, 10}, torch::kInt64), tmp / "x.bin");
  });
  EXPECT_TRUE(contains(msg, "label out of range 0..9"));
  EXPECT_FALSE(fs::exists(tmp / "x.bin"));

  write_png(tmp / "narrow.png", 32, 2, test::random_bytes(32 * 2 * 3, 2), PNG_FORMAT_RGB);
  msg = error_of<DataError>([&] {
    data::convert_cifar_png(tmp / "narrow.png", torch::tensor({1, 2}, torch::kInt64),
                            tmp / "x.bin");
  });
  EXPECT_TRUE(contains(msg, "narrow.png"));
  EXPECT_TRUE(contains(msg, "rows of 1024 RGB pixels"));

  write_png(tmp / "rgba.png", 1024, 1, test::random_bytes(1024 * 4, 3), PNG_FORMAT_RGBA);
  msg = error_of<DataError>([&] { data::decode_png_rgb(tmp / "rgba.png"); });
  EXPECT_TRUE(contains(msg, "rgba.png"));
  EXPECT_TRUE(contains(msg, "8-bit RGB PNG"));

  test::write_file(tmp / "fake.png", "not a png at all");
  msg = error_of<DataError>([&] { data::decode_png_rgb(tmp / "fake.png"); });
  EXPECT_TRUE(contains(msg, "fake.png"));
  EXPECT_TRUE(contains(msg, "not a readable PNG"));
}

TEST_F(Fetch, UnknownDatasetIsInvalidInput) {
  FetchOptions opt;
  opt.root = tmp.path();
  EXPECT_TRUE(contains(error_of<InvalidInput>([&] { fetch_dataset("cifar100", opt); }),
                       "unknown dataset 'cifar100'"));
  EXPECT_THROW(dataset_verified("nope", tmp.path()), InvalidInput);
}

TEST_F(Fetch, FashionMnistMissingPackageSaysHowToInstall) {
  FetchOptions opt;
  opt.root = tmp / "data";
  opt.fashion_mnist_source = tmp / "not-installed";
  const auto msg = error_of<RuntimeFailure>([&] { fetch_dataset("fashion-mnist", opt); });
  EXPECT_TRUE(contains(msg, "apt-get install dataset-fashion-mnist"));
  EXPECT_TRUE(contains(msg, "not-installed"));
}

bool no_temp_folders_in(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".tmp-") != std::string::npos) return false;
  }
  return true;
}

TEST_F(Fetch, FashionMnistWithWrongContentIsRefusedAndNothingLeft) {
  const auto src = tmp / "src";
  for (const auto* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    test::write_gzip(src / (std::string(f) + ".gz"), test::idx_labels({1, 2, 3}));
  }
  // The temporary folder of an earlier, killed fetch.
  test::write_file(tmp / "data" / ".fashion-mnist.tmp-old123" / "train-images-idx3-ubyte", "x");
  FetchOptions opt;
  opt.root = tmp / "data";
  opt.fashion_mnist_source = src;
  const auto msg = error_of<DataError>([&] { fetch_dataset("fashion-mnist", opt); });
  EXPECT_TRUE(contains(msg, "train-images-idx3-ubyte.gz"));
  EXPECT_TRUE(contains(msg, "expected f4a8712d7a061bf5bd6d2ca38dc4d50a"));
  EXPECT_FALSE(fs::exists(tmp / "data" / "fashion-mnist"));
  EXPECT_TRUE(no_temp_folders_in(tmp / "data"));
}

TEST_F(Fetch, RealFashionMnistIsVerifiedPlacedAndNotFetchedTwice) {
  const FetchOptions defaults;
  if (!fs::exists(defaults.fashion_mnist_source / "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << defaults.fashion_mnist_source
                 << " absent: apt-get install dataset-fashion-mnist to run this test";
  }
  FetchOptions opt;
  opt.root = tmp / "data";
  EXPECT_FALSE(dataset_verified("fashion-mnist", opt.root));
  const auto dir = fetch_dataset("fashion-mnist", opt);
  EXPECT_EQ(dir, opt.root / "fashion-mnist");
  EXPECT_TRUE(dataset_verified("fashion-mnist", opt.root));
  EXPECT_TRUE(no_temp_folders_in(opt.root));
  EXPECT_EQ(md5_file(dir / "t10k-labels-idx1-ubyte"), "15d484375f8d13e6eb1aabb0c3f46965");

  // A second fetch finds the files verified and leaves them alone.
  const auto stamp = fs::last_write_time(dir / "train-images-idx3-ubyte");
  fs::last_write_time(dir / "train-images-idx3-ubyte", stamp - std::chrono::hours(1));
  fetch_dataset("fashion-mnist", opt);
  EXPECT_EQ(fs::last_write_time(dir / "train-images-idx3-ubyte"), stamp - std::chrono::hours(1));

  // One changed byte makes the set unverified; fetching again repairs it.
  {
    std::fstream f(dir / "t10k-labels-idx1-ubyte", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  EXPECT_FALSE(dataset_verified("fashion-mnist", opt.root));
  fetch_dataset("fashion-mnist", opt);
  EXPECT_TRUE(dataset_verified("fashion-mnist", opt.root));

  const auto s = load_dataset("fashion-mnist", opt.root);
  EXPECT_EQ(s.train.size(), 60000);
  EXPECT_EQ(s.test.size(), 10000);
}

}  // namespace
}  // namespace dataproxy
