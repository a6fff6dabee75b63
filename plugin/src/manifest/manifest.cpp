#include "dataproxy/manifest.h"

#include <algorithm>

#include "dataproxy/error.h"
#include "dataproxy/files.h"

namespace dataproxy {
namespace {

const char* kIndicesFile = "indices.bin";
const char* kSelectionFile = "selection.bin";
const char* kEvaluationFile = "evaluation.bin";

json load_options_json(const LoadOptions& o) {
  json j{
      {"max_train", o.max_train}, {"max_test", o.max_test}, {"official_sizes", o.official_sizes}};
  // Only when set, so that the keys of manifests written before image_size existed still hold.
  if (o.image_size != 0) j["image_size"] = o.image_size;
  return j;
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

}  // namespace

json probe_to_json(const ProbeRecord& p) {
  return json{{"config", p.config},
              {"config_id", p.config_id},
              {"macs", p.macs},
              {"params", p.params},
              {"test_accuracy", p.test_accuracy},
              {"selection_accuracy", p.selection_accuracy},
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
  p.selection_accuracy = j.value("selection_accuracy", -1.0);
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
              {"selection",
               {{"split", selection.split},
                {"fraction", selection.fraction},
                {"seed", selection.seed},
                {"selection_size", static_cast<int64_t>(selection.selection.size())},
                {"selection_file", selection.selection_file},
                {"selection_sha256", selection.selection_sha256},
                {"evaluation_size", static_cast<int64_t>(selection.evaluation.size())},
                {"evaluation_file", selection.evaluation_file},
                {"evaluation_sha256", selection.evaluation_sha256}}},
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
    m.load_options.image_size = lo.value("image_size", int64_t{0});
    m.space_name = j.at("space_name").get<std::string>();
    m.space_hash = j.at("space_hash").get<std::string>();
    m.method = j.at("method").get<std::string>();
    m.settings = j.at("settings");
    m.ratio = j.at("ratio").get<double>();
    m.seed = j.at("seed").get<uint64_t>();
    m.indices_file = j.at("indices_file").get<std::string>();
    m.indices_sha256 = j.at("indices_sha256").get<std::string>();
    // Not kept: load_manifest checks it against the indices side file.
    static_cast<void>(j.at("size").get<int64_t>());
    const json& sel = j.at("selection");
    m.selection.split = sel.at("split").get<std::string>();
    m.selection.fraction = sel.at("fraction").get<double>();
    m.selection.seed = sel.at("seed").get<uint64_t>();
    m.selection.selection_file = sel.at("selection_file").get<std::string>();
    m.selection.selection_sha256 = sel.at("selection_sha256").get<std::string>();
    m.selection.evaluation_file = sel.at("evaluation_file").get<std::string>();
    m.selection.evaluation_sha256 = sel.at("evaluation_sha256").get<std::string>();
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
                {"selection",
                 {{"split", m.selection.split},
                  {"fraction", m.selection.fraction},
                  {"seed", m.selection.seed}}},
                {"tool_version", m.tool_version}};
  return sha256_hex(deciding.dump());
}

void save_manifest(const Manifest& manifest, const fs::path& dir) {
  Manifest m = manifest;
  const std::string data = encode_indices(m.indices);
  const std::string selection = encode_indices(m.selection.selection);
  const std::string evaluation = encode_indices(m.selection.evaluation);
  m.indices_file = kIndicesFile;
  m.indices_sha256 = sha256_hex(data);
  m.selection.selection_file = kSelectionFile;
  m.selection.selection_sha256 = sha256_hex(selection);
  m.selection.evaluation_file = kEvaluationFile;
  m.selection.evaluation_sha256 = sha256_hex(evaluation);
  // The side files first: a manifest.json on disk always has its indices.
  atomic_write(dir / kIndicesFile, data);
  atomic_write(dir / kSelectionFile, selection);
  atomic_write(dir / kEvaluationFile, evaluation);
  json j = m.to_json();
  j["checksum"] = content_checksum(j);
  atomic_write(dir / kManifestFileName, j.dump(2) + "\n");
}

namespace {

// Reads a side file named by a manifest: a plain file in the manifest's own folder, unchanged
// since writing, holding ascending, distinct indices in [0, limit).
std::vector<int64_t> load_side_file(const fs::path& file, const std::string& name,
                                    const std::string& sha256, int64_t limit,
                                    const std::string& what) {
  const fs::path dir = file.parent_path();
  const std::string redo =
      "; delete the folder " + dir.string() + " and run `dataproxy generate` again";
  const fs::path rel(name);
  DATAPROXY_CHECK(!name.empty() && rel.filename() == rel && name != "." && name != "..", DataError,
                  file.string() << " names its " << what << " file '" << name
                                << "', which is not a file in the manifest's own folder" << redo);
  const fs::path path = dir / rel;
  DATAPROXY_CHECK(fs::exists(fs::symlink_status(path)), DataError,
                  "the " << what << " file " << path.string() << " named by " << file.string()
                         << " is missing" << redo);
  DATAPROXY_CHECK(
      !fs::is_symlink(path) && fs::is_regular_file(path), DataError,
      "the " << what << " file " << path.string() << " is a symlink or not a regular file" << redo);
  const std::string data = read_file(path);
  DATAPROXY_CHECK(sha256_hex(data) == sha256, DataError,
                  "the " << what << " file " << path.string()
                         << " was changed (SHA-256 differs from the manifest's " << sha256 << ")"
                         << redo);
  DATAPROXY_CHECK(data.size() % 8 == 0, DataError,
                  path.string() << " has " << data.size()
                                << " bytes, not a whole number of int64 indices" << redo);
  std::vector<int64_t> out = decode_indices(data);
  for (std::size_t i = 0; i < out.size(); ++i) {
    DATAPROXY_CHECK(out[i] >= 0 && out[i] < limit && (i == 0 || out[i] > out[i - 1]), DataError,
                    path.string() << ": index " << out[i] << " at position " << i
                                  << " is out of range [0, " << limit << "), unsorted or repeated"
                                  << redo);
  }
  return out;
}

}  // namespace

Manifest load_manifest(const fs::path& path) {
  const fs::path file = manifest_file(path);
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
  m.indices = load_side_file(file, m.indices_file, m.indices_sha256, m.train_size, "indices");
  DATAPROXY_CHECK(j.at("size").is_number_integer() &&
                      j.at("size").get<int64_t>() == static_cast<int64_t>(m.indices.size()),
                  DataError,
                  file.string() << " says size " << j.at("size") << " but its indices file holds "
                                << m.indices.size() << " indices; delete the folder "
                                << dir.string() << " and run `dataproxy generate` again");
  m.selection.selection = load_side_file(file, m.selection.selection_file,
                                         m.selection.selection_sha256, m.test_size, "selection");
  m.selection.evaluation = load_side_file(file, m.selection.evaluation_file,
                                          m.selection.evaluation_sha256, m.test_size, "evaluation");
  DATAPROXY_CHECK(!m.selection.evaluation.empty(), DataError,
                  file.string() << " has no evaluation samples; regenerate the proxy");
  if (m.selection.split == "paper-test") {
    DATAPROXY_CHECK(m.selection.selection == m.selection.evaluation &&
                        static_cast<int64_t>(m.selection.evaluation.size()) == m.test_size,
                    DataError,
                    file.string() << " says selection split 'paper-test' but its selection and "
                                     "evaluation sets are not both the whole test split");
  } else {
    std::vector<int64_t> both;
    std::set_intersection(m.selection.selection.begin(), m.selection.selection.end(),
                          m.selection.evaluation.begin(), m.selection.evaluation.end(),
                          std::back_inserter(both));
    DATAPROXY_CHECK(
        both.empty(), DataError,
        file.string() << ": its evaluation set overlaps its selection set in " << both.size()
                      << " test samples (e.g. index " << (both.empty() ? 0 : both.front())
                      << "), so candidates would be ranked on samples that chose the proxy; "
                         "regenerate it with `dataproxy generate --selection-split half-test`");
  }
  DATAPROXY_CHECK(static_cast<int64_t>(m.label_remap.size()) == m.num_classes, DataError,
                  file.string() << ": label_remap has " << m.label_remap.size() << " entries for "
                                << m.num_classes << " classes");
  return m;
}

fs::path proxies_dir(const fs::path& cache) { return cache / "proxies"; }

fs::path proxy_dir(const fs::path& cache, const std::string& key) {
  return proxies_dir(cache) / key;
}

fs::path proxy_lock_file(const fs::path& cache, const std::string& key) {
  return proxies_dir(cache) / (key + ".lock");
}

fs::path proxy_manifest_file(const fs::path& cache, const std::string& key) {
  return proxy_dir(cache, key) / kManifestFileName;
}

fs::path probes_dir(const fs::path& cache) { return cache / "probes"; }

fs::path data_cache_dir(const fs::path& cache) { return cache / "data"; }

fs::path manifest_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) ? path / kManifestFileName : path;
}

PairingManifest pairing_of(const Manifest& manifest) {
  PairingManifest m;
  m.key = manifest.key;
  for (const ProbeRecord& p : manifest.probes) {
    if (!p.config_id.empty()) m.probes.emplace_back(p.config_id, p.test_accuracy);
  }
  return m;
}

}  // namespace dataproxy
