#include "train/mlflow_observer.h"

#include <zlib.h>

#include <cmath>

#include "core/atomic_file.h"
#include "core/version.h"
#include "train/run_listing.h"
#include "train/trainer.h"

namespace garmentnet {
namespace {

namespace fs = std::filesystem;

nlohmann::json key_value(const std::string& key, const std::string& value) {
  return {{"key", key}, {"value", value}};
}

// CRC-32 of a file, as 8 hex digits ("" when it cannot be read): which label file a run used.
std::string file_checksum(const fs::path& file) {
  std::error_code error;
  if (!fs::is_regular_file(file, error)) return "";
  const std::string bytes = read_file(file);
  return fmt::format("{:08x}", crc32(0, reinterpret_cast<const Bytef*>(bytes.data()),
                                     static_cast<uInt>(bytes.size())));
}

}  // namespace

MlflowObserver::MlflowObserver(MlflowSettings settings, fs::path run_dir, bool log_model)
    : settings_(std::move(settings)), run_dir_(std::move(run_dir)), log_model_(log_model) {
  if (settings_.run_name.empty()) settings_.run_name = run_dir_.filename().string();
}

void MlflowObserver::on_run_start(const RunStart& start) {
  training_rows_ = start.training_rows;
  run_ = std::make_unique<MlflowRun>(settings_, mlflow_pending_file(run_dir_));
  const TrainOptions& options = start.options;
  nlohmann::json tags = {
      key_value("mlflow.runName", settings_.run_name),
      key_value("mlflow.source.name", "garmentnet"),
      key_value("garmentnet.version", std::string(kGarmentnetVersion)),
      key_value("garmentnet.backbone", options.backbone),
      key_value("garmentnet.transfer", std::string(kTransferModes.name_of(*options.transfer))),
      key_value("garmentnet.data", fs::absolute(options.data_dir).string()),
      key_value("garmentnet.run_dir", fs::absolute(run_dir_).string()),
      key_value("garmentnet.labels_crc32", file_checksum(options.data_dir / "data.parquet"))};
  run_->add({{"kind", "start"},
             {"experiment", settings_.experiment},
             {"run_name", settings_.run_name},
             {"start_time", mlflow_timestamp_ms()},
             {"tags", tags}});
  nlohmann::json params = nlohmann::json::array();
  for (const auto& [name, value] : flat_options(to_json(options)))
    params.push_back(key_value(name, value));
  // MLflow takes at most 100 parameters per log-batch.
  for (size_t first = 0; first < params.size(); first += 100) {
    const auto begin = params.begin() + static_cast<std::ptrdiff_t>(first);
    const auto end =
        params.begin() + static_cast<std::ptrdiff_t>(std::min(first + 100, params.size()));
    run_->add({{"kind", "batch"}, {"params", nlohmann::json(begin, end)}});
  }
  // A resumed run: the epochs before the resume, so that the MLflow run is complete.
  for (const EpochRecord& record : start.history) log_epoch(record);
}

void MlflowObserver::log_epoch(const EpochRecord& record) {
  nlohmann::json metrics = nlohmann::json::array();
  const int64_t timestamp = mlflow_timestamp_ms();
  for (const auto& [key, value] : epoch_figures(record, training_rows_)) {
    if (!std::isfinite(value)) continue;  // MLflow's JSON has no NaN
    metrics.push_back(
        {{"key", key}, {"value", value}, {"timestamp", timestamp}, {"step", record.epoch}});
  }
  run_->add({{"kind", "batch"}, {"metrics", metrics}});
}

void MlflowObserver::on_epoch_end(const EpochEnd& end) { log_epoch(end.record); }

void MlflowObserver::on_run_end(const TrainResult& result) {
  std::vector<fs::path> artifacts = {"model_card.md", "report.html", "metrics.json", "config.json"};
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(run_dir_ / "plots", error))
    artifacts.push_back(fs::relative(entry.path(), run_dir_));
  if (log_model_) artifacts.push_back("model.gnm");
  for (const fs::path& artifact : artifacts) {
    if (!fs::exists(run_dir_ / artifact, error)) continue;
    run_->add({{"kind", "artifact"},
               {"file", fs::absolute(run_dir_ / artifact).string()},
               {"path", artifact.generic_string()}});
  }
  run_->finish(result.interrupted ? "KILLED" : "FINISHED");
}

void MlflowObserver::on_run_failed(const std::string& /*error*/) {
  if (run_) run_->finish("FAILED");
}

}  // namespace garmentnet
