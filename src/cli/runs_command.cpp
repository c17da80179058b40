// `garmentnet runs`: training runs after the fact. `runs push RUN_DIR` sends the MLflow records a
// run kept because its tracking server could not be reached.
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "core/error.h"
#include "train/mlflow_tracking.h"

namespace garmentnet::cli {

void add_runs_command(CLI::App& app) {
  CLI::App* runs = app.add_subcommand("runs", "Training runs: send their kept MLflow records");
  runs->require_subcommand(1);
  auto run_dir = std::make_shared<std::filesystem::path>();
  auto uri = std::make_shared<std::string>();
  CLI::App* push = runs->add_subcommand(
      "push",
      "Send the MLflow records a run could not send (its mlflow-pending.json) to its tracking "
      "server");
  push->add_option("RUN_DIR", *run_dir, "The run folder")->required();
  push->add_option("--mlflow-uri", *uri,
                   "Send them to this tracking server instead of the one the run used");
  push->callback([run_dir, uri] {
    const size_t remaining = push_pending_records(*run_dir, *uri);
    if (remaining > 0) {
      fail(
          "{} record(s) of {} are still unsent (the tracking server is unreachable); they stay "
          "in its mlflow-pending.json: run this again later",
          remaining, run_dir->string());
    }
  });
}

}  // namespace garmentnet::cli
