// What a training run is asked to do (`garmentnet train` / `pretrain`), one field per flag, and
// the closed choices among them as enums with one name table each.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/choice_names.h"
#include "data/augmentation_presets.h"
#include "data/image.h"

namespace garmentnet {

enum class TransferMode {
  Frozen,    // backbone weights fixed: only the heads train (feature cache)
  Finetune,  // the last `unfreeze_blocks` backbone blocks train with the heads
  Scratch,   // every weight trains
};
inline constexpr auto kTransferModes = choice_names<TransferMode>(
    std::pair{"frozen", TransferMode::Frozen}, std::pair{"finetune", TransferMode::Finetune},
    std::pair{"scratch", TransferMode::Scratch});

enum class OptimizerKind {
  AdamW,  // decoupled weight decay
  Sgd,    // momentum 0.9, Nesterov, L2 weight decay
};
inline constexpr auto kOptimizerKinds = choice_names<OptimizerKind>(
    std::pair{"adamw", OptimizerKind::AdamW}, std::pair{"sgd", OptimizerKind::Sgd});

enum class LrSchedule {
  Cosine,    // cosine decay to 2% of the peak
  Step,      // ×0.1 at 2/3 of the epochs
  Constant,  // the peak throughout
};
inline constexpr auto kLrSchedules = choice_names<LrSchedule>(
    std::pair{"cosine", LrSchedule::Cosine}, std::pair{"step", LrSchedule::Step},
    std::pair{"constant", LrSchedule::Constant});

// What picks the best epoch and drives early stopping.
enum class Monitor {
  Score,  // validation score (mean over heads of top-1 / mAP), higher is better
  Loss,   // validation loss, lower is better
};
inline constexpr auto kMonitors =
    choice_names<Monitor>(std::pair{"score", Monitor::Score}, std::pair{"loss", Monitor::Loss});

struct TrainOptions {
  std::filesystem::path data_dir;      // dataset folder: data.parquet, images/, optional task.json
  std::filesystem::path out_dir;       // run directory (created; reused with resume)
  std::filesystem::path validation;    // optional validation table (images from data_dir/images);
                                       // empty: a stratified split of the training table
  std::string backbone = "small_cnn";  // native name, torchscript:FILE, or a backbone file
  // Unset: scratch for a bare native architecture (random weights), finetune for pretrained
  // weights (a backbone file or TorchScript).
  std::optional<TransferMode> transfer;
  int unfreeze_blocks = 2;     // finetune: number of last backbone blocks trained
  int epochs = 12;             // maximum number of epochs
  int batch_size = 64;         // images per optimisation step
  double head_lr = 3e-3;       // peak learning rate of the heads
  double backbone_lr = 1e-3;   // peak learning rate of the trainable backbone blocks
  double weight_decay = 1e-4;  // decoupled (AdamW) or L2 (SGD) weight decay
  OptimizerKind optimizer = OptimizerKind::AdamW;
  LrSchedule schedule = LrSchedule::Cosine;
  int warmup_epochs = 1;              // linear warm-up before the schedule
  double label_smoothing = 0.05;      // softmax heads
  bool balance_tags = true;           // BCE positive weight per tag = negatives / positives
  double dropout = 0.2;               // before the heads
  double validation_fraction = 0.15;  // share of the table held out when no validation file
  int folds = 0;  // > 0: validation is fold `fold` of this many stratified folds (cross-validation)
  int fold = 0;   // 0-based
  Monitor monitor = Monitor::Score;         // best checkpoint and early stopping
  int patience = 4;                         // epochs without improvement before stopping; 0 = never
  int image_size = 64;                      // model input side (square)
  ResizeMode resize = ResizeMode::Stretch;  // how images reach the input size
  // Unset: standard, or with resume the preset the run was started with (its config.json).
  std::optional<AugmentationPreset> augment;
  bool feature_cache = true;  // frozen backbone: compute features once, train heads on them
  int feature_views = 1;      // feature cache: views per image (1 = plain only)
  uint64_t seed = 42;         // split, initialisation, shuffling, augmentation
  bool resume = false;        // continue the run in out_dir from its checkpoint
  bool strict = false;        // missing images / null labels are errors
  bool report = true;         // write report.html with plots
};

// InputError naming the flag for any option out of range.
void check_options(const TrainOptions& options);

// The options with every unset choice decided: transfer from the backbone, augmentation from
// the run being resumed (config.json) or standard.
TrainOptions resolve_options(const TrainOptions& requested);

// config.json of a run (resolved options; also stored in the model file).
nlohmann::json to_json(const TrainOptions& options);

// Sets the option that config.json calls `name` to `value`, written as config.json writes it
// (a number, a text, a choice's name, true/false). InputError naming the option for a name that
// is not one of settable_option_names() or a value of the wrong kind.
void set_option(TrainOptions& options, const std::string& name, const nlohmann::json& value);
// The options set_option sets: every training choice (not the data, run folder or resume).
std::vector<std::string> settable_option_names();

}  // namespace garmentnet
