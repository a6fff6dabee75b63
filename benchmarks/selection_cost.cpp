// Cost of the proxy selection after the probes are trained, at CIFAR-10 size (50,000 train,
// 10,000 test), against the time of one probe training epoch. Stages: features (the upper
// probe's forward pass over every sample), PCA, the kNN map, importance and sampling.
//
//   bench_selection_cost [--space YAML] [--data-root DIR] [--threads N] [--out FILE.md]
//                        [--commit TEXT] [--epoch-sample N] [--feature-sample N]
//
// Probe epochs and feature extraction are timed on a sample of images and scaled to the full
// split (per-image cost is flat in the number of images). PCA, kNN and sampling run at full
// size on synthetic clustered features of the upper probe's width: their cost depends on the
// shape, not on the values.
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "dataproxy/dataset.h"
#include "dataproxy/error.h"
#include "dataproxy/proxy.h"
#include "dataproxy/trainer.h"

using namespace dataproxy;

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Process CPU time (all threads): on a shared machine, cpu / threads estimates the wall time
// the stage would take on idle cores.
double cpu_now() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

std::string arg(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return def;
}

Dataset synthetic_images(int64_t n, const std::string& name) {
  Dataset d;
  d.name = name;
  d.images = torch::randint(0, 256, {n, 3, 32, 32}, torch::kUInt8);
  d.labels = torch::randint(0, 10, {n}, torch::kInt64);
  d.num_classes = 10;
  return d;
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string src = std::getenv("DATAPROXY_SOURCE_DIR") ? std::getenv("DATAPROXY_SOURCE_DIR")
                                                              : DATAPROXY_SOURCE_DIR_DEFAULT;
  const fs::path space_path = arg(argc, argv, "--space", src + "/search_spaces/resnet20.yaml");
  const fs::path data_root = arg(argc, argv, "--data-root", src + "/data");
  const int threads = std::stoi(arg(argc, argv, "--threads", "2"));
  const int64_t epoch_sample = std::stoll(arg(argc, argv, "--epoch-sample", "256"));
  const int64_t feature_sample = std::stoll(arg(argc, argv, "--feature-sample", "512"));
  const std::string out_path = arg(argc, argv, "--out", "");
  const std::string commit = arg(argc, argv, "--commit", "unknown");
  const int64_t n_train = 50000, n_test = 10000;
  configure_threads(threads);
  torch::manual_seed(0);

  std::string data_note;
  DatasetSplits data;
  try {
    data = load_dataset("cifar10", data_root);
    data_note = "real CIFAR-10 from " + data_root.string();
  } catch (const Error& e) {
    data.train = synthetic_images(n_train, "synthetic/train");
    data.test = synthetic_images(n_test, "synthetic/test");
    data_note = "synthetic uint8 images of CIFAR-10's shape (CIFAR-10 not found under " +
                data_root.string() + ")";
  }

  SearchSpace space = SearchSpace::load(space_path);
  MacsProbeChooser chooser;
  const InputShape input{3, 32, 32};
  std::vector<Config> probes = chooser.choose(space, input, 10, 2);
  TrainOptions topt;
  topt.device = "cpu";
  topt.threads = threads;
  topt.epochs = 1;
  topt.evaluate_each_epoch = false;
  Dataset tiny_test = subset(data.test, torch::arange(100, torch::kInt64));
  std::vector<double> epoch_seconds;
  std::vector<std::string> ids;
  int64_t feature_dim = 0;
  double feature_seconds = 0;
  for (std::size_t i = 0; i < probes.size(); ++i) {
    seed_everything(0);
    auto model = build_model(space, probes[i], input, 10);
    Trainer trainer(space.training(), topt);
    Dataset sample = subset(data.train, torch::arange(epoch_sample, torch::kInt64));
    TrainResult r = trainer.fit(*model, sample, tiny_test);
    epoch_seconds.push_back(r.train_seconds / static_cast<double>(epoch_sample) * n_train);
    ids.push_back(space.config_id(probes[i]));
    if (i + 1 == probes.size()) {
      Dataset fs_sample = subset(data.train, torch::arange(feature_sample, torch::kInt64));
      auto t = Clock::now();
      torch::Tensor f = trainer.features(*model, fs_sample);
      feature_seconds = since(t) / static_cast<double>(feature_sample) * (n_train + n_test);
      feature_dim = f.size(1);
    }
  }

  // Synthetic clustered features of the upper probe's width, at full size.
  torch::Tensor centres = torch::randn({10, feature_dim}) * 3;
  torch::Tensor test_f =
      centres.index_select(0, torch::randint(10, {n_test})) + torch::randn({n_test, feature_dim});
  torch::Tensor train_f =
      centres.index_select(0, torch::randint(10, {n_train})) + torch::randn({n_train, feature_dim});
  torch::Tensor correct = torch::rand({2, n_test}).lt(torch::tensor({0.8, 0.9}).unsqueeze(1));
  ImportanceOptions ours;

  auto t = Clock::now();
  double c = cpu_now();
  Pca pca = fit_pca(test_f, ours.pca_dim);
  torch::Tensor test_p = pca.transform(test_f);
  torch::Tensor train_p = pca.transform(train_f);
  const double pca_seconds = since(t);
  const double pca_cpu = cpu_now() - c;

  KnnOptions knn = ours.knn;
  knn.threads = threads;
  t = Clock::now();
  c = cpu_now();
  torch::Tensor nearest = nearest_neighbours(test_p, train_p, knn);
  const double knn_seconds = since(t);
  const double knn_cpu = cpu_now() - c;
  const torch::Tensor exact = brute_force_nearest(test_p, train_p.slice(0, 0, 2000));
  const double recall =
      nearest.slice(0, 0, 2000).eq(exact).to(torch::kFloat64).mean().item<double>();
  std::ostringstream sweep;
  sweep << std::fixed << std::setprecision(3);
  for (int64_t ef : {16, 32, 64, 128}) {
    KnnOptions k = knn;
    k.ef_search = ef;
    auto t0 = Clock::now();
    const double c0 = cpu_now();
    torch::Tensor nn = nearest_neighbours(test_p, train_p, k);
    sweep << "| " << ef << " | " << since(t0) << " | " << cpu_now() - c0 << " | "
          << nn.slice(0, 0, 2000).eq(exact).to(torch::kFloat64).mean().item<double>() << " |\n";
  }

  t = Clock::now();
  c = cpu_now();
  Importance imp = compute_importance(correct, {0.8, 0.9}, ours.weights);
  torch::Tensor w = imp.values.index_select(0, nearest);
  torch::Tensor picked = weighted_sample(w, proxy_size(0.1, n_train), 0);
  const double sampling_seconds = since(t);
  const double sampling_cpu = cpu_now() - c;

  const double after_features = pca_seconds + knn_seconds + sampling_seconds;
  const double with_features = after_features + feature_seconds;
  std::ostringstream md;
  const std::time_t now = std::time(nullptr);
  md << std::fixed << std::setprecision(3);
  md << "# Selection cost at CIFAR-10 size\n\n"
     << "- date: " << std::put_time(std::gmtime(&now), "%Y-%m-%d %H:%M UTC") << "\n"
     << "- commit: " << commit << "\n"
     << "- machine: " << cpu_model() << ", " << std::thread::hardware_concurrency()
     << " hardware threads, " << threads << " used (LibTorch " << TORCH_VERSION << ", CPU)\n"
     << "- data: " << data_note << "\n"
     << "- space: " << space.name() << "; probes " << ids.front() << " (lightest) and "
     << ids.back() << " (heaviest, feature width " << feature_dim << ")\n"
     << "- probe epochs timed on " << epoch_sample << " training images and scaled to " << n_train
     << "; features timed on " << feature_sample << " images and scaled to " << n_train + n_test
     << "\n"
     << "- PCA (" << ours.pca_dim << " of " << feature_dim
     << " dims, fit on the 10,000 test samples), kNN (hnswlib M=" << knn.m
     << ", ef_construction=" << knn.ef_construction << ", ef=" << knn.ef_search
     << "; agreement with brute force on 2,000 queries: " << recall
     << ") and sampling at full size on synthetic clustered features\n\n"
     << "| stage | seconds | % of lightest probe epoch | % of heaviest probe epoch |\n"
     << "|---|---|---|---|\n";
  auto row = [&](const std::string& name, double s) {
    md << "| " << name << " | " << s << " | " << 100 * s / epoch_seconds.front() << " | "
       << 100 * s / epoch_seconds.back() << " |\n";
  };
  row("one epoch, lightest probe " + ids.front(), epoch_seconds.front());
  row("one epoch, heaviest probe " + ids.back(), epoch_seconds.back());
  row("features (upper probe, 60,000 images)", feature_seconds);
  row("PCA", pca_seconds);
  row("kNN map (50,000 queries, 10,000 indexed)", knn_seconds);
  row("importance + sampling", sampling_seconds);
  row("**selection, features excluded**", after_features);
  row("**selection, features included**", with_features);
  md << "\nCPU seconds (all threads) of the full-size stages: PCA " << pca_cpu << ", kNN "
     << knn_cpu << ", importance + sampling " << sampling_cpu << "; divided by " << threads
     << " threads: " << (pca_cpu + knn_cpu + sampling_cpu) / threads << " s.\n"
     << "\nkNN map by hnswlib query list (ef):\n\n"
     << "| ef | seconds | CPU seconds | agreement with brute force |\n|---|---|---|---|\n"
     << sweep.str() << "\nGoal: selection <= 5% of one probe epoch; kNN map <= 1 s on 2 cores.\n";
  std::cout << md.str();
  if (!out_path.empty()) std::ofstream(out_path) << md.str();
  (void)picked;
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_selection_cost: " << e.what() << "\n";
  return 1;
}
