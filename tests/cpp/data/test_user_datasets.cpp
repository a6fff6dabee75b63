// Datasets a user already has: ImageFolder trees (PNG, JPEG), Keras-layout .npz files, IDX
// folders, and the decode cache behind them. Every file is generated here.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <thread>

#include "data_test_util.h"
#include "dataproxy/dataset.h"
#include "dataproxy/error.h"
#include "image_writers.h"

namespace dataproxy {
namespace {

using test::contains;
using test::error_of;
using test::TempFolder;

/// A seeded uint8 [H, W, C] image.
torch::Tensor pixels(int64_t h, int64_t w, int64_t c, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, 256, {h, w, c}, torch::kUInt8);
}

torch::Tensor solid(int64_t h, int64_t w, std::vector<int> colour) {
  auto t = torch::empty({h, w, static_cast<int64_t>(colour.size())}, torch::kUInt8);
  for (std::size_t c = 0; c < colour.size(); ++c) t.select(2, int64_t(c)).fill_(colour[c]);
  return t;
}

class UserData : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    options.cache_dir = tmp / "cache";
  }
  DatasetSplits load(const std::string& format, const fs::path& root) {
    return load_dataset(format, root, options);
  }
  TempFolder tmp;
  LoadOptions options;
};

/// train/{cat,dog} and test/{cat,dog}, 8x8 PNGs; returns the images in load order.
std::vector<torch::Tensor> small_tree(const fs::path& root, int64_t channels) {
  std::vector<torch::Tensor> out;
  uint64_t seed = 1;
  for (const char* split : {"train", "test"}) {
    for (const char* cls : {"cat", "dog"}) {
      for (int i = 0; i < (std::string(split) == "train" ? 3 : 2); ++i) {
        auto img = pixels(8, 8, channels, seed++);
        test::write_png(root / split / cls / ("img" + std::to_string(i) + ".png"), img);
        out.push_back(img);
      }
    }
  }
  return out;
}

TEST_F(UserData, FolderRgbPngsKeepPixelsClassesAndOrder) {
  const auto written = small_tree(tmp / "d", 3);
  // A file that is not an image is ignored, and said so.
  test::write_file(tmp / "d" / "train" / "cat" / "notes.txt", "not an image");
  const auto s = load("folder", tmp / "d");
  ASSERT_EQ(s.train.images.sizes(), torch::IntArrayRef({6, 3, 8, 8}));
  ASSERT_EQ(s.test.images.sizes(), torch::IntArrayRef({4, 3, 8, 8}));
  EXPECT_EQ(s.train.class_names, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(s.train.num_classes, 2);
  EXPECT_TRUE(torch::equal(s.train.labels, torch::tensor({0, 0, 0, 1, 1, 1}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(s.test.labels, torch::tensor({0, 0, 1, 1}, torch::kInt64)));
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(torch::equal(s.train.images[i], written[i].permute({2, 0, 1}))) << i;
  }
  EXPECT_TRUE(torch::equal(s.test.images[3], written[9].permute({2, 0, 1})));
  EXPECT_EQ(s.info.format, "folder");
  EXPECT_EQ(s.info.resized, 0);
  EXPECT_TRUE(contains(s.info.image_size_rule, "every image is 8x8"));
  ASSERT_FALSE(s.info.notes.empty());
  EXPECT_TRUE(contains(s.info.notes[0], "ignored 1 files"));
}

TEST_F(UserData, FolderAllGrayStaysOneChannel) {
  const auto written = small_tree(tmp / "d", 1);
  const auto s = load("folder", tmp / "d");
  ASSERT_EQ(s.train.images.sizes(), torch::IntArrayRef({6, 1, 8, 8}));
  EXPECT_TRUE(torch::equal(s.train.images[4], written[4].permute({2, 0, 1})));
  EXPECT_EQ(s.info.converted_to_rgb, 0);
}

TEST_F(UserData, FolderMixingGrayAndRgbConvertsToRgb) {
  small_tree(tmp / "d", 3);
  const auto gray = pixels(8, 8, 1, 99);
  test::write_png(tmp / "d" / "train" / "dog" / "zz-gray.png", gray);
  const auto s = load("folder", tmp / "d");
  ASSERT_EQ(s.train.images.sizes(), torch::IntArrayRef({7, 3, 8, 8}));
  EXPECT_EQ(s.info.converted_to_rgb, 1);
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(torch::equal(s.train.images[6][c], gray.select(2, 0)));
}

TEST_F(UserData, FolderReadsJpegsRgbAndGray) {
  test::write_jpeg(tmp / "d" / "train" / "a" / "1.jpg", solid(16, 16, {200, 40, 90}));
  test::write_jpeg(tmp / "d" / "train" / "b" / "2.JPEG", solid(16, 16, {120}));
  test::write_png(tmp / "d" / "test" / "a" / "3.png", solid(16, 16, {1, 2, 3}));
  test::write_jpeg(tmp / "d" / "test" / "b" / "4.jpeg", solid(16, 16, {10, 250, 30}));
  const auto s = load("folder", tmp / "d");
  ASSERT_EQ(s.train.images.sizes(), torch::IntArrayRef({2, 3, 16, 16}));
  // JPEG is lossy: a solid colour comes back within a few levels.
  auto close = [](const torch::Tensor& chw, std::vector<int> rgb) {
    for (int c = 0; c < 3; ++c) {
      const auto diff = (chw[c].to(torch::kInt32) - rgb[c]).abs().max().item<int>();
      if (diff > 3) return false;
    }
    return true;
  };
  EXPECT_TRUE(close(s.train.images[0], {200, 40, 90}));
  EXPECT_TRUE(close(s.train.images[1], {120, 120, 120}));
  EXPECT_TRUE(close(s.test.images[1], {10, 250, 30}));
  EXPECT_TRUE(torch::equal(s.test.images[0][2], torch::full({16, 16}, 3, torch::kUInt8)));
}

TEST_F(UserData, FolderResizesToTheMostCommonSize) {
  test::write_png(tmp / "d" / "train" / "a" / "1.png", pixels(8, 8, 3, 1));
  test::write_png(tmp / "d" / "train" / "a" / "2.png", pixels(8, 8, 3, 2));
  test::write_png(tmp / "d" / "train" / "b" / "3.png", solid(16, 12, {30, 60, 90}));
  test::write_png(tmp / "d" / "test" / "a" / "4.png", pixels(8, 8, 3, 4));
  test::write_png(tmp / "d" / "test" / "b" / "5.png", solid(4, 4, {7, 8, 9}));
  const auto s = load("folder", tmp / "d");
  ASSERT_EQ(s.train.images.sizes(), torch::IntArrayRef({3, 3, 8, 8}));
  ASSERT_EQ(s.test.images.sizes(), torch::IntArrayRef({2, 3, 8, 8}));
  EXPECT_EQ(s.info.resized, 2);
  EXPECT_TRUE(contains(s.info.image_size_rule, "the most common size, 8x8 (3 of 5 images"));
  // Bilinear resizing keeps a solid colour, shrinking or growing.
  EXPECT_TRUE(torch::equal(s.train.images[2].permute({1, 2, 0}), solid(8, 8, {30, 60, 90})));
  EXPECT_TRUE(torch::equal(s.test.images[1].permute({1, 2, 0}), solid(8, 8, {7, 8, 9})));

  options.image_size = 4;
  const auto r = load("folder", tmp / "d");
  ASSERT_EQ(r.train.images.sizes(), torch::IntArrayRef({3, 3, 4, 4}));
  EXPECT_EQ(r.info.resized, 4);  // the 4x4 image already has the size
  EXPECT_EQ(r.info.image_size_rule, "--image-size 4");
  // A 2x shrink of an 8x8 image averages: each output pixel lies within its 2x2 block's range.
  const auto big = s.train.images[0].to(torch::kFloat);
  const auto small = r.train.images[0].to(torch::kFloat);
  const auto pooled = torch::avg_pool2d(big.unsqueeze(0), 2).squeeze(0);
  EXPECT_LT((small - pooled).abs().mean().item<float>(), 30.0f);
}

TEST_F(UserData, FolderLayoutErrorsNameTheFolder) {
  small_tree(tmp / "d", 3);
  fs::remove_all(tmp / "d" / "test" / "dog");
  auto msg = error_of<DataError>([&] { load("folder", tmp / "d"); });
  EXPECT_TRUE(contains(msg, (tmp / "d" / "test" / "dog").string() + ": missing"));

  test::write_png(tmp / "d" / "test" / "dog" / "1.png", pixels(8, 8, 3, 5));
  test::write_png(tmp / "d" / "test" / "zebra" / "1.png", pixels(8, 8, 3, 6));
  msg = error_of<DataError>([&] { load("folder", tmp / "d"); });
  EXPECT_TRUE(contains(msg, (tmp / "d" / "test" / "zebra").string()));
  EXPECT_TRUE(contains(msg, "a class folder that train/ lacks"));

  fs::remove_all(tmp / "d" / "test" / "zebra");
  fs::create_directories(tmp / "d" / "train" / "emu");
  fs::create_directories(tmp / "d" / "test" / "emu");
  test::write_file(tmp / "d" / "train" / "emu" / "readme.txt", "x");
  msg = error_of<DataError>([&] { load("folder", tmp / "d"); });
  EXPECT_TRUE(contains(msg, (tmp / "d" / "train" / "emu").string() + ": an empty class"));

  msg = error_of<DataError>([&] { load("folder", tmp / "nowhere"); });
  EXPECT_TRUE(contains(msg, "nowhere: no such folder"));
}

TEST_F(UserData, CorruptImagesNameTheFile) {
  small_tree(tmp / "d", 3);
  const auto png = tmp / "d" / "train" / "dog" / "img1.png";
  const auto bytes = test::read_all(png);
  test::write_file(png, bytes.substr(0, bytes.size() / 2));
  auto msg = error_of<DataError>([&] { load("folder", tmp / "d"); });
  EXPECT_TRUE(contains(msg, png.string() + ": damaged PNG"));

  test::write_png(png, pixels(8, 8, 3, 1));
  const auto jpg = tmp / "d" / "test" / "cat" / "broken.jpg";
  test::write_jpeg(jpg, pixels(8, 8, 3, 2));
  const auto jbytes = test::read_all(jpg);
  test::write_file(jpg, jbytes.substr(0, jbytes.size() - 40));
  msg = error_of<DataError>([&] { load("folder", tmp / "d"); });
  EXPECT_TRUE(contains(msg, jpg.string() + ": not a readable JPEG"));

  test::write_file(jpg, "GIF89a not really");
  msg = error_of<DataError>([&] { load("folder", tmp / "d"); });
  EXPECT_TRUE(contains(msg, jpg.string() + ": neither a PNG nor a JPEG"));
}

TEST_F(UserData, SecondLoadReadsTheCacheInsteadOfDecoding) {
  small_tree(tmp / "d", 3);
  const auto first = load("folder", tmp / "d");
  EXPECT_FALSE(first.info.cache_hit);
  ASSERT_FALSE(first.info.cache_entry.empty());
  const fs::path file = first.info.cache_entry / "data.bin";
  ASSERT_TRUE(fs::is_regular_file(file));
  const auto written_at = fs::last_write_time(file);

  const auto second = load("folder", tmp / "d");
  EXPECT_TRUE(second.info.cache_hit);
  EXPECT_EQ(second.info.cache_entry, first.info.cache_entry);
  EXPECT_EQ(fs::last_write_time(file), written_at);
  EXPECT_TRUE(torch::equal(second.train.images, first.train.images));
  EXPECT_TRUE(torch::equal(second.test.labels, first.test.labels));
  EXPECT_EQ(second.train.class_names, first.train.class_names);
  EXPECT_EQ(second.info.image_size_rule, first.info.image_size_rule);

  // The cached fingerprint is the real one, and is known without hashing.
  Dataset copy = second.train;
  copy.images = copy.images.clone();
  copy.known_fingerprint.clear();
  EXPECT_FALSE(second.train.known_fingerprint.sha256.empty());
  EXPECT_EQ(fingerprint(second.train), fingerprint(copy));

  // A changed source file (new mtime and size) is a different entry.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  test::write_png(tmp / "d" / "train" / "cat" / "img9.png", pixels(8, 8, 3, 77));
  const auto third = load("folder", tmp / "d");
  EXPECT_FALSE(third.info.cache_hit);
  EXPECT_NE(third.info.cache_entry, first.info.cache_entry);
  EXPECT_EQ(third.train.size(), 7);

  // --no-cache: decoded, nothing read or written.
  options.use_cache = false;
  const auto direct = load("folder", tmp / "d");
  EXPECT_FALSE(direct.info.cache_hit);
  EXPECT_TRUE(direct.info.cache_entry.empty());
  EXPECT_TRUE(torch::equal(direct.train.images, third.train.images));
}

TEST_F(UserData, CorruptCacheEntryIsRebuilt) {
  small_tree(tmp / "d", 3);
  const auto first = load("folder", tmp / "d");
  const fs::path file = first.info.cache_entry / "data.bin";
  auto bytes = test::read_all(file);
  bytes[bytes.size() - 100] = static_cast<char>(bytes[bytes.size() - 100] ^ 0x5a);
  test::write_file(file, bytes);
  const auto again = load("folder", tmp / "d");
  EXPECT_FALSE(again.info.cache_hit);
  ASSERT_FALSE(again.info.notes.empty());
  EXPECT_TRUE(contains(again.info.notes.back(), "cache entry rebuilt"));
  EXPECT_TRUE(contains(again.info.notes.back(), "CRC-32 mismatch"));
  EXPECT_TRUE(torch::equal(again.train.images, first.train.images));
  const auto third = load("folder", tmp / "d");
  EXPECT_TRUE(third.info.cache_hit);

  test::write_file(file, test::read_all(file).substr(0, 1000));
  const auto truncated = load("folder", tmp / "d");
  EXPECT_FALSE(truncated.info.cache_hit);
  EXPECT_TRUE(torch::equal(truncated.test.images, first.test.images));
}

TEST_F(UserData, ConcurrentLoadsDecodeOnce) {
  small_tree(tmp / "d", 3);
  std::vector<DatasetSplits> got(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] { got[i] = load_dataset("folder", tmp / "d", options); });
  }
  for (auto& t : threads) t.join();
  int decoded = 0;
  for (const auto& s : got) {
    decoded += s.info.cache_hit ? 0 : 1;
    EXPECT_TRUE(torch::equal(s.train.images, got[0].train.images));
  }
  EXPECT_EQ(decoded, 1);  // the others waited for the lock and read the entry
}

TEST_F(UserData, SlicesAndSubsetsNeverReportTheCachedFingerprint) {
  small_tree(tmp / "d", 3);
  load("folder", tmp / "d");
  const auto cached = load("folder", tmp / "d");
  ASSERT_TRUE(cached.info.cache_hit);
  options.max_train = 4;
  const auto sliced = load("folder", tmp / "d");
  EXPECT_TRUE(sliced.train.known_fingerprint.sha256.empty());
  Dataset expect = cached.train;
  expect.images = expect.images.narrow(0, 0, 4).clone();
  expect.labels = expect.labels.narrow(0, 0, 4).clone();
  expect.known_fingerprint.clear();
  EXPECT_EQ(fingerprint(sliced.train), fingerprint(expect));
  EXPECT_NE(fingerprint(sliced.train), fingerprint(cached.train));

  const auto sub = subset(cached.train, torch::tensor({5, 0}, torch::kInt64));
  EXPECT_TRUE(sub.known_fingerprint.sha256.empty());
  // Replacing a tensor of a copy invalidates what was known about the original.
  Dataset relabelled = cached.train;
  relabelled.labels = torch::zeros_like(relabelled.labels);
  Dataset fresh = relabelled;
  fresh.known_fingerprint.clear();
  EXPECT_EQ(fingerprint(relabelled), fingerprint(fresh));
  EXPECT_NE(fingerprint(relabelled), fingerprint(cached.train));
}

TEST_F(UserData, FingerprintsAreHashedOncePerSourceAndSlice) {
  // A built-in format: nothing is decoded into the cache, but the fingerprints are kept.
  const auto dir = tmp / "fashion-mnist";
  test::write_gzip(dir / "train-images-idx3-ubyte.gz", test::idx_images(6, 28, 28, 1));
  test::write_gzip(dir / "train-labels-idx1-ubyte.gz", test::idx_labels({0, 1, 2, 3, 4, 5}));
  test::write_file(dir / "t10k-images-idx3-ubyte", test::idx_images(2, 28, 28, 2));
  test::write_file(dir / "t10k-labels-idx1-ubyte", test::idx_labels({9, 8}));
  options.official_sizes = false;
  options.max_train = 4;
  const auto first = load("fashion-mnist", tmp.path());
  EXPECT_TRUE(first.train.known_fingerprint.sha256.empty());
  const std::string fp = fingerprint(first.train);  // hashed, and kept in the memo
  EXPECT_EQ(first.train.known_fingerprint.sha256, fp);
  const auto second = load("fashion-mnist", tmp.path());
  EXPECT_EQ(second.train.known_fingerprint.sha256, fp);
  Dataset fresh = second.train;
  fresh.known_fingerprint.clear();
  EXPECT_EQ(fingerprint(fresh), fp);
  // Another slice is another memo slot.
  options.max_train = 5;
  EXPECT_TRUE(load("fashion-mnist", tmp.path()).train.known_fingerprint.sha256.empty());

  // A folder dataset's slice, likewise.
  small_tree(tmp / "d", 3);
  options.max_train = 2;
  const auto a = load("folder", tmp / "d");
  const std::string sliced = fingerprint(a.train);
  const auto b = load("folder", tmp / "d");
  EXPECT_TRUE(b.info.cache_hit);
  EXPECT_EQ(b.train.known_fingerprint.sha256, sliced);
  EXPECT_FALSE(b.test.known_fingerprint.sha256.empty());  // the whole split, from the entry
}

std::vector<std::pair<std::string, std::string>> keras_arrays(int64_t n_train, int64_t n_test,
                                                              bool channels) {
  const auto xtr = pixels(n_train * 6, 5, channels ? 3 : 1, 11);
  const auto xte = pixels(n_test * 6, 5, channels ? 3 : 1, 12);
  std::vector<int64_t> ytr, yte;
  for (int64_t i = 0; i < n_train; ++i) ytr.push_back(i % 4);
  for (int64_t i = 0; i < n_test; ++i) yte.push_back(3 - i % 4);
  std::vector<int64_t> xs{n_train, 6, 5}, ts{n_test, 6, 5};
  if (channels) {
    xs.push_back(3);
    ts.push_back(3);
  }
  return {{"x_train", test::npy("|u1", xs, test::bytes_of(xtr))},
          {"y_train", test::npy("<i4", {n_train, 1}, test::le_ints(ytr, 4))},
          {"x_test", test::npy("|u1", ts, test::bytes_of(xte))},
          {"y_test", test::npy("|u1", {n_test}, test::le_ints(yte, 1))}};
}

TEST_F(UserData, NpzStoredAndCompressedGiveTheSameData) {
  test::write_npz(tmp / "stored.npz", keras_arrays(10, 4, true), false);
  test::write_npz(tmp / "deflated.npz", keras_arrays(10, 4, true), true);
  ASSERT_LT(fs::file_size(tmp / "deflated.npz"), fs::file_size(tmp / "stored.npz") + 1000);
  const auto a = load("npz", tmp / "stored.npz");
  const auto b = load("npz", tmp / "deflated.npz");
  ASSERT_EQ(a.train.images.sizes(), torch::IntArrayRef({10, 3, 6, 5}));
  EXPECT_TRUE(torch::equal(a.train.images, b.train.images));
  EXPECT_TRUE(torch::equal(a.test.labels, b.test.labels));
  EXPECT_EQ(a.train.num_classes, 4);
  EXPECT_TRUE(contains(a.info.notes.at(0), "num_classes = 4: the largest label (3) + 1"));
  EXPECT_TRUE(
      torch::equal(a.train.labels.narrow(0, 0, 5), torch::tensor({0, 1, 2, 3, 0}, torch::kInt64)));
  // N x H x W x C in the file, N x C x H x W in memory.
  const auto x = pixels(60, 5, 3, 11).view({10, 6, 5, 3});
  EXPECT_TRUE(torch::equal(a.train.images[7], x[7].permute({2, 0, 1})));
  EXPECT_EQ(load("npz", tmp / "stored.npz").info.cache_hit, true);
}

TEST_F(UserData, NpzGrayFortranOrderAndBigEndianLabels) {
  auto arrays = keras_arrays(6, 2, false);
  // y_train as big-endian uint16, x_test in Fortran order.
  arrays[1].second = test::npy(">u2", {6}, std::string("\0\0\0\1\0\2\0\3\0\0\0\7", 12));
  const auto xte = pixels(12, 5, 1, 12).view({2, 6, 5});
  arrays[2].second = test::npy("|u1", {2, 6, 5}, test::bytes_of(xte.permute({2, 1, 0})), true);
  test::write_npz(tmp / "g.npz", arrays, true);
  const auto s = load("npz", tmp / "g.npz");
  ASSERT_EQ(s.train.images.sizes(), torch::IntArrayRef({6, 1, 6, 5}));
  EXPECT_TRUE(torch::equal(s.train.labels, torch::tensor({0, 1, 2, 3, 0, 7}, torch::kInt64)));
  EXPECT_EQ(s.train.num_classes, 8);
  EXPECT_TRUE(torch::equal(s.test.images.squeeze(1), xte));
  EXPECT_TRUE(contains(s.info.notes.at(1), "classes without training samples: 4, 5, 6"));

  options.image_size = 10;
  const auto r = load("npz", tmp / "g.npz");
  EXPECT_EQ(r.train.images.sizes(), torch::IntArrayRef({6, 1, 10, 10}));
  EXPECT_EQ(r.info.resized, 8);
}

TEST_F(UserData, NpzErrors) {
  auto write_with = [&](int member, const std::string& npy_bytes) {
    auto arrays = keras_arrays(6, 2, false);
    if (member < 0) {
      arrays.erase(arrays.begin() + 2);
    } else {
      arrays[static_cast<std::size_t>(member)].second = npy_bytes;
    }
    test::write_npz(tmp / "bad.npz", arrays, true);
    return error_of<DataError>([&] { load("npz", tmp / "bad.npz"); });
  };
  auto msg = write_with(-1, "");
  EXPECT_TRUE(contains(msg, "bad.npz: no array 'x_test'"));
  EXPECT_TRUE(contains(msg, "x_train"));

  msg = write_with(0, test::npy("<f4", {6, 6, 5}, std::string(6 * 6 * 5 * 4, '\0')));
  EXPECT_TRUE(contains(msg, "bad.npz:x_train: images have dtype '<f4'; they must be uint8"));

  msg = write_with(1, test::npy("<i8", {5}, test::le_ints({0, 1, 2, 3, 0}, 8)));
  EXPECT_TRUE(contains(msg, "x_train holds 6 images but y_train holds 5 labels"));

  msg = write_with(3, test::npy("<i2", {2}, test::le_ints({1, -3}, 2)));
  EXPECT_TRUE(contains(msg, "y_test: label -3 at index 1 is negative"));

  msg = write_with(1, test::npy("<f8", {6}, std::string(48, '\0')));
  EXPECT_TRUE(contains(msg, "y_train: labels have dtype '<f8'; they must be integers"));

  auto header = test::npy("<i8", {6}, test::le_ints({0, 1, 2, 3, 0, 1}, 8));
  header.replace(10, 9, "{'dascr':");
  msg = write_with(1, header);
  EXPECT_TRUE(contains(msg, "bad.npz:y_train: bad .npy header: unexpected key 'dascr'"));

  msg = write_with(1, "PK not numpy at all");
  EXPECT_TRUE(contains(msg, "bad.npz:y_train: bad .npy header: no \\x93NUMPY magic"));

  msg = write_with(1, test::npy("<i8", {7}, test::le_ints({0, 1, 2, 3, 0, 1}, 8)));
  EXPECT_TRUE(contains(msg, "holds 48 data bytes but shape [7] of dtype '<i8' needs 56"));

  msg = write_with(2, test::npy("|u1", {2, 3, 6, 5}, std::string(180, '\0')));
  EXPECT_TRUE(contains(msg, "this looks channels-first"));

  test::write_file(tmp / "junk.npz", "this is not a zip archive at all");
  msg = error_of<DataError>([&] { load("npz", tmp / "junk.npz"); });
  EXPECT_TRUE(contains(msg, "junk.npz: not a readable .npz (zip) archive"));
  msg = error_of<DataError>([&] { load("npz", tmp / "absent.npz"); });
  EXPECT_TRUE(contains(msg, "absent.npz: no such file"));
}

TEST_F(UserData, IdxFolderAnyCountAndClassesFromLabels) {
  const auto dir = tmp / "kmnist";
  test::write_gzip(dir / "train-images-idx3-ubyte.gz", test::idx_images(7, 28, 28, 1));
  test::write_gzip(dir / "train-labels-idx1-ubyte.gz", test::idx_labels({0, 1, 2, 3, 4, 5, 46}));
  test::write_file(dir / "test-images-idx3-ubyte", test::idx_images(3, 28, 28, 2));
  test::write_file(dir / "test-labels-idx1-ubyte", test::idx_labels({9, 8, 7}));
  const auto s = load("idx", dir);
  EXPECT_EQ(s.train.size(), 7);
  EXPECT_EQ(s.test.size(), 3);
  EXPECT_EQ(s.train.num_classes, 47);
  EXPECT_EQ(s.train.images.sizes(), torch::IntArrayRef({7, 1, 28, 28}));
  const auto raw = test::idx_images(7, 28, 28, 1);
  EXPECT_EQ(s.train.images[6][0][27][27].item<uint8_t>(), static_cast<uint8_t>(raw.back()));
  EXPECT_TRUE(load("idx", dir).info.cache_hit);

  // EMNIST names its files emnist-<variant>-train-images-idx3-ubyte.
  const auto em = tmp / "emnist";
  test::write_file(em / "emnist-letters-train-images-idx3-ubyte", test::idx_images(2, 28, 28, 3));
  test::write_file(em / "emnist-letters-train-labels-idx1-ubyte", test::idx_labels({1, 26}));
  test::write_file(em / "emnist-letters-test-images-idx3-ubyte", test::idx_images(1, 28, 28, 4));
  test::write_file(em / "emnist-letters-test-labels-idx1-ubyte", test::idx_labels({3}));
  EXPECT_EQ(load("idx", em).train.num_classes, 27);

  fs::remove(dir / "test-labels-idx1-ubyte");
  auto msg = error_of<DataError>([&] { load("idx", dir); });
  EXPECT_TRUE(contains(msg, dir.string() + ": no t10k-labels-idx1-ubyte (or test-)"));
  test::write_file(dir / "test-labels-idx1-ubyte", test::idx_labels({9, 8}));
  msg = error_of<DataError>([&] { load("idx", dir); });
  EXPECT_TRUE(contains(msg, "image/label count mismatch"));
}

TEST_F(UserData, ImageSizeIsChecked) {
  options.image_size = -1;
  EXPECT_TRUE(contains(error_of<InvalidInput>([&] { load("folder", tmp.path()); }),
                       "image size -1 is outside 0..4096"));
}

}  // namespace
}  // namespace dataproxy
