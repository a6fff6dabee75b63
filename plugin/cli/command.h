// Subcommands of the `dataproxy` command. Each cmd_*.cpp registers itself with
// DATAPROXY_REGISTER_COMMAND; main() dispatches on the first argument.
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <string>
#include <vector>

namespace dataproxy::cli {

/// One subcommand. `run` gets the arguments after the subcommand's name and returns the exit
/// code; it may throw dataproxy::Error (main prints it and exits with its exit_code()).
struct Command {
  std::string name;
  std::string summary;
  std::function<int(const std::vector<std::string>& args)> run;
};

/// Registers a command at static-initialisation time.
bool register_command(Command command);
const std::vector<Command>& commands();

/// Parses `args` into `vm` with `options` (and `positional` when given). Returns false after
/// printing the help for --help; throws InvalidInput pointing at `dataproxy <command> --help`
/// for anything the parser refuses, a missing required option included.
bool parse_options(
    const std::vector<std::string>& args,
    const boost::program_options::options_description& options, const std::string& command,
    boost::program_options::variables_map& vm,
    const boost::program_options::positional_options_description* positional = nullptr);

}  // namespace dataproxy::cli

#define DATAPROXY_REGISTER_COMMAND(ident, ...) \
  static const bool dataproxy_cmd_##ident = ::dataproxy::cli::register_command(__VA_ARGS__)
