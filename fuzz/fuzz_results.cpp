// The results store: one JSON line per trial (TrialRecord::from_json), and a whole store file
// read back (torn last line skipped, any other bad line refused with its number).
#include <nlohmann/json.hpp>

#include <string>

#include "dataproxy/error.h"
#include "dataproxy/results.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) {
    try {
      const auto r = dataproxy::TrialRecord::from_json(j);
      dataproxy::TrialRecord::from_json(r.to_json());
    } catch (const dataproxy::Error&) {
    }
  }
  try {
    dataproxy::ResultsStore(dataproxy::fuzz::input_file("results.jsonl", data, size)).load();
  } catch (const dataproxy::Error&) {
  }
  return 0;
}
