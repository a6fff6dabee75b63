// The CIFAR-10 and CIFAR-100 binary readers. Input: 1 byte choosing the reader, then the file.
#include "dataproxy/dataset.h"
#include "dataproxy/error.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  try {
    const auto file = dataproxy::fuzz::input_file("batch.bin", data + 1, size - 1);
    switch (data[0] % 3) {
      case 0:
        dataproxy::read_cifar10_batches({file}, "fuzz");
        break;
      case 1:
        dataproxy::read_cifar100_file(file, dataproxy::Cifar100Label::fine, "fuzz");
        break;
      default:
        dataproxy::read_cifar100_file(file, dataproxy::Cifar100Label::coarse, "fuzz");
    }
  } catch (const dataproxy::Error&) {
  }
  return 0;
}
