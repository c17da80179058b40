// The resumable state of a run, written at every epoch boundary: checkpoint.gnm (model file with
// the training state in its metadata) and checkpoint.optim.<tag>.pt (optimiser state). Every save
// has a new random tag, named in the model file: the optimiser file is written first under its new
// name, then the model file, and only then are older optimiser files removed, so a run stopped at
// any moment (Ctrl-C, SIGTERM, kill -9, even between the two writes) resumes from the last epoch
// boundary with its own optimiser state and gives the same figures as an uninterrupted run.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/model_file.h"
#include "train/epoch_metrics.h"
#include "train/optimization.h"

namespace garmentnet {

// Where training stands.
struct TrainingState {
  int next_epoch = 0;  // 0-based epoch to run next
  int best_epoch = 0;  // 1-based; 0 = none yet
  double best_value = 0;
  int epochs_without_improvement = 0;
  TrainingHistory history;

  nlohmann::json to_json() const;
  static TrainingState from_json(const nlohmann::json& json);
};

class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& run_dir);

  bool exists() const;
  const std::filesystem::path& model_path() const { return model_path_; }

  void save(MultiTaskModel& model, const Preprocessing& pre,
            const std::map<std::string, std::vector<double>>& thresholds,
            const Optimizer& optimizer, const TrainingState& state) const;

  // The checkpoint's model file (model, preprocessing, thresholds) and training state.
  struct Loaded {
    ModelBundle bundle;
    TrainingState state;
    std::string tag;
  };
  Loaded load() const;

  // Loads the optimiser state saved with `loaded`; warns and keeps `optimizer` fresh when the
  // state file is missing or belongs to another checkpoint.
  void restore_optimizer(const Loaded& loaded, Optimizer& optimizer) const;

 private:
  std::filesystem::path optimizer_path(const std::string& tag) const;

  std::filesystem::path run_dir_;
  std::filesystem::path model_path_;
};

}  // namespace garmentnet
