// Each subcommand lives in its own file and registers itself on the app: parsing only, the work
// is done by the core library.
#pragma once

#include <CLI/CLI.hpp>

namespace garmentnet::cli {

void add_explore_command(CLI::App& app);
}  // namespace garmentnet::cli
