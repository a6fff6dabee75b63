// Manifest::from_json (the proxy manifest's JSON) and load_manifest on a folder holding it.
#include <nlohmann/json.hpp>

#include <string>

#include "dataproxy/error.h"
#include "dataproxy/manifest.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) {
    try {
      const auto m = dataproxy::Manifest::from_json(j, "fuzz");
      m.to_json();
      dataproxy::manifest_key(m);
      m.proxy_num_classes();
    } catch (const dataproxy::Error&) {
    }
  }
  try {
    dataproxy::load_manifest(dataproxy::fuzz::input_file("manifest.json", data, size));
  } catch (const dataproxy::Error&) {
  }
  return 0;
}
