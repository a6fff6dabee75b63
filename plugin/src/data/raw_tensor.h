// The data stage's bridge from the torch-free byte layer (data/raw.h) to tensors.
#pragma once

#include <torch/torch.h>

#include <utility>

#include "data/raw.h"

namespace dataproxy::data {

/// `bytes` as a uint8 tensor of `shape`, which takes the buffer over without copying it.
inline torch::Tensor to_tensor(Bytes&& bytes, const std::vector<int64_t>& shape) {
  if (bytes.empty()) return torch::empty(shape, torch::kUInt8);
  auto* holder = new Bytes(std::move(bytes));
  return torch::from_blob(
      holder->data(), shape, [holder](void*) { delete holder; }, torch::kUInt8);
}

inline torch::Tensor to_tensor(raw::Array&& array) {
  return to_tensor(std::move(array.data), array.shape);
}

}  // namespace dataproxy::data
