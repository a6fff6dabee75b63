#include <algorithm>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "command.h"
#include "dataproxy/error.h"
#include "dataproxy/version.h"

namespace dataproxy::cli {

std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}

bool parse_options(const std::vector<std::string>& args,
                   const boost::program_options::options_description& options,
                   const std::string& command, boost::program_options::variables_map& vm,
                   const boost::program_options::positional_options_description* positional) {
  namespace po = boost::program_options;
  try {
    // An empty positional description makes Boost refuse a stray argument instead of
    // dropping it silently.
    const po::positional_options_description none;
    po::store(po::command_line_parser(args)
                  .options(options)
                  .positional(positional != nullptr ? *positional : none)
                  .run(),
              vm);
    if (vm.count("help")) {
      std::cout << options << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw InvalidInput(std::string(e.what()) + " (see dataproxy " + command + " --help)");
  }
  return true;
}

bool register_command(Command command) {
  registry().push_back(std::move(command));
  return true;
}

const std::vector<Command>& commands() {
  auto& r = registry();
  std::sort(r.begin(), r.end(), [](const Command& a, const Command& b) { return a.name < b.name; });
  return r;
}

namespace {

void usage(std::ostream& os) {
  os << "usage: dataproxy <command> [options]   (dataproxy <command> --help for its options)\n\n"
        "commands:\n";
  for (const auto& c : commands()) {
    os << "  " << c.name << std::string(c.name.size() < 14 ? 14 - c.name.size() : 1, ' ')
       << c.summary << "\n";
  }
}

}  // namespace
}  // namespace dataproxy::cli

int main(int argc, char** argv) {
  using namespace dataproxy::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    usage(args.empty() ? std::cerr : std::cout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "dataproxy " << DATAPROXY_VERSION << "\n";
    return 0;
  }
  for (const auto& c : commands()) {
    if (c.name != args[0]) continue;
    try {
      return c.run(std::vector<std::string>(args.begin() + 1, args.end()));
    } catch (const dataproxy::Error& e) {
      std::cerr << "dataproxy " << c.name << ": error: " << e.what() << "\n";
      return e.exit_code();
    } catch (const std::exception& e) {
      std::cerr << "dataproxy " << c.name << ": internal error: " << e.what()
                << "\n(please report this with the command line that caused it)\n";
      return 1;
    }
  }
  std::cerr << "dataproxy: unknown command '" << args[0] << "'\n\n";
  usage(std::cerr);
  return 2;
}
