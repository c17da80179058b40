// The training run's report: report.html with loss and score curves per head, the confusion
// matrix and precision-recall curves of the best epoch on validation data, and model_card.md.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/task_spec.h"
#include "train/epoch_metrics.h"

namespace garmentnet {

struct TrainReportInputs {
  std::filesystem::path out_dir;     // run directory; plots go to out_dir/plots
  std::filesystem::path model_path;  // the best model file
  TaskSpec spec;
  TrainingHistory history;                               // one record per epoch
  SplitPredictions best_validation;                      // validation predictions of the best epoch
  std::vector<std::filesystem::path> validation_images;  // image file of each validation row
  std::map<std::string, std::vector<double>> thresholds;  // tuned, per multi-label head
  nlohmann::json summary;  // key facts for the card (data, rows, backbone …)
};

void write_train_report(const TrainReportInputs& inputs);

}  // namespace garmentnet
