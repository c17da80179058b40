#include "train/optimization.h"

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <cmath>
#include <numbers>

namespace garmentnet {

void Optimizer::set_factor(double factor) {
  auto& groups = optimizer->param_groups();
  for (size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(peak_lr[g] * factor);
}

Optimizer make_optimizer(const TrainOptions& o, MultiTaskModel& model) {
  ParameterGroups params = model->parameter_groups();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  Optimizer result;
  auto add = [&](std::vector<torch::Tensor> tensors, double lr) {
    if (tensors.empty()) return;
    switch (o.optimizer) {
      case OptimizerKind::AdamW:
        groups.emplace_back(std::move(tensors),
                            std::make_unique<torch::optim::AdamWOptions>(
                                torch::optim::AdamWOptions(lr).weight_decay(o.weight_decay)));
        break;
      case OptimizerKind::Sgd:
        groups.emplace_back(
            std::move(tensors),
            std::make_unique<torch::optim::SGDOptions>(
                torch::optim::SGDOptions(lr).momentum(0.9).nesterov(true).weight_decay(
                    o.weight_decay)));
        break;
    }
    result.peak_lr.push_back(lr);
  };
  add(params.heads, o.head_lr);
  add(params.backbone, o.backbone_lr);
  switch (o.optimizer) {
    case OptimizerKind::AdamW:
      result.optimizer = std::make_unique<torch::optim::AdamW>(std::move(groups));
      break;
    case OptimizerKind::Sgd:
      result.optimizer = std::make_unique<torch::optim::SGD>(std::move(groups),
                                                             torch::optim::SGDOptions(o.head_lr));
      break;
  }
  return result;
}

double schedule_factor(const TrainOptions& o, double epoch) {
  if (o.warmup_epochs > 0 && epoch < o.warmup_epochs) return (epoch + 1e-3) / o.warmup_epochs;
  const double span = std::max(1.0, static_cast<double>(o.epochs - o.warmup_epochs));
  const double progress = std::clamp((epoch - o.warmup_epochs) / span, 0.0, 1.0);
  switch (o.schedule) {
    case LrSchedule::Cosine:
      return 0.02 + 0.98 * 0.5 * (1 + std::cos(std::numbers::pi * progress));
    case LrSchedule::Step:
      return progress < 2.0 / 3.0 ? 1.0 : 0.1;
    case LrSchedule::Constant:
      return 1.0;
  }
  return 1.0;
}

LossOptions loss_options(const TrainOptions& o, const LabelledDataset& train) {
  LossOptions options;
  for (const auto& head : train.spec.heads) {
    HeadLossOptions& h = options[head.name];
    if (head.kind == HeadKind::Softmax) {
      h.label_smoothing = o.label_smoothing;
    } else if (o.balance_tags) {
      const size_t tags = head.num_outputs();
      const auto& labels = train.labels.at(head.name);
      std::vector<float> weights(tags, 1.0f);
      for (size_t k = 0; k < tags; ++k) {
        double positives = 0, negatives = 0;
        for (size_t i = k; i < labels.size(); i += tags) {
          positives += labels[i] == 1;
          negatives += labels[i] == 0;
        }
        if (positives > 0)
          weights[k] = static_cast<float>(std::clamp(negatives / positives, 1.0, 10.0));
      }
      h.pos_weight = torch::tensor(weights);
    }
  }
  return options;
}

}  // namespace garmentnet
