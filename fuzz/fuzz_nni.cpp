// What NNI sends a trial: a parameter record (parameter.cfg, or inside an HTTP command), the
// command itself, and the metric values the trial sends back.
#include <nlohmann/json.hpp>

#include <string>

#include "dataproxy/error.h"
#include "nni_channel.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  namespace nni = dataproxy::nni;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    nni::parse_parameter_record(text, "fuzz");
  } catch (const dataproxy::Error&) {
  }
  try {
    nni::parse_parameter_command(text, "fuzz");
  } catch (const dataproxy::Error&) {
  }
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) {
    try {
      nni::check_metric_value(j);
      nni::Metric metric;
      metric.value = j;
      nni::encode_file_metric(nni::encode_metric(metric));
    } catch (const dataproxy::Error&) {
    }
  }
  return 0;
}
