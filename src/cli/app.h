// What both executables share: the global options, the subcommands they register, and how an
// error reaches the user.
#pragma once

#include <CLI/CLI.hpp>
#include <span>
#include <string>

namespace garmentnet::cli {

using AddCommand = void (*)(CLI::App&);

// The subcommand a command line names, past the global options; "" when it names none.
std::string named_subcommand(int argc, char** argv);

// Parses the command line with the global options and these subcommands and runs the one named.
// Returns the exit status: 0, 1 for bad input (the message names what to fix), 2 for an internal
// error. `version` is what --version prints; empty: no --version.
int run_app(int argc, char** argv, std::span<const AddCommand> commands,
            const std::string& version);

}  // namespace garmentnet::cli
