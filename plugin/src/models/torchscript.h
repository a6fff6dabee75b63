// Family torchscript: networks the user writes in Python, exported once per configuration by
// `python3 -m dataproxy.export` (plugin/python/dataproxy/export.py) into a folder with an
// index.json, and loaded here as torch::jit::Module. The wrapper registers the module's
// parameters and buffers as its own, so the trainer's optimizer, to(device), channels_last and
// train()/eval() reach the TorchScript module exactly as they reach a built-in network.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <memory>
#include <string>

#include "dataproxy/model.h"

namespace dataproxy::models {

/// One exported network as the export index records it.
struct TorchScriptExport {
  std::string config_id;
  fs::path file;  ///< absolute
  std::string sha256;
  InputShape input;
  int64_t classes = 0;
  int64_t macs = 0;           ///< counted by the export helper (torch.profiler FLOPs / 2)
  int64_t params = 0;         ///< trainable parameters
  std::string torch_version;  ///< of the torch that wrote the file
};

/// The index entry of `config` for `input` and `num_classes`; throws InvalidInput naming the fix
/// (run the export helper, with which flags) when the index or the entry is missing or stale.
TorchScriptExport find_torchscript_export(const SearchSpace& space, const Config& config,
                                          const InputShape& input, int64_t num_classes);

/// Loads the exported network of `config`: checks the file's sha256 against the index, that it
/// loads, has a `features` method, and maps one zero image of `input` to [1, num_classes].
std::shared_ptr<Network> load_torchscript(const SearchSpace& space, const Config& config,
                                          const InputShape& input, int64_t num_classes);

/// Wraps an already loaded module after the same checks as load_torchscript; `origin` names it
/// in error messages.
std::shared_ptr<Network> wrap_torchscript(torch::jit::Module module, const InputShape& input,
                                          int64_t num_classes, const std::string& origin);

}  // namespace dataproxy::models
