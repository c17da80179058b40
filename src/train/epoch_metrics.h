// Typed metrics of a training run: per head, per split (train / validation), per epoch. JSON is
// only how they are written to metrics.json, the checkpoint and the model file, and read back.
// Torch-free.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/task_spec.h"
#include "eval/metrics.h"

namespace garmentnet {

// Per-head probabilities (row-major [rows × outputs]) and labels (-1 missing) of one split.
struct SplitPredictions {
  std::map<std::string, std::vector<float>> probabilities;
  std::map<std::string, std::vector<int64_t>> labels;
};

// Losses summed over the rows of a split (each row's loss counted once).
struct LossTotals {
  std::map<std::string, double> per_head;
  double total = 0;
  int64_t rows = 0;
};

// One head on one split: its mean loss and the metrics of its kind.
struct HeadMetrics {
  double loss = 0;
  std::optional<SoftmaxMetrics> softmax;        // softmax heads
  std::optional<MultiLabelMetrics> multilabel;  // multi-label heads

  // What the head contributes to the split's score: top-1 accuracy or mean average precision.
  double score() const;

  nlohmann::json to_json() const;
  static HeadMetrics from_json(const nlohmann::json& json);
};

struct SplitMetrics {
  double loss = 0;   // mean total loss per row
  double score = 0;  // mean of the heads' scores
  std::map<std::string, HeadMetrics> heads;

  const HeadMetrics& head(const std::string& name) const;

  nlohmann::json to_json() const;
  static SplitMetrics from_json(const nlohmann::json& json);
};

// Scores one split. Multi-label heads are decided at `thresholds` (per head; 0.5 for a head not
// in it), or, when `tune` is set, at thresholds tuned on this split, which are returned in it.
SplitMetrics score_split(const TaskSpec& spec, const SplitPredictions& predictions,
                         const LossTotals& losses,
                         std::map<std::string, std::vector<double>>& thresholds, bool tune);

// What a run is summed up by: the first softmax head's top-1/top-2 and the first multi-label
// head's macro F1 (none where the task has no such head).
struct HeadlineFigures {
  std::optional<double> top1, top2, tag_f1;
};
HeadlineFigures headline_figures(const SplitMetrics& metrics);

struct EpochRecord {
  int epoch = 0;             // 1-based
  double lr_factor = 0;      // schedule factor at the end of the epoch
  double seconds = 0;        // wall time of training and validation
  double train_seconds = 0;  // wall time of the training pass alone
  SplitMetrics train;
  SplitMetrics validation;

  nlohmann::json to_json() const;
  static EpochRecord from_json(const nlohmann::json& json);
};

using TrainingHistory = std::vector<EpochRecord>;

// Every figure of an epoch as a named number, for trackers (TensorBoard scalars, MLflow metrics):
// "<split>/loss", "<split>/score", "<split>/<head>/loss", softmax heads' "top1", "top2",
// "macro_f1", multi-label heads' "mAP", "macro_f1" and "f1/<tag>", for split "train" and
// "validation"; "speed/epoch_seconds", "speed/images_per_second" (of `training_rows`) and
// "schedule/lr_factor".
std::vector<std::pair<std::string, double>> epoch_figures(const EpochRecord& record,
                                                          size_t training_rows);

nlohmann::json history_to_json(const TrainingHistory& history);
TrainingHistory history_from_json(const nlohmann::json& json);

// metrics.json (every figure) and metrics.csv (the headline figures, a row per epoch).
void write_metrics_files(const std::filesystem::path& out_dir, const TaskSpec& spec,
                         const TrainingHistory& history);

// The log line of an epoch: losses, score and each head's headline figures.
std::string epoch_summary(const TaskSpec& spec, const EpochRecord& record, int epochs);

}  // namespace garmentnet
