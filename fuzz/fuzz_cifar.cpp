// The CIFAR-10 and CIFAR-100 binary readers. Input: 1 byte choosing the reader, then the file.
#include "data/raw.h"
#include "dataproxy/error.h"
#include "fuzz_util.h"
#include "raw_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  namespace raw = dataproxy::data::raw;
  try {
    const auto file = dataproxy::fuzz::input_file("batch.bin", data + 1, size - 1);
    switch (data[0] % 3) {
      case 0:
        dataproxy::fuzz::check_samples(raw::read_cifar10({file}, nullptr));
        break;
      case 1:
        dataproxy::fuzz::check_samples(raw::read_cifar100(file, true));
        break;
      default:
        dataproxy::fuzz::check_samples(raw::read_cifar100(file, false));
    }
  } catch (const dataproxy::Error&) {
  }
  return 0;
}
