// The readers' torch-free byte layer (data/raw.h) against the tensors the data stage builds from
// it: same shapes, same bytes, same labels, same errors.
#include <gtest/gtest.h>
#include <png.h>
#include <torch/torch.h>
#include <zlib.h>

#include "data/cifar_png.h"
#include "data/images.h"
#include "data/raw.h"
#include "data_test_util.h"
#include "dataproxy/dataset.h"
#include "dataproxy/error.h"
#include "image_writers.h"

namespace dataproxy {
namespace {

using test::error_of;
using test::TempFolder;

class RawLayer : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
  TempFolder tmp;
};

/// The tensor holds exactly the array: shape, dtype, contiguity and every byte.
void expect_same(const torch::Tensor& t, const data::raw::Array& a) {
  ASSERT_EQ(t.sizes().vec(), a.shape);
  ASSERT_EQ(t.scalar_type(), torch::kUInt8);
  ASSERT_TRUE(t.is_contiguous());
  ASSERT_EQ(static_cast<std::size_t>(t.numel()), a.data.size());
  const auto* p = t.data_ptr<uint8_t>();
  EXPECT_EQ(std::vector<uint8_t>(p, p + t.numel()), a.data);
}

void expect_same_labels(const torch::Tensor& t, const data::Bytes& labels) {
  ASSERT_EQ(t.scalar_type(), torch::kInt64);
  ASSERT_EQ(t.dim(), 1);
  ASSERT_EQ(static_cast<std::size_t>(t.numel()), labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    ASSERT_EQ(t[static_cast<int64_t>(i)].item<int64_t>(), labels[i]) << "label " << i;
  }
}

TEST_F(RawLayer, IdxGzipMatchesTheDataset) {
  const auto images = test::idx_images(5, 6, 7, 3);
  test::write_gzip(tmp / "i.gz", images);
  test::write_file(tmp / "l", test::idx_labels({0, 9, 4, 4, 1}));
  const auto raw = data::raw::read_idx(tmp / "i.gz", tmp / "l", 10);
  EXPECT_EQ(raw.images.shape, (std::vector<int64_t>{5, 1, 6, 7}));
  EXPECT_EQ(raw.labels, (data::Bytes{0, 9, 4, 4, 1}));
  EXPECT_EQ(raw.images.data, data::Bytes(images.begin() + 16, images.end()));
  const auto d = read_idx(tmp / "i.gz", tmp / "l", "idx");
  expect_same(d.images, raw.images);
  expect_same_labels(d.labels, raw.labels);
}

TEST_F(RawLayer, Cifar10AcrossFilesMatchesTheDataset) {
  test::write_file(tmp / "a.bin", test::cifar10_records({3, 0, 9}, 1));
  test::write_file(tmp / "b.bin", test::cifar10_records({7}, 2));
  std::vector<int64_t> counts;
  const auto raw = data::raw::read_cifar10({tmp / "a.bin", tmp / "b.bin"}, &counts);
  EXPECT_EQ(counts, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(raw.images.shape, (std::vector<int64_t>{4, 3, 32, 32}));
  EXPECT_EQ(raw.labels, (data::Bytes{3, 0, 9, 7}));
  const auto d = read_cifar10_batches({tmp / "a.bin", tmp / "b.bin"}, "c10");
  expect_same(d.images, raw.images);
  expect_same_labels(d.labels, raw.labels);
}

TEST_F(RawLayer, Cifar100BothLabelsMatchTheDataset) {
  std::string recs;
  for (auto [coarse, fine] : {std::pair{19, 99}, std::pair{0, 5}}) {
    recs.push_back(static_cast<char>(coarse));
    recs.push_back(static_cast<char>(fine));
    recs += test::random_bytes(3072, static_cast<uint32_t>(fine));
  }
  test::write_file(tmp / "c.bin", recs);
  for (bool fine : {true, false}) {
    const auto raw = data::raw::read_cifar100(tmp / "c.bin", fine);
    EXPECT_EQ(raw.labels, (fine ? data::Bytes{99, 5} : data::Bytes{19, 0}));
    const auto d = read_cifar100_file(tmp / "c.bin",
                                      fine ? Cifar100Label::fine : Cifar100Label::coarse, "c100");
    expect_same(d.images, raw.images);
    expect_same_labels(d.labels, raw.labels);
  }
}

TEST_F(RawLayer, DecodedImagesMatchTheTensors) {
  const auto rgb = torch::randint(0, 256, {5, 4, 3}, torch::kUInt8);
  test::write_png(tmp / "rgb.png", rgb);
  test::write_png(tmp / "gray.png", rgb.narrow(2, 0, 1));
  test::write_jpeg(tmp / "photo.jpg", rgb);
  // RGBA: the alpha channel is dropped, the colour values kept.
  const auto rgba = torch::randint(0, 256, {3, 2, 4}, torch::kUInt8);
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = 2;
  image.height = 3;
  image.format = PNG_FORMAT_RGBA;
  ASSERT_TRUE(png_image_write_to_file(&image, (tmp / "rgba.png").c_str(), 0,
                                      rgba.data_ptr<uint8_t>(), 0, nullptr));
  for (const char* name : {"rgb.png", "gray.png", "photo.jpg", "rgba.png"}) {
    SCOPED_TRACE(name);
    const auto raw = data::raw::decode_image(tmp / name);
    expect_same(data::decode_image(tmp / name), raw);
  }
  const auto alpha_dropped = data::raw::decode_image(tmp / "rgba.png");
  const auto want = rgba.narrow(2, 0, 3).contiguous();
  EXPECT_EQ(alpha_dropped.data,
            data::Bytes(want.data_ptr<uint8_t>(), want.data_ptr<uint8_t>() + want.numel()));
  const auto rows = data::raw::decode_png_rgb(tmp / "rgb.png");
  EXPECT_EQ(rows.data, data::Bytes(rgb.data_ptr<uint8_t>(), rgb.data_ptr<uint8_t>() + rgb.numel()));
  expect_same(data::decode_png_rgb(tmp / "rgb.png"), rows);
}

TEST_F(RawLayer, CifarRowsToRecordsMatchesTheTensors) {
  const auto rows = torch::randint(0, 256, {2, 1024, 3}, torch::kUInt8);
  const auto labels = torch::tensor({6, 2}, torch::kInt64);
  const data::raw::Array raw_rows{
      data::Bytes(rows.data_ptr<uint8_t>(), rows.data_ptr<uint8_t>() + rows.numel()), {2, 1024, 3}};
  const auto recs = data::raw::cifar_rows_to_records(raw_rows, {6, 2}, "rows");
  expect_same(data::cifar_rows_to_records(rows, labels, "rows"), recs);
  EXPECT_EQ(recs.data[0], 6);
  EXPECT_EQ(recs.data[3073], 2);
  // Image 1, green plane, pixel 17.
  EXPECT_EQ(recs.data[3073 + 1 + 1024 + 17], rows[1][17][1].item<uint8_t>());
}

TEST_F(RawLayer, ErrorsAreTheSame) {
  test::write_file(tmp / "i", test::idx_images(2, 3, 3, 1).substr(0, 20));
  test::write_file(tmp / "l", test::idx_labels({1, 2}));
  const auto raw = error_of<DataError>([&] { data::raw::read_idx(tmp / "i", tmp / "l", 10); });
  EXPECT_TRUE(test::contains(raw, "the header announces shape [2, 3, 3], which needs 34 bytes"));
  EXPECT_EQ(error_of<DataError>([&] { read_idx(tmp / "i", tmp / "l", "x"); }), raw);

  test::write_file(tmp / "bad.bin", test::cifar10_records({1, 12}, 1));
  const auto c10 =
      error_of<DataError>([&] { data::raw::read_cifar10({tmp / "bad.bin"}, nullptr); });
  EXPECT_TRUE(test::contains(c10, "record 1 has label 12, out of range 0..9"));
  EXPECT_EQ(error_of<DataError>([&] { read_cifar10_batches({tmp / "bad.bin"}, "x"); }), c10);

  test::write_file(tmp / "not.png", "GIF89a and more");
  const auto img = error_of<DataError>([&] { data::raw::decode_image(tmp / "not.png"); });
  EXPECT_TRUE(test::contains(img, "neither a PNG nor a JPEG"));
  EXPECT_EQ(error_of<DataError>([&] { data::decode_image(tmp / "not.png"); }), img);
}

/// A 69-byte PNG whose header announces width x height 8-bit RGB pixels (CRCs valid).
std::string png_announcing(uint32_t width, uint32_t height) {
  auto chunk = [](const std::string& type, const std::string& body) {
    const std::string tb = type + body;
    const auto crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(tb.data()), static_cast<uInt>(tb.size())));
    return test::be32(static_cast<uint32_t>(body.size())) + tb + test::be32(crc);
  };
  const std::string ihdr =
      test::be32(width) + test::be32(height) + std::string("\x08\x02\0\0\0", 5);
  // zlib's stream of one black pixel row: filter byte 0, then R, G, B = 0.
  const std::string idat("\x78\x9c\x63\x60\x60\x60\x00\x00\x00\x04\x00\x01", 12);
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) + chunk("IDAT", idat) +
         chunk("IEND", "");
}

// Found with a crafted fuzz input: 69 bytes made both decoders allocate 3 TB for the announced
// pixels.
TEST_F(RawLayer, PngHeaderAnnouncingMoreThanTheFileHoldsIsRefused) {
  test::write_file(tmp / "huge.png", png_announcing(1000000, 1000000));
  for (auto decode : {+[](const fs::path& f) { data::decode_image(f); },
                      +[](const fs::path& f) { data::decode_png_rgb(f); }}) {
    const auto msg = error_of<DataError>([&] { decode(tmp / "huge.png"); });
    EXPECT_TRUE(test::contains(msg, "huge.png"));
    EXPECT_TRUE(test::contains(msg, "damaged PNG (the header announces 1000000x1000000 pixels"));
  }
  // The same header with its few pixels present decodes: the bound only refuses the impossible.
  test::write_file(tmp / "small.png", png_announcing(1, 1));
  const auto one = data::raw::decode_image(tmp / "small.png");
  EXPECT_EQ(one.shape, (std::vector<int64_t>{1, 1, 3}));
}

}  // namespace
}  // namespace dataproxy
