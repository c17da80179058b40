// What a run folder says about its run, for `garmentnet runs list`: its status (status.json,
// written by the training engine as the run goes), its options (config.json) and its best epoch
// (metrics.json). Torch-free.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace garmentnet {

enum class RunStatus {
  Running,   // started, its process alive
  Finished,  // all epochs, or early stopping
  Stopped,   // Ctrl-C / SIGTERM, or its process is gone (kill -9): resumable
  Failed,    // ended by an error (status.json has the message)
};

// Writes <run_dir>/status.json: the status, this process's id, the time, and `detail` (the error
// of a failed run).
void write_run_status(const std::filesystem::path& run_dir, RunStatus status,
                      const std::string& detail = "");

struct RunSummary {
  std::filesystem::path folder;
  std::string name;     // the folder relative to the listed root
  std::string started;  // "YYYY-MM-DD HH:MM" (local time), when the run (last) started
  std::string backbone;
  std::string transfer;
  int epochs_run = 0;
  int epochs_planned = 0;
  int best_epoch = 0;                // 0 = none yet
  double score = 0;                  // validation score of the best epoch
  std::optional<double> top1, top2;  // the category head's, at the best epoch
  std::optional<double> tag_f1;      // the tag head's macro F1, at the best epoch
  std::optional<RunStatus> status;   // none for runs of garmentnet versions without status.json
  std::string detail;                // the error of a failed run
};

// What `folder` says of its run, under the name `name`.
RunSummary summarize_run(const std::filesystem::path& folder, std::string name);

// A run folder's JSON file (config.json, metrics.json, status.json); a discarded value when it is
// missing or not JSON.
nlohmann::json read_run_file(const std::filesystem::path& file);

// A run's options (config.json) as text by name, nested ones named like
// "augmentation.brightness": what MLflow gets as parameters and `runs compare` compares.
std::map<std::string, std::string> flat_options(const nlohmann::json& config);

// Every run folder (a folder with config.json and metrics.json or status.json) under `root`,
// nested ones included; folders that cannot be read are skipped with a warning.
std::vector<RunSummary> list_runs(const std::filesystem::path& root);

std::string_view name_of(RunStatus status);

}  // namespace garmentnet
