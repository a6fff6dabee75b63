// generate_proxy() end to end on a tiny synthetic dataset and a tiny search space written by the
// test: exact size, seeding, label reduction, the proxy and probe caches, manifest validation,
// and two concurrent `dataproxy generate` processes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <boost/process.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>

#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/manifest.h"
#include "dataproxy/proxy.h"

namespace dataproxy {
namespace {

const char* kSpace = R"(name: tiny_test
family: resnet
parameters:
  - name: B
    choices: [2, 8]
  - name: K
    choices: [3]
  - name: M
    choices: [1, 2]
model:
  stages: 2
  blocks_per_stage: 1
  stem_kernel: 3
  feature_stage: 0
training:
  optimizer: adam
  learning_rate: 0.01
  batch_size: 32
  epochs: 2
  schedule: constant
  augmentation:
    random_crop_padding: 0
    horizontal_flip: false
)";

// Four classes of 1x8x8 images: a bright quadrant per class plus noise.
Dataset synthetic(int64_t n, uint64_t seed, const std::string& name) {
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  torch::Tensor labels = torch::arange(n, torch::kInt64).remainder(4);
  torch::Tensor images = torch::rand({n, 1, 8, 8}, gen) * 120;
  for (int64_t c = 0; c < 4; ++c) {
    torch::Tensor idx = labels.eq(c).nonzero().view({-1});
    const int64_t r = (c / 2) * 4, col = (c % 2) * 4;
    torch::Tensor sel = images.index_select(0, idx);
    sel.slice(2, r, r + 4).slice(3, col, col + 4) += 120;
    images.index_copy_(0, idx, sel);
  }
  Dataset d;
  d.name = name;
  d.images = images.clamp(0, 255).to(torch::kUInt8).contiguous();
  d.labels = labels;
  d.num_classes = 4;
  return d;
}

class Generate : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    root_ = fs::temp_directory_path() /
            ("dataproxy_test_generate_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    space_path_ = root_ / "tiny.yaml";
    std::ofstream(space_path_) << kSpace;
    data_.train = synthetic(400, 1, "synthetic/train");
    data_.test = synthetic(120, 2, "synthetic/test");
  }
  void TearDown() override { fs::remove_all(root_); }

  static ImportanceOptions importance() {
    ImportanceOptions imp;
    imp.pca_dim = 4;
    return imp;
  }
  ProxyOptions options(const std::string& method = "importance", double ratio = 0.1,
                       const ImportanceOptions& imp = importance()) {
    ProxyOptions o;
    o.space = space_path_;
    o.dataset = "synthetic";
    o.ratio = ratio;
    o.method = make_selection_method(method, imp);
    o.cache_dir = root_ / "cache";
    o.probes.device = "cpu";
    o.probes.threads = 1;
    return o;
  }
  GenerateResult run(const ProxyOptions& o) {
    return generate_proxy(o, SearchSpace::load(space_path_), data_);
  }

  fs::path root_;
  fs::path space_path_;
  DatasetSplits data_;
};

TEST_F(Generate, ImportanceBuildsAnExactSeededProxyAndCachesIt) {
  GenerateResult first = run(options());
  EXPECT_FALSE(first.cache_hit);
  EXPECT_EQ(first.probes_trained, 2);
  const Manifest& m = first.manifest;
  EXPECT_EQ(m.indices.size(), 40u);
  EXPECT_EQ(std::set<int64_t>(m.indices.begin(), m.indices.end()).size(), 40u);
  ASSERT_EQ(m.probes.size(), 2u);
  EXPECT_EQ(m.probes[0].config_id.rfind("B2", 0), 0u) << m.probes[0].config_id;
  EXPECT_LT(m.probes[0].macs, m.probes[1].macs);
  EXPECT_GT(m.probes[1].test_accuracy, 0.0);
  for (const char* stage : {"probes", "features", "pca", "knn", "sampling"}) {
    EXPECT_TRUE(m.stage_seconds.contains(stage)) << stage;
  }
  int64_t cases = 0;
  for (const char* c : {"c1", "c2", "c3", "c4"}) cases += m.case_counts.at(c).get<int64_t>();
  // Importance comes from the selection half of the test split only.
  EXPECT_EQ(cases, 60);
  EXPECT_EQ(m.selection.split, "half-test");
  EXPECT_EQ(m.selection.selection.size(), 60u);
  EXPECT_EQ(m.selection.evaluation.size(), 60u);
  int64_t per_class = 0;
  for (int64_t c : m.class_counts) per_class += c;
  EXPECT_EQ(per_class, 40);
  EXPECT_TRUE(fs::exists(first.path));
  EXPECT_TRUE(first.path.is_absolute());

  // Same inputs: a cache hit that trains nothing, with the same indices.
  GenerateResult again = run(options());
  EXPECT_TRUE(again.cache_hit);
  EXPECT_EQ(again.probes_trained, 0);
  EXPECT_EQ(again.manifest.indices, m.indices);

  // Another ratio or seed: a new proxy from the cached probes.
  ProxyOptions other = options("importance", 0.2);
  GenerateResult bigger = run(other);
  EXPECT_FALSE(bigger.cache_hit);
  EXPECT_TRUE(bigger.probes_from_cache);
  EXPECT_EQ(bigger.probes_trained, 0);
  EXPECT_EQ(bigger.manifest.indices.size(), 80u);
  other = options();
  other.seed = 9;
  GenerateResult reseeded = run(other);
  EXPECT_EQ(reseeded.probes_trained, 0);
  EXPECT_NE(reseeded.manifest.key, m.key);
  EXPECT_NE(reseeded.manifest.indices, m.indices);
  ImportanceOptions weighted = importance();
  weighted.weights = CaseWeights{1, 1, 9, 1};
  other.method = make_importance(weighted);
  EXPECT_EQ(run(other).probes_trained, 0);

  // Rebuilding with the same seed reproduces the proxy exactly.
  ProxyOptions rebuild = options();
  rebuild.rebuild = true;
  GenerateResult rebuilt = run(rebuild);
  EXPECT_FALSE(rebuilt.cache_hit);
  EXPECT_EQ(rebuilt.manifest.indices, m.indices);
  EXPECT_EQ(rebuilt.manifest.key, m.key);
}

TEST_F(Generate, ProbesAreChosenByMacs) {
  SearchSpace space = SearchSpace::load(space_path_);
  const InputShape input{1, 8, 8};
  MacsProbeChooser chooser;
  std::vector<int64_t> macs;
  for (const Config& c : space.enumerate()) macs.push_back(model_cost(space, c, input, 4).macs);
  std::sort(macs.begin(), macs.end());
  std::vector<Config> two = chooser.choose(space, input, 4, 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(model_cost(space, two[0], input, 4).macs, macs.front());
  EXPECT_EQ(model_cost(space, two[1], input, 4).macs, macs.back());
  std::vector<Config> all = chooser.choose(space, input, 4, 4);
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(model_cost(space, all[i], input, 4).macs, macs[i]) << i;
  }
  EXPECT_THROW(chooser.choose(space, input, 4, 5), InvalidInput);
  EXPECT_THROW(chooser.choose(space, input, 4, 1), InvalidInput);
}

TEST_F(Generate, BaselinesNeedNoProbes) {
  for (const char* method : {"random", "stratified"}) {
    GenerateResult r = run(options(method, 0.25));
    EXPECT_EQ(r.probes_trained, 0) << method;
    EXPECT_TRUE(r.manifest.probes.empty()) << method;
    EXPECT_EQ(r.manifest.indices.size(), 100u) << method;
    EXPECT_EQ(r.manifest.method, method);
  }
  GenerateResult strat = run(options("stratified", 0.25));
  EXPECT_EQ(strat.manifest.class_counts, (std::vector<int64_t>{25, 25, 25, 25}));
  ProxyOptions with = options("random", 0.25);
  with.record_probes = true;
  GenerateResult recorded = run(with);
  EXPECT_EQ(recorded.manifest.probes.size(), 2u);
  EXPECT_EQ(recorded.probes_trained, 2);
}

TEST_F(Generate, RefusesBadOptions) {
  EXPECT_THROW(run(options("importance", 0.0)), InvalidInput);
  EXPECT_THROW(run(options("importance", 1.5)), InvalidInput);
  EXPECT_THROW(run(options("magic")), InvalidInput);
  ImportanceOptions zero = importance();
  zero.weights.c1 = 0;
  EXPECT_THROW(run(options("importance", 0.1, zero)), InvalidInput);
  ProxyOptions o = options();
  o.selection.split = "whole";
  EXPECT_THROW(run(o), InvalidInput);
  o.selection.split = "half-test";
  o.selection.fraction = 1.0;
  EXPECT_THROW(run(o), InvalidInput);
  o = options("random", 0.3);
  o.label_reduction = 0.2;  // below the ratio
  EXPECT_THROW(run(o), InvalidInput);
}

TEST_F(Generate, LabelReductionKeepsClassesAndRemapsLabels) {
  ProxyOptions o = options("random", 0.1);
  o.label_reduction = 0.5;
  GenerateResult r = run(o);
  const Manifest& m = r.manifest;
  ASSERT_EQ(m.kept_classes.size(), 2u);
  EXPECT_EQ(m.indices.size(), 40u);
  EXPECT_EQ(m.proxy_num_classes(), 2);
  Dataset proxy = proxy_train_set(m, data_.train);
  EXPECT_EQ(proxy.size(), 40);
  EXPECT_EQ(proxy.num_classes, 2);
  EXPECT_LT(proxy.labels.max().item<int64_t>(), 2);
  Dataset test = proxy_test_set(m, data_.test);
  EXPECT_EQ(test.size(), 30);  // the kept classes of the evaluation half
  EXPECT_EQ(torch::bincount(test.labels).size(0), 2);
  for (int64_t c = 0; c < 4; ++c) {
    const bool kept =
        std::find(m.kept_classes.begin(), m.kept_classes.end(), c) != m.kept_classes.end();
    EXPECT_EQ(m.class_counts[c] > 0, kept) << "class " << c;
  }
}

TEST_F(Generate, CorruptOrForeignManifestsAreRefused) {
  GenerateResult r = run(options("random", 0.2));
  const fs::path dir = r.path.parent_path();
  EXPECT_NO_THROW(load_manifest(dir));
  auto copy = [&](const std::string& name) {
    fs::path d = root_ / name;
    fs::create_directories(d);
    fs::copy(dir, d, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    return d;
  };
  auto expect_refused = [&](const fs::path& d, const std::string& word) {
    try {
      load_manifest(d);
      ADD_FAILURE() << "accepted " << d;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
    }
  };
  {
    fs::path d = copy("edited");
    json j = json::parse(read_file(d / "manifest.json"));
    j["ratio"] = 0.5;
    std::ofstream(d / "manifest.json") << j.dump(2);
    expect_refused(d, "changed after it was written");
  }
  {
    fs::path d = copy("schema");
    json j = json::parse(read_file(d / "manifest.json"));
    j["schema_version"] = 99;
    std::ofstream(d / "manifest.json") << j.dump(2);
    expect_refused(d, "schema_version 99");
  }
  {
    fs::path d = copy("indices_changed");
    std::string bytes = read_file(d / "indices.bin");
    bytes[0] = static_cast<char>(bytes[0] ^ 1);
    std::ofstream(d / "indices.bin", std::ios::binary) << bytes;
    expect_refused(d, "was changed");
  }
  {
    fs::path d = copy("indices_missing");
    fs::remove(d / "indices.bin");
    expect_refused(d, "missing");
  }
  {
    fs::path d = copy("not_json");
    std::ofstream(d / "manifest.json") << "{\"schema_version\": 1, ";
    expect_refused(d, "not valid JSON");
  }
  // Re-signed manifests (checksum and key recomputed, side-file digests updated) are still
  // refused when what they say is unsafe or inconsistent.
  auto encode = [](const std::vector<int64_t>& v) {
    std::string out(v.size() * 8, '\0');
    for (std::size_t i = 0; i < v.size(); ++i) {
      for (int b = 0; b < 8; ++b) {
        out[i * 8 + b] = static_cast<char>((static_cast<uint64_t>(v[i]) >> (8 * b)) & 0xff);
      }
    }
    return out;
  };
  auto resign = [&](const fs::path& d, json j) {
    j["key"] = manifest_key(Manifest::from_json(j, "test"));
    j.erase("checksum");
    j["checksum"] = sha256_hex(j.dump());
    std::ofstream(d / "manifest.json") << j.dump(2);
  };
  auto rewrite_side = [&](const fs::path& d, const std::string& file, const char* sha_key,
                          const std::vector<int64_t>& v, bool in_selection) {
    const std::string bytes = encode(v);
    atomic_write(d / file, bytes);
    json j = json::parse(read_file(d / "manifest.json"));
    (in_selection ? j["selection"][sha_key] : j[sha_key]) = sha256_hex(bytes);
    if (!in_selection) j["size"] = v.size();
    resign(d, j);
  };
  const auto& sel = r.manifest.selection;
  {
    fs::path d = copy("overlap");
    std::vector<int64_t> eval = sel.evaluation;
    eval.push_back(sel.selection.front());
    std::sort(eval.begin(), eval.end());
    rewrite_side(d, "evaluation.bin", "evaluation_sha256", eval, true);
    expect_refused(d, "overlaps its selection set");
  }
  {
    fs::path d = copy("paper_claimed");
    json j = json::parse(read_file(d / "manifest.json"));
    j["selection"]["split"] = "paper-test";
    resign(d, j);
    expect_refused(d, "not both the whole test split");
  }
  for (const std::string name : {"../indices.bin", "/etc/hostname", ".", "sub/indices.bin"}) {
    fs::path d = copy("outside");
    json j = json::parse(read_file(d / "manifest.json"));
    j["indices_file"] = name;
    resign(d, j);
    expect_refused(d, "not a file in the manifest's own folder");
  }
  {
    fs::path d = copy("symlink");
    fs::rename(d / "indices.bin", d / "real.bin");
    fs::create_symlink(d / "real.bin", d / "indices.bin");
    expect_refused(d, "symlink");
  }
  {
    std::vector<int64_t> unsorted = r.manifest.indices;
    std::swap(unsorted[0], unsorted[1]);
    fs::path d = copy("unsorted");
    rewrite_side(d, "indices.bin", "indices_sha256", unsorted, false);
    expect_refused(d, "unsorted or repeated");
    std::vector<int64_t> repeated = r.manifest.indices;
    repeated[1] = repeated[0];
    d = copy("repeated");
    rewrite_side(d, "indices.bin", "indices_sha256", repeated, false);
    expect_refused(d, "unsorted or repeated");
    std::vector<int64_t> outside = r.manifest.indices;
    outside.back() = 400;
    d = copy("out_of_range");
    rewrite_side(d, "indices.bin", "indices_sha256", outside, false);
    expect_refused(d, "out of range");
    d = copy("wrong_count");
    rewrite_side(d, "indices.bin", "indices_sha256", r.manifest.indices, false);
    json j = json::parse(read_file(d / "manifest.json"));
    j["size"] = r.manifest.indices.size() + 1;
    resign(d, j);
    expect_refused(d, "says size");
  }

  Dataset foreign = synthetic(400, 77, "other/train");
  EXPECT_THROW(check_dataset(r.manifest, foreign), InvalidInput);
  EXPECT_THROW(proxy_train_set(r.manifest, foreign), InvalidInput);
  EXPECT_NO_THROW(check_dataset(r.manifest, data_.train));

  // generate refuses a corrupt cache entry rather than using it.
  std::string bytes = read_file(dir / "indices.bin");
  bytes[0] = static_cast<char>(bytes[0] ^ 1);
  std::ofstream(dir / "indices.bin", std::ios::binary) << bytes;
  EXPECT_THROW(run(options("random", 0.2)), DataError);
  ProxyOptions rebuild = options("random", 0.2);
  rebuild.rebuild = true;
  EXPECT_EQ(run(rebuild).manifest.indices, r.manifest.indices);
}

// IDX files (the Fashion-MNIST format) so that the CLI can load the synthetic data.
void write_idx(const fs::path& dir, const std::string& prefix, const Dataset& d) {
  auto be32 = [](std::string& s, uint32_t v) {
    for (int b = 3; b >= 0; --b) s.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
  };
  std::string images, labels;
  be32(images, 0x803);
  be32(images, static_cast<uint32_t>(d.size()));
  be32(images, 8);
  be32(images, 8);
  images.append(reinterpret_cast<const char*>(d.images.data_ptr<uint8_t>()),
                static_cast<std::size_t>(d.images.numel()));
  be32(labels, 0x801);
  be32(labels, static_cast<uint32_t>(d.size()));
  torch::Tensor l = d.labels.to(torch::kUInt8).contiguous();
  labels.append(reinterpret_cast<const char*>(l.data_ptr<uint8_t>()),
                static_cast<std::size_t>(l.numel()));
  atomic_write(dir / (prefix + "-images-idx3-ubyte"), images);
  atomic_write(dir / (prefix + "-labels-idx1-ubyte"), labels);
}

TEST_F(Generate, ConcurrentCommandsBuildOnce) {
#ifdef DATAPROXY_CLI_PATH
  const fs::path exe = DATAPROXY_CLI_PATH;
#else
  const char* bin = std::getenv("DATAPROXY_BINARY_DIR");
  const fs::path exe = fs::path(bin ? bin : "") / "plugin" / "cli" / "dataproxy";
#endif
  if (!fs::exists(exe)) GTEST_SKIP() << "dataproxy binary not built at " << exe;
  const fs::path data_root = root_ / "data" / "fashion-mnist";
  write_idx(data_root, "train", data_.train);
  write_idx(data_root, "t10k", data_.test);
  std::vector<std::string> argv{"generate",
                                "--space",
                                space_path_.string(),
                                "--dataset",
                                "fashion-mnist",
                                "--data-root",
                                (root_ / "data").string(),
                                "--any-size",
                                "--ratio",
                                "0.1",
                                "--cache",
                                (root_ / "cache").string(),
                                "--threads",
                                "1",
                                "--device",
                                "cpu",
                                "--pca-dim",
                                "4",
                                "--report",
                                "quiet"};
  namespace bp = boost::process;
  const std::string out1 = (root_ / "out1.txt").string(), out2 = (root_ / "out2.txt").string();
  bp::child a(exe.string(), bp::args(argv), bp::std_out > out1, bp::std_err > bp::null);
  bp::child b(exe.string(), bp::args(argv), bp::std_out > out2, bp::std_err > bp::null);
  a.wait();
  b.wait();
  ASSERT_EQ(a.exit_code(), 0);
  ASSERT_EQ(b.exit_code(), 0);
  auto last_line = [](const std::string& path) {
    std::ifstream in(path);
    std::string line, last;
    while (std::getline(in, line)) {
      if (!line.empty()) last = line;
    }
    return json::parse(last);
  };
  json ra = last_line(out1), rb = last_line(out2);
  EXPECT_EQ(ra["event"], "manifest");
  EXPECT_EQ(ra["key"], rb["key"]);
  EXPECT_EQ(ra["path"], rb["path"]);
  EXPECT_NE(ra["cache_hit"].get<bool>(), rb["cache_hit"].get<bool>());
  EXPECT_EQ(ra["probes_trained"].get<int64_t>() + rb["probes_trained"].get<int64_t>(), 2);
  Manifest m = load_manifest(ra["path"].get<std::string>());
  EXPECT_EQ(m.indices.size(), 40u);

  // A bad ratio exits with the bad-input code and a message naming the flag.
  std::vector<std::string> bad = argv;
  bad[9] = "1.5";
  bp::child c(exe.string(), bp::args(bad), bp::std_out > bp::null, bp::std_err > bp::null);
  c.wait();
  EXPECT_EQ(c.exit_code(), 2);
}

}  // namespace
}  // namespace dataproxy
