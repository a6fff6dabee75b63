// Readers for data a user already has: ImageFolder trees, Keras-layout .npz files, IDX
// folders. Each decodes through the decode cache (data/cache.h) unless LoadOptions say not to.
#pragma once

#include <torch/torch.h>

#include <filesystem>

#include "dataproxy/dataset.h"

namespace dataproxy::data {

namespace fs = std::filesystem;

/// root/{train,test}/<class>/*.{png,jpg,jpeg}.
DatasetSplits load_image_folder(const fs::path& root, const LoadOptions& options);

/// A .npz with x_train, y_train, x_test, y_test.
DatasetSplits load_npz(const fs::path& file, const LoadOptions& options);

/// A folder of MNIST-layout IDX files.
DatasetSplits load_idx_folder(const fs::path& dir, const LoadOptions& options);

/// Every image of uint8 [N, C, H, W] resized to [N, C, height, width] (see resize_image()).
torch::Tensor resize_all(const torch::Tensor& images, int64_t height, int64_t width);

}  // namespace dataproxy::data
