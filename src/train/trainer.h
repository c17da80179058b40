// Training a multi-task model (`garmentnet train`) and pretraining a backbone
// (`garmentnet pretrain`). A run directory holds everything a run produced: resolved config,
// log, per-epoch metrics (CSV + JSON), a resumable checkpoint, the best model file (chosen on
// validation data) and a report. docs/architecture.md shows the stages and the hooks.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <vector>

#include "train/epoch_metrics.h"
#include "train/train_options.h"
#include "train/training_observer.h"

namespace garmentnet {

class ThreadPool;
class DecodedImageCache;
class FeatureCache;

struct TrainResult {
  std::filesystem::path model_path;  // the best model file
  int best_epoch = 0;                // 1-based
  int epochs_run = 0;                // completed epochs, this run and resumed ones
  bool stopped_early = false;        // patience ran out, or an observer stopped the run
  bool interrupted = false;          // stop requested (Ctrl-C / SIGTERM): resumable
  SplitMetrics best_metrics;         // validation metrics of the best epoch
  TrainingHistory history;           // every completed epoch
  // The best epoch's predictions of the validation rows (their ids, image files and the task's
  // classes beside them); empty when that epoch ran before a resume and no report asked for them.
  TaskSpec spec;
  std::vector<std::string> validation_ids;
  std::vector<std::filesystem::path> validation_images;
  SplitPredictions best_validation;
};

// What several trainings in one process share, so that each decodes and computes only what no
// earlier one did: the decoding threads, the decoded images, a frozen backbone's features.
class TrainingResources {
 public:
  explicit TrainingResources(int threads);
  ~TrainingResources();
  TrainingResources(const TrainingResources&) = delete;
  TrainingResources& operator=(const TrainingResources&) = delete;

  ThreadPool& pool();
  DecodedImageCache& images();
  FeatureCache& features();

 private:
  struct Parts;
  std::unique_ptr<Parts> parts_;
};

// What plugs into a run (training_observer.h), and how it is asked to stop.
struct TrainingHooks {
  std::vector<TrainingObserver*> observers;
  GradientHook* gradients = nullptr;
  // Set by the caller (e.g. StopSignals); checked in every long loop (decoding, feature caching,
  // after every step, validation). The run then ends as stopped and keeps its last epoch-boundary
  // checkpoint, so --resume gives the figures of an uninterrupted run.
  const std::atomic<bool>* stop_requested = nullptr;
  // Set when this process is one of several training one model (src/dist): it trains on its share
  // of the batches, and only rank 0 writes the run directory and tells the observers.
  DataParallel* parallel = nullptr;
};

// Trains a model as `options` say and writes the run directory. InputError for bad options or
// data; a non-finite loss stops the run with an InputError and keeps the last good checkpoint.
// Threads: the caller's LibTorch setting; decoding uses `resources`' pool.
TrainResult train_model(const TrainOptions& options, TrainingResources& resources,
                        const TrainingHooks& hooks = {});

// Trains a backbone from scratch on a source dataset (single softmax head) and saves it as
// out_dir/backbone.pt for `train --backbone`. The run directory is a normal training run.
TrainResult pretrain_backbone(TrainOptions options, TrainingResources& resources,
                              const TrainingHooks& hooks = {});

}  // namespace garmentnet
