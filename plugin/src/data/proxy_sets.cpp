// The views of a dataset through a proxy manifest: the proxy's train set, the ranking samples.
#include <torch/torch.h>

#include "dataproxy/dataset.h"
#include "dataproxy/error.h"
#include "dataproxy/manifest.h"

namespace dataproxy {
namespace {

torch::Tensor remap_tensor(const Manifest& m) {
  return torch::tensor(m.label_remap, torch::kInt64);
}

}  // namespace

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

namespace {

void check_test_split(const Manifest& manifest, const Dataset& full_test) {
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
}

}  // namespace

Dataset ranking_test_set(const Manifest& manifest, const Dataset& full_test) {
  check_test_split(manifest, full_test);
  const auto& eval = manifest.selection.evaluation;
  if (static_cast<int64_t>(eval.size()) == full_test.size()) return full_test;
  Dataset out = subset(full_test, torch::tensor(eval, torch::kInt64));
  out.name = full_test.name + "@ranking";
  return out;
}

Dataset proxy_test_set(const Manifest& manifest, const Dataset& full_test) {
  const Dataset ranking = ranking_test_set(manifest, full_test);
  torch::Tensor remap = remap_tensor(manifest);
  torch::Tensor mapped = remap.index_select(0, ranking.labels.to(torch::kInt64));
  torch::Tensor keep = mapped.ge(0).nonzero().view({-1});
  Dataset out = keep.size(0) == ranking.size() ? ranking : subset(ranking, keep);
  out.labels = mapped.index_select(0, keep);
  out.num_classes = manifest.proxy_num_classes();
  if (!full_test.class_names.empty() && !manifest.kept_classes.empty()) {
    out.class_names.clear();
    for (int64_t c : manifest.kept_classes) out.class_names.push_back(full_test.class_names[c]);
  }
  return out;
}

}  // namespace dataproxy
