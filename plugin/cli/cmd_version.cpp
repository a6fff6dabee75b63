#include <torch/torch.h>

#include <iostream>

#include "command.h"
#include "dataproxy/version.h"

namespace dataproxy::cli {
namespace {

int run_version(const std::vector<std::string>&) {
  std::cout << "dataproxy " << kVersion << " (LibTorch " << TORCH_VERSION << ", CUDA "
            << (torch::cuda::is_available() ? "available" : "not available") << ")\n";
  return 0;
}

}  // namespace
DATAPROXY_REGISTER_COMMAND(version,
                           {"version", "print the version and the LibTorch in use", run_version});
}  // namespace dataproxy::cli
