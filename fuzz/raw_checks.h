// The readers' byte layer (data/raw.h) promises buffers that match their shapes; a harness that
// gets anything else aborts, which libFuzzer reports as a crash.
#pragma once

#include <cstdint>
#include <cstdlib>

#include "data/raw.h"

namespace dataproxy::fuzz {

inline void check_array(const data::raw::Array& a, std::size_t dims) {
  if (a.shape.size() != dims) std::abort();
  int64_t n = 1;
  for (const auto d : a.shape) {
    if (d < 0) std::abort();
    n *= d;
  }
  if (static_cast<int64_t>(a.data.size()) != n) std::abort();
}

inline void check_samples(const data::raw::Samples& s) {
  check_array(s.images, 4);
  if (static_cast<int64_t>(s.labels.size()) != s.images.shape[0]) std::abort();
}

}  // namespace dataproxy::fuzz
