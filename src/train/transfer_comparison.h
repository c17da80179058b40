// Shows what pretraining buys: trains the target task three ways — heads on the frozen
// pretrained backbone, fine-tuning its last blocks, and the same architecture from scratch —
// with the same budget, and writes a comparison (transfer.html, transfer.json).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "train/trainer.h"

namespace garmentnet {

// `target` carries the target dataset and training settings (its backbone/transfer/out_dir are
// set here); `backbone_file` is the pretrained backbone, `architecture` its native name (for
// the from-scratch run). Runs go to out_dir/compare/{frozen,finetune,scratch}; they share
// `resources`, so the target images are decoded once for all three.
nlohmann::json compare_transfer(TrainOptions target, const std::filesystem::path& backbone_file,
                                const std::string& architecture,
                                const std::filesystem::path& out_dir, TrainingResources& resources,
                                const TrainingHooks& hooks = {});

}  // namespace garmentnet
