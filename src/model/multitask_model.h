// The multi-task model: backbone → pooled features → dropout → one linear head per HeadSpec.
// Softmax heads output class logits [N, classes]; multi-label heads one logit per tag [N, tags].
// `features` and `heads_forward` are exposed separately so a feature cache can train the heads
// alone on a frozen backbone.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/task_spec.h"
#include "model/backbone.h"

namespace garmentnet {

struct ModelOptions {
  double dropout = 0.2;  // probability of zeroing a feature before the heads (training only)

  nlohmann::json to_json() const;
  static ModelOptions from_json(const nlohmann::json& json);
};

// Head name → logits [N, head.num_outputs()].
using HeadOutputs = std::map<std::string, torch::Tensor>;

// Parameters that currently require gradients, split for separate learning rates.
struct ParameterGroups {
  std::vector<torch::Tensor> backbone;  // trainable (unfrozen) backbone parameters
  std::vector<torch::Tensor> heads;     // all head parameters
};

class MultiTaskModelImpl : public torch::nn::Module {
 public:
  // InputError if the spec has no heads, a head has no outputs, or a head name contains a dot.
  MultiTaskModelImpl(Backbone backbone, TaskSpec spec, ModelOptions options = {});

  // Logits per head of normalised images [N, 3, H, W].
  HeadOutputs forward(torch::Tensor images) { return heads_forward(features(images)); }
  // Pooled backbone features [N, feature_dim].
  torch::Tensor features(torch::Tensor images) { return backbone_->forward(images); }
  // Logits per head from features [N, feature_dim] (dropout, then the linear heads).
  HeadOutputs heads_forward(torch::Tensor features);

  // Freezing (see backbone.h: frozen blocks keep their weights and batch-norm statistics).
  // Optimisers built before a change keep their old parameter lists: build a new one after it.
  void freeze_backbone() { backbone_->freeze(); }
  void unfreeze_last_blocks(size_t count) { backbone_->unfreeze_last_blocks(count); }
  void unfreeze_backbone() { backbone_->unfreeze(); }
  ParameterGroups parameter_groups();

  const TaskSpec& spec() const { return spec_; }
  const ModelOptions& options() const { return options_; }
  const Backbone& backbone() const { return backbone_; }
  // The linear layer of one head; InputError if there is no such head.
  torch::nn::Linear head(const std::string& name) const;

  // What rebuilds this model's layers: backbone architecture, options, head layout.
  nlohmann::json architecture() const;

 private:
  Backbone backbone_;
  TaskSpec spec_;
  ModelOptions options_;
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::ModuleDict heads_{nullptr};
};

TORCH_MODULE(MultiTaskModel);

// Probabilities per head: softmax over classes for softmax heads, a sigmoid per tag for
// multi-label heads.
HeadOutputs head_probabilities(const TaskSpec& spec, const HeadOutputs& logits);

}  // namespace garmentnet
