// IDX images + labels (Fashion-MNIST's format), raw or gzip, and the gzip reader on its own.
// Input: 2 bytes of split point, then the images file and the labels file.
#include "data/bytes.h"
#include "data/raw.h"
#include "dataproxy/error.h"
#include "fuzz_util.h"
#include "raw_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t split = std::min<std::size_t>(size - 2, (std::size_t(data[0]) << 8) | data[1]);
  const uint8_t* body = data + 2;
  const std::size_t n = size - 2;
  try {
    if (dataproxy::data::is_gzip(body, n)) dataproxy::data::gunzip(body, n, "fuzz.gz");
  } catch (const dataproxy::Error&) {
  }
  try {
    const auto images = dataproxy::fuzz::input_file("images-idx3-ubyte", body, split);
    const auto labels = dataproxy::fuzz::input_file("labels-idx1-ubyte", body + split, n - split);
    const auto s = dataproxy::data::raw::read_idx(images, labels, 10);
    dataproxy::fuzz::check_samples(s);
  } catch (const dataproxy::Error&) {
  }
  return 0;
}
