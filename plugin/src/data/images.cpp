#include "data/images.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "data/raw_tensor.h"

namespace dataproxy::data {

bool is_image_file(const fs::path& file) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

torch::Tensor decode_image(const fs::path& file) { return to_tensor(raw::decode_image(file)); }

torch::Tensor resize_image(const torch::Tensor& chw, int64_t height, int64_t width) {
  if (chw.size(1) == height && chw.size(2) == width) return chw;
  namespace F = torch::nn::functional;
  const bool shrink = height < chw.size(1) || width < chw.size(2);
  auto options = F::InterpolateFuncOptions()
                     .size(std::vector<int64_t>{height, width})
                     .mode(torch::kBilinear)
                     .align_corners(false)
                     .antialias(shrink);
  auto out = F::interpolate(chw.unsqueeze(0).to(torch::kFloat), options);
  return out.squeeze(0).round_().clamp_(0, 255).to(torch::kUInt8);
}

}  // namespace dataproxy::data
