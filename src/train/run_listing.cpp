#include "train/run_listing.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "train/epoch_metrics.h"

namespace garmentnet {
namespace {

namespace fs = std::filesystem;

constexpr std::pair<RunStatus, std::string_view> kStatusNames[] = {
    {RunStatus::Running, "running"},
    {RunStatus::Finished, "finished"},
    {RunStatus::Stopped, "stopped"},
    {RunStatus::Failed, "failed"}};

std::string local_time(std::time_t time) {
  std::tm parts{};
  ::localtime_r(&time, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M", &parts);
  return text;
}

}  // namespace

nlohmann::json read_run_file(const fs::path& file) {
  std::error_code error;
  if (!fs::is_regular_file(file, error)) return nlohmann::json(nlohmann::json::value_t::discarded);
  return nlohmann::json::parse(read_file(file), nullptr, /*allow_exceptions=*/false);
}

namespace {

void flatten(const nlohmann::json& value, const std::string& name,
             std::map<std::string, std::string>& out) {
  if (value.is_object()) {
    for (const auto& [key, item] : value.items())
      flatten(item, name.empty() ? key : name + "." + key, out);
  } else {
    out[name] = value.is_string() ? value.get<std::string>() : value.dump();
  }
}

}  // namespace

std::map<std::string, std::string> flat_options(const nlohmann::json& config) {
  std::map<std::string, std::string> options;
  flatten(config, "", options);
  return options;
}

RunSummary summarize_run(const fs::path& folder, std::string name) {
  RunSummary run;
  run.folder = folder;
  run.name = std::move(name);
  const nlohmann::json config = read_run_file(folder / "config.json");
  run.backbone = config.value("backbone", "");
  run.transfer = config.value("transfer", "");
  run.epochs_planned = config.value("epochs", 0);
  const bool by_loss = config.value("monitor", "score") == "loss";
  std::error_code error;
  const auto written = fs::last_write_time(folder / "config.json", error);
  if (!error) {
    run.started =
        local_time(std::chrono::system_clock::to_time_t(std::chrono::file_clock::to_sys(written)));
  }
  if (fs::exists(folder / "metrics.json")) {
    const TrainingHistory history = history_from_json(read_run_file(folder / "metrics.json"));
    run.epochs_run = static_cast<int>(history.size());
    for (const EpochRecord& record : history) {
      if (record.validation.heads.empty()) continue;  // no validation rows: no score
      const double value = by_loss ? -record.validation.loss : record.validation.score;
      const double best = by_loss ? -run.score : run.score;
      if (run.best_epoch != 0 && value <= best) continue;
      run.best_epoch = record.epoch;
      run.score = by_loss ? record.validation.loss : record.validation.score;
      const HeadlineFigures headline = headline_figures(record.validation);
      run.top1 = headline.top1;
      run.top2 = headline.top2;
      run.tag_f1 = headline.tag_f1;
    }
  }
  const nlohmann::json status = read_run_file(folder / "status.json");
  if (status.is_object()) {
    for (const auto& [value, name] : kStatusNames)
      if (status.value("status", "") == name) run.status = value;
    run.detail = status.value("detail", "");
    // A run whose process is gone did not finish: it was killed (kill -9, a crash, a reboot).
    const int pid = status.value("pid", 0);
    if (run.status == RunStatus::Running && (pid <= 0 || (::kill(pid, 0) != 0 && errno == ESRCH))) {
      run.status = RunStatus::Stopped;
      run.detail = "its process is gone";
    }
  }
  return run;
}

std::string_view name_of(RunStatus status) {
  for (const auto& [value, name] : kStatusNames)
    if (value == status) return name;
  return "?";
}

void write_run_status(const fs::path& run_dir, RunStatus status, const std::string& detail) {
  nlohmann::json record = {
      {"status", name_of(status)}, {"pid", ::getpid()}, {"time", local_time(std::time(nullptr))}};
  if (!detail.empty()) record["detail"] = detail;
  write_file_atomically(run_dir / "status.json", record.dump(2));
}

std::vector<RunSummary> list_runs(const fs::path& root) {
  std::vector<RunSummary> runs;
  std::error_code error;
  for (auto entry = fs::recursive_directory_iterator(root, error);
       entry != fs::recursive_directory_iterator(); entry.increment(error)) {
    if (error) break;
    if (!entry->is_directory() && entry->path().filename() == "config.json") {
      const fs::path folder = entry->path().parent_path();
      if (!fs::exists(folder / "metrics.json") && !fs::exists(folder / "status.json")) continue;
      try {
        std::string name = fs::relative(folder, root).generic_string();
        runs.push_back(summarize_run(folder, name == "." ? folder.filename().string() : name));
      } catch (const std::exception& failure) {
        spdlog::warn("{} skipped: {}", folder.string(), failure.what());
      }
    }
    // Not into the big folders of a run.
    if (entry->is_directory() &&
        (entry->path().filename() == "tensorboard" || entry->path().filename() == "plots"))
      entry.disable_recursion_pending();
  }
  return runs;
}

}  // namespace garmentnet
