#include "dataproxy/manifest.h"

#include <algorithm>

#include "dataproxy/error.h"
#include "dataproxy/files.h"

namespace dataproxy {
namespace {

const char* kManifestFile = "manifest.json";
const char* kIndicesFile = "indices.bin";

json load_options_json(const LoadOptions& o) {
  return json{
      {"max_train", o.max_train}, {"max_test", o.max_test}, {"official_sizes", o.official_sizes}};
}

std::string encode_indices(const std::vector<int64_t>& indices) {
  std::string out(indices.size() * 8, '\0');
  for (std::size_t i = 0; i < indices.size(); ++i) {
    const uint64_t v = static_cast<uint64_t>(indices[i]);
    for (int b = 0; b < 8; ++b) out[i * 8 + b] = static_cast<char>((v >> (8 * b)) & 0xff);
  }
  return out;
}

std::vector<int64_t> decode_indices(const std::string& data) {
  std::vector<int64_t> out(data.size() / 8);
  for (std::size_t i = 0; i < out.size(); ++i) {
    uint64_t v = 0;
    for (int b = 0; b < 8; ++b) {
      v |= static_cast<uint64_t>(static_cast<unsigned char>(data[i * 8 + b])) << (8 * b);
    }
    out[i] = static_cast<int64_t>(v);
  }
  return out;
}

std::string content_checksum(json j) {
  j.erase("checksum");
  return sha256_hex(j.dump());
}

torch::Tensor remap_tensor(const Manifest& m) {
  return torch::tensor(m.label_remap, torch::kInt64);
}

}  // namespace

json probe_to_json(const ProbeRecord& p) {
  return json{{"config", p.config},
              {"config_id", p.config_id},
              {"macs", p.macs},
              {"params", p.params},
              {"test_accuracy", p.test_accuracy},
              {"train_seconds", p.train_seconds},
              {"epoch_seconds", p.epoch_seconds},
              {"epochs", p.epochs}};
}

ProbeRecord probe_from_json(const json& j) {
  ProbeRecord p;
  p.config = j.at("config");
  p.config_id = j.at("config_id").get<std::string>();
  p.macs = j.at("macs").get<int64_t>();
  p.params = j.at("params").get<int64_t>();
  p.test_accuracy = j.at("test_accuracy").get<double>();
  p.train_seconds = j.at("train_seconds").get<double>();
  p.epoch_seconds = j.at("epoch_seconds").get<double>();
  p.epochs = j.at("epochs").get<int64_t>();
  return p;
}

int64_t Manifest::proxy_num_classes() const {
  return kept_classes.empty() ? num_classes : static_cast<int64_t>(kept_classes.size());
}

json Manifest::to_json() const {
  json probes_json = json::array();
  for (const auto& p : probes) probes_json.push_back(probe_to_json(p));
  return json{{"schema_version", schema_version},
              {"key", key},
              {"tool_version", tool_version},
              {"created", created},
              {"dataset", dataset},
              {"train_fingerprint", train_fingerprint},
              {"test_fingerprint", test_fingerprint},
              {"train_size", train_size},
              {"test_size", test_size},
              {"num_classes", num_classes},
              {"load_options", load_options_json(load_options)},
              {"space_name", space_name},
              {"space_hash", space_hash},
              {"method", method},
              {"settings", settings},
              {"ratio", ratio},
              {"seed", seed},
              {"size", static_cast<int64_t>(indices.size())},
              {"indices_file", indices_file},
              {"indices_sha256", indices_sha256},
              {"kept_classes", kept_classes},
              {"label_remap", label_remap},
              {"probes", probes_json},
              {"case_counts", case_counts},
              {"class_counts", class_counts},
              {"stage_seconds", stage_seconds},
              {"summary", summary},
              {"checksum", checksum}};
}

Manifest Manifest::from_json(const json& j, const std::string& origin) {
  DATAPROXY_CHECK(j.is_object() && j.contains("schema_version"), DataError,
                  origin << " is not a dataproxy manifest (no schema_version); generate one with "
                            "`dataproxy generate`");
  const int version =
      j.at("schema_version").is_number_integer() ? j.at("schema_version").get<int>() : -1;
  DATAPROXY_CHECK(version == kManifestSchemaVersion, DataError,
                  origin << " has manifest schema_version " << j.at("schema_version")
                         << " but this dataproxy reads version " << kManifestSchemaVersion
                         << "; regenerate the proxy with this version");
  Manifest m;
  try {
    m.schema_version = version;
    m.key = j.at("key").get<std::string>();
    m.tool_version = j.at("tool_version").get<std::string>();
    m.created = j.at("created").get<std::string>();
    m.dataset = j.at("dataset").get<std::string>();
    m.train_fingerprint = j.at("train_fingerprint").get<std::string>();
    m.test_fingerprint = j.at("test_fingerprint").get<std::string>();
    m.train_size = j.at("train_size").get<int64_t>();
    m.test_size = j.at("test_size").get<int64_t>();
    m.num_classes = j.at("num_classes").get<int64_t>();
    const json& lo = j.at("load_options");
    m.load_options.max_train = lo.at("max_train").get<int64_t>();
    m.load_options.max_test = lo.at("max_test").get<int64_t>();
    m.load_options.official_sizes = lo.at("official_sizes").get<bool>();
    m.space_name = j.at("space_name").get<std::string>();
    m.space_hash = j.at("space_hash").get<std::string>();
    m.method = j.at("method").get<std::string>();
    m.settings = j.at("settings");
    m.ratio = j.at("ratio").get<double>();
    m.seed = j.at("seed").get<uint64_t>();
    m.indices_file = j.at("indices_file").get<std::string>();
    m.indices_sha256 = j.at("indices_sha256").get<std::string>();
    m.kept_classes = j.at("kept_classes").get<std::vector<int64_t>>();
    m.label_remap = j.at("label_remap").get<std::vector<int64_t>>();
    for (const auto& p : j.at("probes")) m.probes.push_back(probe_from_json(p));
    m.case_counts = j.at("case_counts");
    m.class_counts = j.at("class_counts").get<std::vector<int64_t>>();
    m.stage_seconds = j.at("stage_seconds");
    m.summary = j.at("summary");
    m.checksum = j.at("checksum").get<std::string>();
  } catch (const json::exception& e) {
    throw DataError(origin + " is not a valid manifest: " + e.what() +
                    "; regenerate it with `dataproxy generate`");
  }
  return m;
}

std::string manifest_key(const Manifest& m) {
  json deciding{{"kind", "dataproxy.proxy"},
                {"dataset", m.dataset},
                {"train_fingerprint", m.train_fingerprint},
                {"test_fingerprint", m.test_fingerprint},
                {"train_size", m.train_size},
                {"test_size", m.test_size},
                {"load_options", load_options_json(m.load_options)},
                {"space_hash", m.space_hash},
                {"method", m.method},
                {"settings", m.settings},
                {"ratio", m.ratio},
                {"seed", m.seed},
                {"tool_version", m.tool_version}};
  return sha256_hex(deciding.dump());
}

void save_manifest(const Manifest& manifest, const fs::path& dir) {
  Manifest m = manifest;
  const std::string data = encode_indices(m.indices);
  m.indices_file = kIndicesFile;
  m.indices_sha256 = sha256_hex(data);
  // The side file first: a manifest.json on disk always has its indices.
  atomic_write(dir / kIndicesFile, data);
  json j = m.to_json();
  j["checksum"] = content_checksum(j);
  atomic_write(dir / kManifestFile, j.dump(2) + "\n");
}

Manifest load_manifest(const fs::path& path) {
  const fs::path file = fs::is_directory(path) ? path / kManifestFile : path;
  const fs::path dir = file.parent_path();
  DATAPROXY_CHECK(fs::exists(file), InvalidInput,
                  "no manifest at "
                      << file.string()
                      << "; pass the manifest.json that `dataproxy generate` printed");
  json j;
  try {
    j = json::parse(read_file(file));
  } catch (const json::exception& e) {
    throw DataError(file.string() + " is not valid JSON (" + e.what() +
                    "); delete its folder and run `dataproxy generate` again");
  }
  Manifest m = Manifest::from_json(j, file.string());
  DATAPROXY_CHECK(content_checksum(j) == m.checksum, DataError,
                  file.string() << " was changed after it was written (its checksum does not "
                                   "match its content); delete the folder "
                                << dir.string() << " and run `dataproxy generate` again");
  DATAPROXY_CHECK(manifest_key(m) == m.key, DataError,
                  file.string() << ": key " << m.key
                                << " does not match the manifest's fields; delete the folder "
                                << dir.string() << " and run `dataproxy generate` again");
  const fs::path indices = dir / m.indices_file;
  DATAPROXY_CHECK(!m.indices_file.empty() && fs::exists(indices), DataError,
                  "the indices file " << indices.string() << " named by " << file.string()
                                      << " is missing; delete the folder " << dir.string()
                                      << " and run `dataproxy generate` again");
  const std::string data = read_file(indices);
  DATAPROXY_CHECK(sha256_hex(data) == m.indices_sha256, DataError,
                  "the indices file " << indices.string()
                                      << " was changed (SHA-256 differs from the manifest's "
                                      << m.indices_sha256 << "); delete the folder " << dir.string()
                                      << " and run `dataproxy generate` again");
  DATAPROXY_CHECK(data.size() % 8 == 0, DataError,
                  indices.string()
                      << " has " << data.size() << " bytes, not a whole number of int64 indices");
  m.indices = decode_indices(data);
  DATAPROXY_CHECK(j.at("size").is_number_integer() &&
                      j.at("size").get<int64_t>() == static_cast<int64_t>(m.indices.size()),
                  DataError,
                  file.string() << " says size " << j.at("size") << " but " << indices.string()
                                << " holds " << m.indices.size() << " indices");
  for (std::size_t i = 0; i < m.indices.size(); ++i) {
    DATAPROXY_CHECK(m.indices[i] >= 0 && m.indices[i] < m.train_size &&
                        (i == 0 || m.indices[i] > m.indices[i - 1]),
                    DataError,
                    indices.string() << ": index " << m.indices[i] << " at position " << i
                                     << " is out of range or out of order");
  }
  DATAPROXY_CHECK(static_cast<int64_t>(m.label_remap.size()) == m.num_classes, DataError,
                  file.string() << ": label_remap has " << m.label_remap.size() << " entries for "
                                << m.num_classes << " classes");
  return m;
}

void check_dataset(const Manifest& manifest, const Dataset& train) {
  DATAPROXY_CHECK(train.size() == manifest.train_size, InvalidInput,
                  "manifest " << manifest.key.substr(0, 12) << " was built from "
                              << manifest.train_size << " training samples of '" << manifest.dataset
                              << "' but this train split has " << train.size()
                              << "; load the dataset with the manifest's load_options (max_train "
                              << manifest.load_options.max_train << ")");
  const std::string fp = fingerprint(train);
  DATAPROXY_CHECK(fp == manifest.train_fingerprint, InvalidInput,
                  "manifest " << manifest.key.substr(0, 12) << " was built from '"
                              << manifest.dataset << "' train data with fingerprint "
                              << manifest.train_fingerprint << " but this data has " << fp
                              << "; use the same dataset files, or generate a proxy for this data");
}

Dataset proxy_train_set(const Manifest& manifest, const Dataset& full_train) {
  check_dataset(manifest, full_train);
  torch::Tensor idx = torch::tensor(manifest.indices, torch::kInt64);
  Dataset out = subset(full_train, idx);
  out.labels = remap_tensor(manifest).index_select(0, out.labels);
  out.num_classes = manifest.proxy_num_classes();
  if (!full_train.class_names.empty() && !manifest.kept_classes.empty()) {
    out.class_names.clear();
    for (int64_t c : manifest.kept_classes) out.class_names.push_back(full_train.class_names[c]);
  }
  out.name = full_train.name + "@proxy-" + manifest.key.substr(0, 12);
  return out;
}

Dataset proxy_test_set(const Manifest& manifest, const Dataset& full_test) {
  DATAPROXY_CHECK(full_test.size() == manifest.test_size, InvalidInput,
                  "manifest " << manifest.key.substr(0, 12) << " was built with "
                              << manifest.test_size << " test samples but this test split has "
                              << full_test.size() << "; load it with max_test "
                              << manifest.load_options.max_test);
  const std::string fp = fingerprint(full_test);
  DATAPROXY_CHECK(fp == manifest.test_fingerprint, InvalidInput,
                  "manifest " << manifest.key.substr(0, 12) << " was built from '"
                              << manifest.dataset << "' test data with fingerprint "
                              << manifest.test_fingerprint << " but this data has " << fp
                              << "; use the same dataset files, or generate a proxy for this data");
  torch::Tensor remap = remap_tensor(manifest);
  torch::Tensor mapped = remap.index_select(0, full_test.labels.to(torch::kInt64));
  torch::Tensor keep = mapped.ge(0).nonzero().view({-1});
  Dataset out = keep.size(0) == full_test.size() ? full_test : subset(full_test, keep);
  out.labels = mapped.index_select(0, keep);
  out.num_classes = manifest.proxy_num_classes();
  if (!full_test.class_names.empty() && !manifest.kept_classes.empty()) {
    out.class_names.clear();
    for (int64_t c : manifest.kept_classes) out.class_names.push_back(full_test.class_names[c]);
  }
  return out;
}

}  // namespace dataproxy
