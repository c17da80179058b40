// The multi-task loss: a weighted sum (HeadSpec::loss_weight) of one loss per head.
//   softmax head:     cross-entropy, optional label smoothing and class weights; target = class
//                     index [N] (int64), -1 = missing.
//   multi-label head: binary cross-entropy on logits, optional pos_weight per tag; target = 0/1
//                     per tag [N, tags] (any numeric type), -1 = missing (per tag).
// Missing labels are masked out; a head whose batch has no labels at all contributes 0.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>

#include "data/task_spec.h"
#include "model/multitask_model.h"

namespace garmentnet {

struct HeadLossOptions {
  double label_smoothing = 0.0;  // softmax: target = (1 - x) · one-hot + x / classes
  torch::Tensor class_weights;   // softmax: weight per class [classes]; undefined = all 1. The
                                 // mean is then taken over the labelled rows' weights (as torch)
  torch::Tensor pos_weight;      // multi-label: weight of positive labels per tag [tags];
                                 // undefined = all 1 (e.g. negatives / positives for rare tags)
};

// Head name → options; heads not listed use the defaults.
using LossOptions = std::map<std::string, HeadLossOptions>;

// Head name → targets (shapes above).
using HeadTargets = std::map<std::string, torch::Tensor>;

struct LossResult {
  torch::Tensor total;                      // scalar to call backward() on
  std::map<std::string, double> per_head;   // unweighted loss of each head
  std::map<std::string, int64_t> labelled;  // labels that counted: rows (softmax) or row×tag
                                            // entries (multi-label)
};

// InputError if a head's targets are absent or have the wrong shape, or a class index is out of
// range.
LossResult multitask_loss(const TaskSpec& spec, const HeadOutputs& logits,
                          const HeadTargets& targets, const LossOptions& options = {});

}  // namespace garmentnet
