// A training run tracked in MLflow (mlflow_tracking.h): at the start a run with the resolved
// options as parameters and tags (garmentnet version, backbone, transfer mode, data folder, a
// checksum of the label file); after every epoch its figures as metrics with step = epoch; at the
// end the model card, report, metrics and (with log_model) the model file as artifacts, and the
// status: FINISHED, KILLED (Ctrl-C / SIGTERM) or FAILED (the run ended by an error).
#pragma once

#include <filesystem>
#include <memory>

#include "train/mlflow_tracking.h"
#include "train/training_observer.h"

namespace garmentnet {

class MlflowObserver : public TrainingObserver {
 public:
  MlflowObserver(MlflowSettings settings, std::filesystem::path run_dir, bool log_model);

  void on_run_start(const RunStart& start) override;
  void on_epoch_end(const EpochEnd& end) override;
  void on_run_end(const TrainResult& result) override;
  void on_run_failed(const std::string& error) override;

 private:
  void log_epoch(const EpochRecord& record);

  MlflowSettings settings_;
  std::filesystem::path run_dir_;
  bool log_model_;
  size_t training_rows_ = 0;
  std::unique_ptr<MlflowRun> run_;
};

}  // namespace garmentnet
