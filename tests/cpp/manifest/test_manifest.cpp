#include <gtest/gtest.h>
#include <unistd.h>

#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/manifest.h"
#include "manifest/sample_manifest.h"

namespace dataproxy {
namespace {

class ManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dataproxy-manifest-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Rewrites manifest.json with `edit` applied, its checksum recomputed (key unchanged).
  template <class Edit>
  void resign(Edit edit) {
    json j = json::parse(read_file(dir_ / "manifest.json"));
    edit(j);
    j.erase("checksum");
    j["checksum"] = sha256_hex(j.dump());
    atomic_write(dir_ / "manifest.json", j.dump(2));
  }

  fs::path dir_;
};

TEST_F(ManifestTest, SavedManifestLoadsBackEqual) {
  const Manifest m = testing::sample_manifest();
  save_manifest(m, dir_);
  for (const fs::path& p : {dir_, dir_ / "manifest.json"}) {
    const Manifest back = load_manifest(p);
    EXPECT_EQ(back.key, m.key);
    EXPECT_EQ(back.indices, m.indices);
    EXPECT_EQ(back.selection.selection, m.selection.selection);
    EXPECT_EQ(back.selection.evaluation, m.selection.evaluation);
    ASSERT_EQ(back.probes.size(), 2u);
    EXPECT_EQ(back.probes[1].config_id, "heavy");
    EXPECT_DOUBLE_EQ(back.probes[1].train_seconds, 400);
    EXPECT_EQ(back.stage_seconds, m.stage_seconds);
    EXPECT_EQ(back.proxy_num_classes(), 2);
  }
}

TEST_F(ManifestTest, ResignedManifestWithoutSizeGetsTheLibrarysMessage) {
  save_manifest(testing::sample_manifest(), dir_);
  resign([](json& j) { j.erase("size"); });
  try {
    load_manifest(dir_);
    FAIL() << "accepted a manifest without size";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("is not a valid manifest"), std::string::npos) << what;
    EXPECT_NE(what.find("size"), std::string::npos) << what;
    EXPECT_NE(what.find("dataproxy generate"), std::string::npos) << what;
  }
  resign([](json& j) { j["size"] = "two"; });
  EXPECT_THROW(load_manifest(dir_), DataError);
  resign([](json& j) { j["size"] = 3; });
  try {
    load_manifest(dir_);
    FAIL() << "accepted a wrong size";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("says size 3"), std::string::npos) << e.what();
  }
}

TEST_F(ManifestTest, EditedManifestIsRefused) {
  save_manifest(testing::sample_manifest(), dir_);
  json j = json::parse(read_file(dir_ / "manifest.json"));
  j["ratio"] = 0.5;
  atomic_write(dir_ / "manifest.json", j.dump());
  EXPECT_THROW(load_manifest(dir_), DataError);
  EXPECT_THROW(load_manifest(dir_ / "absent"), InvalidInput);
}

TEST(CacheLayout, EveryNameComesFromOnePlace) {
  const fs::path cache = "/c";
  EXPECT_EQ(proxies_dir(cache), fs::path("/c/proxies"));
  EXPECT_EQ(proxy_dir(cache, "k1"), fs::path("/c/proxies/k1"));
  EXPECT_EQ(proxy_lock_file(cache, "k1"), fs::path("/c/proxies/k1.lock"));
  EXPECT_EQ(proxy_manifest_file(cache, "k1"), fs::path("/c/proxies/k1/manifest.json"));
  EXPECT_EQ(probes_dir(cache), fs::path("/c/probes"));
  EXPECT_EQ(data_cache_dir(cache), fs::path("/c/data"));
  EXPECT_EQ(manifest_file("/no/such/file.json"), fs::path("/no/such/file.json"));
}

}  // namespace
}  // namespace dataproxy
