#include "cli/app.h"

#include <cstdio>
#include <exception>

#include "core/error.h"
#include "core/log.h"

namespace garmentnet::cli {

namespace {
constexpr const char* kLogLevelOption = "--log-level";
}

std::string named_subcommand(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == kLogLevelOption) {
      ++i;  // its value
    } else if (!arg.starts_with('-')) {
      return arg;
    }
  }
  return "";
}

int run_app(int argc, char** argv, std::span<const AddCommand> commands,
            const std::string& version) {
  CLI::App app{
      "garmentnet: learns clothing categories and pattern tags from photos, predicts in batch and "
      "serves the model over HTTP"};
  app.require_subcommand(1);
  if (!version.empty()) app.set_version_flag("--version", version);
  std::string log_level = "info";
  app.add_option(kLogLevelOption, log_level, "debug, info, warn or error")->capture_default_str();
  app.parse_complete_callback([&] { init_logging(log_level); });
  for (const AddCommand add_command : commands) add_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  } catch (const InputError& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "internal error: %s\n(please report this with the command you ran)\n",
                 error.what());
    return 2;
  }
  return 0;
}

}  // namespace garmentnet::cli
