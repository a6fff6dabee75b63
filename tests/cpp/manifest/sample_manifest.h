// A small, complete manifest for tests that need one without generating a proxy.
#pragma once

#include "dataproxy/manifest.h"

namespace dataproxy::testing {

/// 20 train and 10 test samples of 2 classes; two probes; save_manifest() makes it loadable.
inline Manifest sample_manifest() {
  Manifest m;
  m.tool_version = "test";
  m.created = "2026-11-30T10:00:00Z";
  m.dataset = "cifar10";
  m.train_fingerprint = "train-fp";
  m.test_fingerprint = "test-fp";
  m.train_size = 20;
  m.test_size = 10;
  m.num_classes = 2;
  m.space_name = "tiny";
  m.space_hash = "space-hash";
  m.method = "importance";
  m.ratio = 0.1;
  m.seed = 7;
  m.indices = {3, 11};
  m.kept_classes = {0, 1};
  m.label_remap = {0, 1};
  m.selection.selection = {0, 2, 4, 6, 8};
  m.selection.evaluation = {1, 3, 5, 7, 9};
  m.class_counts = {1, 1};
  m.case_counts = {{"c1", 2}, {"c2", 1}, {"c3", 1}, {"c4", 1}};
  m.stage_seconds = {{"probes", 500.0}, {"features", 20.0}, {"knn", 5.0}};
  ProbeRecord light;
  light.config = {{"name", "light"}};
  light.config_id = "light";
  light.macs = 1000000;
  light.test_accuracy = 0.80;
  light.train_seconds = 100;
  light.epoch_seconds = 10;
  light.epochs = 10;
  ProbeRecord heavy = light;
  heavy.config = {{"name", "heavy"}};
  heavy.config_id = "heavy";
  heavy.macs = 4000000;
  heavy.test_accuracy = 0.90;
  heavy.train_seconds = 400;
  heavy.epoch_seconds = 40;
  m.probes = {light, heavy};
  m.key = manifest_key(m);
  return m;
}

}  // namespace dataproxy::testing
