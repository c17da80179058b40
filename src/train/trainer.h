// Training a multi-task model (`garmentnet train`) and pretraining a backbone
// (`garmentnet pretrain`). A run directory holds everything a run produced: resolved config,
// log, per-epoch metrics (CSV + JSON), a resumable checkpoint, the best model file (chosen on
// validation data) and a report.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "data/image.h"

namespace garmentnet {

struct TrainOptions {
  std::filesystem::path data_dir;      // dataset folder: data.parquet, images/, optional task.json
  std::filesystem::path out_dir;       // run directory (created; reused with resume)
  std::filesystem::path validation;    // optional validation table (images from data_dir/images);
                                       // empty: a stratified split of the training table
  std::string backbone = "small_cnn";  // native name, torchscript:FILE, or a backbone file
  std::string transfer = "finetune";   // frozen | finetune | scratch
  int unfreeze_blocks = 2;             // finetune: number of last backbone blocks trained
  int epochs = 12;                     // maximum number of epochs
  int batch_size = 64;                 // images per optimisation step
  double head_lr = 3e-3;               // peak learning rate of the heads
  double backbone_lr = 1e-3;           // peak learning rate of the trainable backbone blocks
  double weight_decay = 1e-4;          // decoupled (AdamW) or L2 (SGD) weight decay
  std::string optimizer = "adamw";     // adamw | sgd (momentum 0.9, Nesterov)
  std::string schedule = "cosine";     // cosine | step (×0.1 at 2/3 of the epochs) | constant
  int warmup_epochs = 1;               // linear warm-up before the schedule
  double label_smoothing = 0.05;       // softmax heads
  bool balance_tags = true;            // BCE positive weight per tag = negatives / positives
  double dropout = 0.2;                // before the heads
  double validation_fraction = 0.15;   // share of the table held out when no validation file
  std::string monitor = "score";       // best checkpoint and early stopping: score | loss
  int patience = 4;                    // epochs without improvement before stopping; 0 = never
  int image_size = 64;                 // model input side (square)
  ResizeMode resize = ResizeMode::Stretch;  // how images reach the input size
  std::string augment;  // training augmentation preset: standard | light | none; empty = standard,
                        // or with resume the preset the run was started with (its config.json)
  bool feature_cache = true;  // frozen backbone: compute features once, train heads on them
  int feature_views = 1;      // feature cache: views per image (1 = plain only)
  uint64_t seed = 42;         // split, initialisation, shuffling, augmentation
  int threads = 0;            // 0 = all cores available
  bool resume = false;        // continue the run in out_dir from its checkpoint
  bool strict = false;        // missing images / null labels are errors
  bool report = true;         // write report.html with plots
};

struct TrainResult {
  std::filesystem::path model_path;  // the best model file
  int best_epoch = 0;                // 1-based
  int epochs_run = 0;                // completed epochs, this run and resumed ones
  bool stopped_early = false;
  bool interrupted = false;     // Ctrl-C / SIGTERM: checkpoint saved, run resumable
  nlohmann::json best_metrics;  // validation metrics of the best epoch
};

// Trains a model as `options` say and writes the run directory. InputError for bad options or
// data; a non-finite loss stops the run with an InputError and keeps the last good checkpoint.
TrainResult train_model(const TrainOptions& options);

// Trains a backbone from scratch on a source dataset (single softmax head) and saves it as
// out_dir/backbone.pt for `train --backbone`. The run directory is a normal training run.
TrainResult pretrain_backbone(TrainOptions options);

}  // namespace garmentnet
