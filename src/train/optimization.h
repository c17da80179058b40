// How a run optimises: the optimiser with one parameter group per learning rate, the learning
// rate schedule, and the loss settings drawn from the options and the training labels.
#pragma once

#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

#include "data/dataset.h"
#include "model/losses.h"
#include "model/multitask_model.h"
#include "train/train_options.h"

namespace garmentnet {

struct Optimizer {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<double> peak_lr;  // per parameter group

  // Sets each group's learning rate to its peak × factor.
  void set_factor(double factor);
};

// Heads at head_lr, trainable backbone parameters at backbone_lr (the parameters requiring
// gradients when it is called).
Optimizer make_optimizer(const TrainOptions& options, MultiTaskModel& model);

// Peak learning-rate multiplier at a (fractional) epoch: linear warm-up, then the schedule.
double schedule_factor(const TrainOptions& options, double epoch);

// Label smoothing of softmax heads; positive weights of rare tags (negatives / positives, at
// most 10) from the training labels when balance_tags.
LossOptions loss_options(const TrainOptions& options, const LabelledDataset& train);

}  // namespace garmentnet
