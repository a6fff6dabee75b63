// Image files (PNG through libpng, JPEG through libjpeg; data/raw.h) decoded to uint8 tensors,
// and resizing.
#pragma once

#include <torch/torch.h>

#include <filesystem>

namespace dataproxy::data {

namespace fs = std::filesystem;

/// True for the extensions decode_image() reads: .png, .jpg, .jpeg (any case).
bool is_image_file(const fs::path& file);

/// Decodes a PNG or JPEG (chosen by the file's first bytes) to uint8 [H, W, C]: C = 1 for
/// grayscale files, else 3 (RGB; palette expanded, alpha dropped as PIL's convert("RGB")
/// does). Throws DataError naming `file` when it is unreadable, truncated or corrupt.
torch::Tensor decode_image(const fs::path& file);

/// Resizes uint8 [C, H, W] to [C, height, width]: bilinear, antialiased when shrinking
/// (torchvision's Resize on tensors), rounded back to uint8.
torch::Tensor resize_image(const torch::Tensor& chw, int64_t height, int64_t width);

}  // namespace dataproxy::data
