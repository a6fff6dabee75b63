// SearchSpace::parse: a user's search-space YAML, and what is done with a space once parsed.
#include <string>

#include "dataproxy/error.h"
#include "dataproxy/search_space.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto space = dataproxy::SearchSpace::parse(text, "fuzz.yaml");
    space.to_nni();
    space.to_optuna();
    space.content_hash();
  } catch (const dataproxy::Error&) {
  }
  return 0;
}
