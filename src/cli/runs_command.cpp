// `garmentnet runs`: training runs after the fact. `runs list DIR` tables every run under a
// folder; `runs compare RUN_DIR...` puts runs side by side on an HTML page; `runs push RUN_DIR`
// sends the MLflow records a run kept because its tracking server could not be reached.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/text_table.h"
#include "train/mlflow_tracking.h"
#include "train/run_comparison.h"
#include "train/run_listing.h"

namespace garmentnet::cli {
namespace {

std::string figure(const std::optional<double>& value) {
  return value ? fmt::format("{:.3f}", *value) : "";
}

void add_list_command(CLI::App& runs) {
  auto root = std::make_shared<std::filesystem::path>();
  auto sort = std::make_shared<std::string>("date");
  auto status = std::make_shared<std::string>();
  auto backbone = std::make_shared<std::string>();
  CLI::App* list = runs.add_subcommand("list", "Table of every training run under a folder");
  list->add_option("DIR", *root, "Folder holding run folders (searched at any depth)")
      ->required()
      ->check(CLI::ExistingDirectory);
  list->add_option("--sort", *sort, "date (newest first), score (best first) or name")
      ->check(CLI::IsMember({"date", "score", "name"}))
      ->capture_default_str();
  list->add_option("--status", *status, "Only runs with this status")
      ->check(CLI::IsMember({"running", "finished", "stopped", "failed"}));
  list->add_option("--backbone", *backbone, "Only runs of this backbone");
  list->callback([root, sort, status, backbone] {
    std::vector<RunSummary> runs = list_runs(*root);
    std::erase_if(runs, [&](const RunSummary& run) {
      return (!status->empty() && (!run.status || name_of(*run.status) != *status)) ||
             (!backbone->empty() && run.backbone != *backbone);
    });
    std::sort(runs.begin(), runs.end(), [&](const RunSummary& a, const RunSummary& b) {
      if (*sort == "score") return a.score > b.score;
      if (*sort == "name") return a.name < b.name;
      return a.started > b.started;
    });
    std::vector<std::vector<std::string>> rows;
    for (const RunSummary& run : runs) {
      rows.push_back({run.name, run.started, run.backbone, run.transfer,
                      fmt::format("{}/{}", run.epochs_run, run.epochs_planned),
                      run.best_epoch > 0 ? std::to_string(run.best_epoch) : "",
                      run.best_epoch > 0 ? fmt::format("{:.3f}", run.score) : "", figure(run.top1),
                      figure(run.top2), figure(run.tag_f1),
                      run.status ? std::string(name_of(*run.status)) : "",
                      run.detail.substr(0, 60)});
    }
    std::cout << format_text_table({"run", "started", "backbone", "transfer", "epochs", "best",
                                    "score", "top1", "top2", "tag F1", "status", "detail"},
                                   rows)
              << runs.size() << " run(s)\n";
  });
}

void add_compare_command(CLI::App& runs) {
  auto run_dirs = std::make_shared<std::vector<std::filesystem::path>>();
  auto out = std::make_shared<std::filesystem::path>("comparison");
  CLI::App* compare = runs.add_subcommand(
      "compare",
      "An HTML page of several runs: their curves overlaid, the options that differ, their best "
      "epochs side by side");
  compare->add_option("RUN_DIR", *run_dirs, "Two or more run folders")->required();
  compare->add_option("--out", *out, "Folder for compare.html and its charts")
      ->capture_default_str();
  compare->callback([run_dirs, out] {
    if (run_dirs->size() < 2)
      fail("runs compare needs two or more run folders; {} given", run_dirs->size());
    write_run_comparison(*run_dirs, *out);
    spdlog::info("wrote {}", (*out / "compare.html").string());
  });
}

}  // namespace

void add_runs_command(CLI::App& app) {
  CLI::App* runs = app.add_subcommand(
      "runs", "Training runs: list them, compare them, send their kept MLflow records");
  runs->require_subcommand(1);
  add_list_command(*runs);
  add_compare_command(*runs);
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
