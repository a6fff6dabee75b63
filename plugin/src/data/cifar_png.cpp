#include "data/cifar_png.h"

#include "data/bytes.h"
#include "data/raw_tensor.h"
#include "dataproxy/error.h"

namespace dataproxy::data {
namespace {

raw::Array to_raw(const torch::Tensor& t) {
  const auto bytes = t.to(torch::kUInt8).contiguous();
  const auto* p = bytes.data_ptr<uint8_t>();
  return {Bytes(p, p + bytes.numel()), t.sizes().vec()};
}

std::vector<int64_t> label_list(const torch::Tensor& labels, const std::string& source) {
  DATAPROXY_CHECK(labels.dim() == 1, DataError,
                  source << ": expected one list of labels, got shape " << labels.sizes());
  const auto l = labels.to(torch::kInt64).contiguous();
  return {l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel()};
}

}  // namespace

torch::Tensor decode_png_rgb(const fs::path& file) { return to_tensor(raw::decode_png_rgb(file)); }

torch::Tensor cifar_rows_to_records(const torch::Tensor& rgb_rows, const torch::Tensor& labels,
                                    const std::string& source) {
  return to_tensor(
      raw::cifar_rows_to_records(to_raw(rgb_rows), label_list(labels, source), source));
}

void convert_cifar_png(const fs::path& png, const torch::Tensor& labels, const fs::path& out) {
  const auto rows = raw::decode_png_rgb(png);
  const auto recs =
      raw::cifar_rows_to_records(rows, label_list(labels, png.string()), png.string());
  write_bytes(out, recs.data.data(), recs.data.size());
}

}  // namespace dataproxy::data
