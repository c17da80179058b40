// The hooks of a training run, for the parts that plug into it without touching its loop:
// experiment tracking (every figure as it is made), tuning (a fold's score, stopping a poor
// trial early) and distributed training (DataParallel: sharing the batches and averaging gradients
// across processes). Torch-free but for the tensors GradientHook and DataParallel see.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/epoch_metrics.h"
#include "train/train_options.h"

namespace at {
class Tensor;
}

namespace garmentnet {

struct TrainResult;

struct RunStart {
  const TrainOptions& options;  // resolved: every choice decided
  const TaskSpec& spec;
  size_t training_rows = 0;
  size_t validation_rows = 0;
  int first_epoch = 0;  // 0-based; more than 0 when resuming
  int64_t steps_per_epoch = 0;
  const TrainingHistory& history;  // the epochs already run (resume), else empty
};

struct StepEnd {
  int epoch = 0;  // 0-based
  int64_t step = 0;
  int64_t steps_per_epoch = 0;
  double loss = 0;       // this step's total loss
  double lr_factor = 0;  // of the peak learning rates
};

struct EpochEnd {
  const EpochRecord& record;
  bool improved = false;  // the best epoch so far on the monitored value
  int best_epoch = 0;     // 1-based
};

class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void on_run_start(const RunStart&) {}
  virtual void on_step_end(const StepEnd&) {}
  virtual void on_epoch_end(const EpochEnd&) {}
  // Asked after every epoch: true ends the run there, like early stopping (a pruned trial).
  virtual bool stop_after(const EpochEnd&) { return false; }
  virtual void on_run_end(const TrainResult&) {}
  // Instead of on_run_end when the run ends by an error (a non-finite loss, a full disk, a bad
  // image under --strict), with its message; the error then goes on to the caller.
  virtual void on_run_failed(const std::string& /*error*/) {}
};

// Called after every backward pass, before the optimiser step, with the trained parameters
// (their gradients filled in).
class GradientHook {
 public:
  virtual ~GradientHook() = default;
  virtual void on_gradients(const std::vector<at::Tensor>& parameters) = 0;
};

// Data-parallel training: this process is one of world_size() training one model together. Each
// trains on its own share of every epoch's batches (the semantics of PyTorch's DistributedSampler)
// and average_gradients makes every process's gradients the mean over all of them, so their models
// stay identical. Every call is collective: each process makes the same calls in the same order. A
// process that died makes the others' next call fail at once, one that hangs after a bounded time
// (an InputError saying so), never a wait for ever.
class DataParallel {
 public:
  virtual ~DataParallel() = default;
  virtual int rank() const = 0;        // 0-based; rank 0 writes the run's files
  virtual int world_size() const = 0;  // number of processes
  // Overwrites `tensors` (parameters and buffers, in the same order everywhere) with rank 0's.
  // Like barrier, it waits as long as joining may take: the ranks load at different speeds.
  virtual void broadcast_from_first(const std::vector<at::Tensor>& tensors) = 0;
  // Returns once every process has called it (before the first step, after loading the data).
  virtual void barrier() = 0;
  // The parameters the run trains, once before the first step: their gradients are then sent as
  // the backward pass computes them, overlapping it.
  virtual void watch(const std::vector<at::Tensor>& parameters) = 0;
  // After a backward pass: replaces the gradient of every watched parameter (`parameters`, the
  // same ones in the same order) by its mean over the processes.
  virtual void average_gradients(const std::vector<at::Tensor>& parameters) = 0;
  // Sums `values` over the processes, in place.
  virtual void sum(std::vector<double>& values) = 0;
  // Every process's `values` (of any length) end to end, in rank order: the same on every rank.
  virtual std::vector<double> gather(const std::vector<double>& values) = 0;
  // Whether any process says `local`: agrees on stopping, so none waits for one that has left.
  virtual bool any(bool local) = 0;
};

}  // namespace garmentnet
