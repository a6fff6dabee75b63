// Proxy generation (the paper's Algorithm 1): probe networks, per-sample importance, the
// feature-space map from train to test samples, and importance-weighted resampling; plus the
// baselines and generate_proxy(), which builds (or finds in the cache) a Manifest.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dataproxy/dataset.h"
#include "dataproxy/manifest.h"
#include "dataproxy/model.h"
#include "dataproxy/progress.h"
#include "dataproxy/search_space.h"

namespace dataproxy {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Importance (paper section 3.1)

/// Importance of a test sample by the case of a probe pair's predictions. Every weight must be
/// positive: a zero would remove whole regions of the data and training could not converge.
struct CaseWeights {
  double c1 = 2;  ///< both probes right
  double c2 = 1;  ///< both probes wrong
  double c3 = 6;  ///< only the more accurate probe right
  double c4 = 1;  ///< only the less accurate probe right

  /// Throws InvalidInput naming the case when a weight is not a positive finite number.
  void validate() const;
  /// Parses "2,1,6,1" (c1,c2,c3,c4); throws InvalidInput otherwise.
  static CaseWeights parse(const std::string& text);
  json to_json() const;
};

/// Per-test-sample importance and the case statistics behind it.
struct Importance {
  torch::Tensor values;  ///< float64 [T], > 0
  /// Case index 0..3 (c1..c4) per test sample for the pair (first probe, last probe), int64 [T].
  torch::Tensor cases;
  json case_counts = json::object();      ///< {"c1": n, ...} for that pair
  json pair_case_counts = json::array();  ///< one {"a","b","c1".."c4"} per probe pair (k > 2)
};

/// Importance of each test sample from the probes' correctness (bool [P, T], P >= 2) and their
/// test accuracies (which probe of a pair is "more accurate"). With P > 2 the importance is the
/// mean over all probe pairs.
Importance compute_importance(const torch::Tensor& correct, const std::vector<double>& accuracies,
                              const CaseWeights& weights);

// ---------------------------------------------------------------------------------------------
// Mapping (paper section 3.2): PCA, then each train sample to its nearest test sample.

/// A fitted principal component projection.
struct Pca {
  torch::Tensor mean;        ///< float32 [D]
  torch::Tensor components;  ///< float32 [D, d], columns ordered by decreasing variance
  torch::Tensor variances;   ///< float64 [d], variance along each component
  /// Projects float [N, D] to float32 [N, d].
  torch::Tensor transform(const torch::Tensor& x) const;
};

/// Fits a PCA of `x` (float [N, D]) with `dim` components (clamped to D) from the eigenvectors
/// of the float64 covariance. Each component's sign is fixed (largest-magnitude entry positive),
/// so the result is deterministic.
Pca fit_pca(const torch::Tensor& x, int64_t dim);

/// Options for the nearest-neighbour map.
struct KnnOptions {
  bool exact = false;             ///< brute force instead of hnswlib (tests, tiny sets)
  int64_t m = 16;                 ///< hnswlib M: links per node
  int64_t ef_construction = 100;  ///< hnswlib build-time candidate list
  int64_t ef_search = 64;         ///< hnswlib query-time candidate list (recall vs speed)
  uint64_t seed = 100;            ///< hnswlib level generator seed
  int threads = 0;                ///< query threads; 0 = torch's intra-op thread count
  int64_t batch = 4096;           ///< queries per progress step
};

/// Index of the nearest `index_points` row for every `query_points` row (float [Q, d] and
/// [I, d]), int64 [Q]. The hnswlib graph is built on one thread so that the map is the same on
/// every run; queries run in parallel (they are read-only).
torch::Tensor nearest_neighbours(const torch::Tensor& index_points,
                                 const torch::Tensor& query_points, const KnnOptions& options = {},
                                 Reporter& reporter = null_reporter());

/// Exact nearest neighbours by chunked matrix products (the reference for the approximate map).
torch::Tensor brute_force_nearest(const torch::Tensor& index_points,
                                  const torch::Tensor& query_points);

// ---------------------------------------------------------------------------------------------
// Resampling (paper section 3.2, step 4)

/// Exactly `count` distinct indices of `weights` (float64 [N], >= 0), drawn without replacement
/// with probability proportional to weight (Efraimidis-Spirakis keys from a seeded
/// std::mt19937_64, so results do not depend on the LibTorch version or device). Samples with
/// zero weight are never drawn. `class_floor` > 0 first takes, in each class present among the
/// candidates, min(class_floor, candidates of that class) samples (by the same keys), then fills
/// up by key. Returns int64 [count], ascending. Throws InvalidInput when `count` exceeds the
/// candidates or the floors exceed `count`.
torch::Tensor weighted_sample(const torch::Tensor& weights, int64_t count, uint64_t seed,
                              const torch::Tensor& labels = {}, int64_t class_floor = 0);

/// Samples per class for a per-class draw of `count` samples: proportional to each class's
/// candidates (weights > 0), largest remainders first (ties: lower class), so the quotas sum to
/// exactly `count` and each is within one sample of its exact share. int64 per class label.
std::vector<int64_t> per_class_quotas(const torch::Tensor& weights, const torch::Tensor& labels,
                                      int64_t count);

/// The paper's per-class reduction (section 4): `quotas[c]` samples of class c, drawn within the
/// class without replacement with probability proportional to weight. Uses the same keys as
/// weighted_sample() for the same seed. Returns int64 [sum of quotas], ascending.
torch::Tensor weighted_sample_per_class(const torch::Tensor& weights, const torch::Tensor& labels,
                                        const std::vector<int64_t>& quotas, uint64_t seed);

/// Train-split size for `ratio`: round(ratio * n). Throws InvalidInput for a ratio outside
/// (0, 1] or one that rounds to no sample.
int64_t proxy_size(double ratio, int64_t n);

// ---------------------------------------------------------------------------------------------
// Label reduction (paper section 3.3)

/// Classes to keep: classes ordered by summed importance (descending; ties broken by a seeded
/// shuffle), the shortest prefix holding at least round(intermediate_ratio * N) samples.
/// Returns the kept original labels, ascending.
std::vector<int64_t> reduce_labels(const torch::Tensor& importance, const torch::Tensor& labels,
                                   int64_t num_classes, double intermediate_ratio, uint64_t seed);

/// original label -> new label (kept classes numbered in ascending order), -1 when dropped.
std::vector<int64_t> label_remap(const std::vector<int64_t>& kept, int64_t num_classes);

// ---------------------------------------------------------------------------------------------
// Strategies

/// Chooses the probe configurations of a search space.
class ProbeChooser {
 public:
  virtual ~ProbeChooser() = default;
  virtual std::string name() const = 0;
  /// `count` (>= 2) distinct configurations, lightest first.
  virtual std::vector<Config> choose(const SearchSpace& space, const InputShape& input,
                                     int64_t num_classes, int64_t count) const = 0;
};

/// The paper's choice: the lightest and the heaviest configuration by MACs (ties: fewer
/// parameters, then enumeration order), and for count > 2 the configurations nearest to MACs
/// spaced evenly between them.
class MacsProbeChooser : public ProbeChooser {
 public:
  std::string name() const override { return "macs"; }
  std::vector<Config> choose(const SearchSpace& space, const InputShape& input, int64_t num_classes,
                             int64_t count) const override;
};

/// What the probes tell about the data: their records, per-test-sample correctness, and the
/// upper (heaviest) probe's features of every train and test sample.
struct ProbeEvidence {
  std::vector<ProbeRecord> probes;      ///< lightest first
  torch::Tensor correct;                ///< bool [P, T]
  torch::Tensor train_features;         ///< float32 [N, D]
  torch::Tensor test_features;          ///< float32 [T, D]
  bool from_cache = false;              ///< loaded from the probe cache (nothing trained)
  json stage_seconds = json::object();  ///< {"probes": s, "features": s} when computed
};

/// The evidence of the test samples `test_indices` only: their correctness and features, and
/// each probe's test_accuracy measured on them.
ProbeEvidence restrict_evidence(const ProbeEvidence& evidence,
                                const std::vector<int64_t>& test_indices);

/// Everything a selection method may use.
struct SelectionContext {
  const Dataset& train;
  const Dataset& selection;  ///< the test samples importance is computed on (never ranked on)
  /// Probe evidence restricted to `selection` (correctness and features of those samples;
  /// accuracies on them); set when the method needs probes.
  const ProbeEvidence* evidence = nullptr;
  Reporter& reporter;
  uint64_t seed = 0;
};

/// A way to pick proxy samples. Callers pass one into generate_proxy() as an object; only the
/// edges (CLI, adapters) look methods up by name, through make_selection_method().
class SelectionMethod {
 public:
  virtual ~SelectionMethod() = default;
  virtual std::string name() const = 0;
  virtual bool needs_probes() const = 0;
  /// The method's settings: recorded in the manifest and part of the cache key.
  virtual json settings() const = 0;
  /// Importance of every train sample, float64 [N], > 0 (uniform for methods without a
  /// notion of importance). May add entries to `summary` and `stage_seconds`.
  virtual torch::Tensor score(const SelectionContext& ctx, json& summary,
                              json& stage_seconds) const = 0;
  /// Exactly `count` distinct train indices among `candidates` (bool [N]), ascending.
  virtual torch::Tensor draw(const SelectionContext& ctx, const torch::Tensor& importance,
                             const torch::Tensor& candidates, int64_t count) const = 0;
};

/// How the importance-weighted draw spreads the proxy over classes.
enum class SampleDraw {
  kPerClass,  ///< each class keeps its share, drawn by importance within it (paper section 4)
  kGlobal,    ///< one draw over all samples by importance (class sizes follow importance)
};
/// "per-class" or "global"; throws InvalidInput otherwise.
SampleDraw parse_sample_draw(const std::string& name);
std::string to_string(SampleDraw draw);

/// Options of the paper's method.
struct ImportanceOptions {
  CaseWeights weights;
  SampleDraw draw = SampleDraw::kPerClass;
  int64_t pca_dim = 32;          ///< PCA components of the features; 0 = no PCA
  std::string pca_fit = "test";  ///< fit PCA on the "test" (selection) samples or on "all"
  KnnOptions knn;
  /// At least this many samples per kept class; 0 = none. Global draw only (a per-class draw
  /// gives every class its share already).
  int64_t class_floor = 0;
};

/// The paper's Algorithm 1: probe-pair importance on the selection samples, mapped to train
/// samples through the upper probe's features, then an importance-weighted draw.
std::unique_ptr<SelectionMethod> make_importance(const ImportanceOptions& options);
/// Uniform random sampling (the paper's baseline). `class_floor` as in weighted_sample().
std::unique_ptr<SelectionMethod> make_random(int64_t class_floor = 0);
/// Class-balanced random sampling: equal quotas per kept class (capped by the class's size,
/// the rest spread over classes with room), uniform within a class.
std::unique_ptr<SelectionMethod> make_stratified();

/// A selection method as the edges (CLI, Python adapters, benchmarks) name it.
struct SelectionMethodInfo {
  std::string name;
  bool needs_probes = false;
  std::string summary;
};
/// Every selection method, the default first: the one list that `dataproxy methods` prints.
const std::vector<SelectionMethodInfo>& selection_methods();
/// Builds a method by name (`options` configures "importance"; class_floor also "random");
/// throws InvalidInput listing the names otherwise.
std::unique_ptr<SelectionMethod> make_selection_method(const std::string& name,
                                                       const ImportanceOptions& options);

// ---------------------------------------------------------------------------------------------
// Selection split: which test samples compute importance, which rank the candidates.

/// Options of the selection split.
struct SelectionSplitOptions {
  /// "half-test": a seeded, class-stratified part of the test split computes importance and the
  /// rest ranks the candidates (no leak). "paper-test": the whole test split does both, as in
  /// the paper (the proxy is chosen knowing the samples it is judged on).
  std::string split = "half-test";
  double fraction = 0.5;  ///< share of each class's test samples used for selection (half-test)
  int64_t seed = -1;      ///< split seed; -1 = the sampling seed
};

/// Test indices for selection and for evaluation (ranking), each ascending.
struct TestSplit {
  std::vector<int64_t> selection;
  std::vector<int64_t> evaluation;
};

/// Splits `test_labels` (int64 [T]) as `options` says; throws InvalidInput for an unknown split,
/// a fraction outside (0, 1), or a split that leaves either side empty.
TestSplit split_test_samples(const torch::Tensor& test_labels, const SelectionSplitOptions& options,
                             uint64_t seed);

// ---------------------------------------------------------------------------------------------
// Probes and their cache

/// How probes are chosen and trained.
struct ProbeOptions {
  int64_t count = 2;   ///< probes (>= 2): lightest, heaviest, and count-2 between
  int64_t epochs = 0;  ///< training epochs; 0 = the space's TrainSettings::epochs
  /// Probe seed; training uses probe_training_seed(seed), a stream of its own, so that a probe
  /// never repeats a candidate's run with the same seed, data and epochs.
  uint64_t seed = 0;
  std::string device = "auto";  ///< "auto", "cpu", "cuda", "cuda:N"
  int threads = 0;              ///< CPU threads; 0 = all cores
  fs::path cache_dir;           ///< probe cache root; empty = default_cache_dir()/probes
};

/// The training seed of probes with ProbeOptions::seed `seed`.
uint64_t probe_training_seed(uint64_t seed);

/// Key of the probe cache entry for these inputs (dataset fingerprints, space hash, probe
/// configurations, epochs, seed, tool version).
std::string probe_cache_key(const std::string& train_fingerprint,
                            const std::string& test_fingerprint, const SearchSpace& space,
                            const std::vector<Config>& configs, const ProbeOptions& options);

/// Trains the probes on the full train split (or loads them from the probe cache, under a
/// file lock so concurrent callers train once), then records correctness and features.
ProbeEvidence obtain_probe_evidence(const SearchSpace& space, const DatasetSplits& data,
                                    const std::string& train_fingerprint,
                                    const std::string& test_fingerprint,
                                    const ProbeOptions& options, const ProbeChooser& chooser,
                                    Reporter& reporter);

// ---------------------------------------------------------------------------------------------
// generate_proxy

/// Everything generate_proxy() needs. CLI flags map one to one onto these fields; the method
/// and the probe chooser are objects (the CLI builds them from names).
struct ProxyOptions {
  fs::path space;            ///< search-space YAML
  std::string dataset;       ///< name for load_dataset()
  fs::path data_root;        ///< folder for load_dataset()
  LoadOptions load_options;  ///< slice of the data (max_train / max_test)
  double ratio = 0.1;        ///< fraction of the train split to keep, in (0, 1]
  /// The selection method; empty = importance with default options.
  std::shared_ptr<const SelectionMethod> method;
  /// The probe chooser; empty = MacsProbeChooser (the paper's).
  std::shared_ptr<const ProbeChooser> probe_chooser;
  uint64_t seed = 0;                ///< sampling seed
  SelectionSplitOptions selection;  ///< which test samples select, which rank
  ProbeOptions probes;              ///< probe training (cache_dir filled from cache_dir)
  /// Fraction kept by label reduction before sampling (paper 3.3); 0 = no label reduction.
  /// Must be >= ratio.
  double label_reduction = 0;
  bool record_probes = false;  ///< train/load probes for baselines too, to record them
  fs::path cache_dir;          ///< cache root; empty = default_cache_dir()
  bool rebuild = false;        ///< rebuild even when a valid cached manifest exists
};

/// What generate_proxy() returns.
struct GenerateResult {
  Manifest manifest;
  fs::path path;                   ///< absolute path of manifest.json
  bool cache_hit = false;          ///< the manifest was found in the cache
  bool probes_from_cache = false;  ///< probe evidence was loaded, not trained
  int64_t probes_trained = 0;      ///< probe networks trained by this call
};

/// Builds the proxy (or returns the cached one). Locked per key: concurrent callers build once.
GenerateResult generate_proxy(const ProxyOptions& options, Reporter& reporter = null_reporter());

/// As above, with data and space already loaded (e.g. by tests or a long-lived process).
GenerateResult generate_proxy(const ProxyOptions& options, const SearchSpace& space,
                              const DatasetSplits& data, Reporter& reporter = null_reporter());

}  // namespace dataproxy
