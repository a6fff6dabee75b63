// Proxy manifests: the versioned record of one generated data proxy, and the cache it lives in.
// Torch-free (library dataproxy::manifest): the report and the fuzzers read manifests without
// LibTorch. The views of a dataset through a manifest (proxy_train_set, ...) are in dataset.h.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dataproxy/load_options.h"
#include "dataproxy/results.h"

namespace dataproxy {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// Current manifest schema; loaders refuse other versions with a message.
inline constexpr int kManifestSchemaVersion = 2;

/// A probe network trained on the full data. Its accuracies are free spot checks.
struct ProbeRecord {
  json config;            ///< the configuration, as in the search space
  std::string config_id;  ///< SearchSpace::config_id
  int64_t macs = 0;
  int64_t params = 0;
  double test_accuracy = 0;  ///< full-data training, on the samples candidates are ranked on
  /// Accuracy on the selection samples (decides which probe of a pair is the more accurate);
  /// -1 when not recorded.
  double selection_accuracy = -1;
  double train_seconds = 0;  ///< all epochs
  double epoch_seconds = 0;  ///< mean per epoch
  int64_t epochs = 0;
};

/// ProbeRecord <-> JSON (the manifest's and the probe cache's shared format).
json probe_to_json(const ProbeRecord& probe);
ProbeRecord probe_from_json(const json& j);

/// Which test samples computed the importance (selection) and which rank the candidates
/// (evaluation). Indices into the (sliced) test split, ascending, each in a side file.
struct SelectionRecord {
  std::string split = "half-test";  ///< "half-test" (disjoint) or "paper-test" (both = all)
  double fraction = 0.5;            ///< share of each class used for selection (half-test)
  uint64_t seed = 0;                ///< split seed
  std::vector<int64_t> selection;
  std::vector<int64_t> evaluation;
  std::string selection_file, selection_sha256;    ///< side file, relative to the folder
  std::string evaluation_file, evaluation_sha256;  ///< side file, relative to the folder
};

/// Everything a trial needs to train on a proxy, and everything that explains it.
struct Manifest {
  int schema_version = kManifestSchemaVersion;
  std::string key;           ///< cache key: hash of every input that decides the result
  std::string tool_version;  ///< dataproxy version that wrote it
  std::string created;       ///< ISO 8601 UTC

  // Dataset identity.
  std::string dataset;            ///< name for load_dataset(), e.g. "cifar10"
  std::string train_fingerprint;  ///< fingerprint() of the full train split used
  std::string test_fingerprint;
  int64_t train_size = 0;  ///< full train split size
  int64_t test_size = 0;
  int64_t num_classes = 0;   ///< classes of the full data
  LoadOptions load_options;  ///< the slice used (max_train/max_test), 0 = all

  // Search space and method.
  std::string space_name;
  std::string space_hash;          ///< SearchSpace::content_hash
  std::string method;              ///< selection strategy name: "ours", "random", "stratified"
  json settings = json::object();  ///< the method's options, as given
  double ratio = 0;                ///< requested fraction of the train split
  uint64_t seed = 0;

  // Result.
  std::vector<int64_t> indices;  ///< selected train indices (into the full train split), sorted
  std::string indices_file;      ///< side file name, relative to the manifest's folder
  std::string indices_sha256;    ///< checksum of that file
  std::vector<int64_t> kept_classes;    ///< original labels kept, ascending (all when no reduction)
  std::vector<int64_t> label_remap;     ///< original label -> new label, -1 for dropped classes
  SelectionRecord selection;            ///< selection and evaluation test samples
  std::vector<ProbeRecord> probes;      ///< lightest first
  json case_counts = json::object();    ///< {"c1": n, "c2": n, "c3": n, "c4": n}
  std::vector<int64_t> class_counts;    ///< proxy samples per original class
  json stage_seconds = json::object();  ///< {"probes": s, "features": s, "pca": s, "knn": s, ...}
  json summary = json::object();        ///< anything else worth showing (e.g. importance stats)
  /// SHA-256 of the canonical JSON of every other field: an edited manifest fails to load.
  std::string checksum;

  /// Number of classes after label reduction.
  int64_t proxy_num_classes() const;
  json to_json() const;  ///< without `indices` (they live in the side file)
  static Manifest from_json(const json& j, const std::string& origin);
};

/// Cache key of a manifest: SHA-256 over the fields that decide the result (dataset name,
/// fingerprints and sizes, slice, space hash, method, settings, ratio, seed, tool version).
std::string manifest_key(const Manifest& manifest);

/// Writes the indices side file (`indices.bin`, int64 little-endian) and then `manifest.json`
/// into `dir`, each atomically; fills in indices_file, indices_sha256 and checksum.
void save_manifest(const Manifest& manifest, const fs::path& dir);

/// Loads and validates a manifest from a manifest.json path or its folder. Refuses, with the
/// reason, a wrong schema, a file edited after writing (key mismatch), a side file that is
/// missing, changed, outside the folder or a symlink, indices out of range, unsorted or
/// duplicated, and an evaluation set that overlaps the selection set (unless the manifest says
/// "paper-test", the paper's protocol, which uses the whole test split for both).
Manifest load_manifest(const fs::path& path);

/// What pair_candidates() needs of a manifest: its key and its probes' full-data accuracies.
PairingManifest pairing_of(const Manifest& manifest);

// ---------------------------------------------------------------------------------------------
// The cache folder (default_cache_dir(), or --cache): every file name in it is made here.

/// File name of a manifest in its folder.
inline constexpr const char* kManifestFileName = "manifest.json";

/// The folder of generated proxies: cache/proxies.
fs::path proxies_dir(const fs::path& cache);
/// The folder of one proxy: cache/proxies/<key> (manifest.json and its side files).
fs::path proxy_dir(const fs::path& cache, const std::string& key);
/// The lock generators of one key share: cache/proxies/<key>.lock.
fs::path proxy_lock_file(const fs::path& cache, const std::string& key);
/// The manifest of one proxy: cache/proxies/<key>/manifest.json.
fs::path proxy_manifest_file(const fs::path& cache, const std::string& key);
/// The probe networks' evidence, shared by proxies of the same data and space: cache/probes.
fs::path probes_dir(const fs::path& cache);
/// Decoded datasets (LoadOptions::use_cache): cache/data.
fs::path data_cache_dir(const fs::path& cache);
/// manifest.json in `path` when it is a folder, else `path` itself.
fs::path manifest_file(const fs::path& path);

}  // namespace dataproxy
