#include "model/multitask_model.h"

#include <torch/nn/modules/linear.h>

#include "core/error.h"

namespace garmentnet {

nlohmann::json ModelOptions::to_json() const { return {{"dropout", dropout}}; }

ModelOptions ModelOptions::from_json(const nlohmann::json& json) {
  ModelOptions options;
  options.dropout = json.value("dropout", options.dropout);
  return options;
}

MultiTaskModelImpl::MultiTaskModelImpl(Backbone backbone, TaskSpec spec, ModelOptions options)
    : backbone_(register_module("backbone", std::move(backbone))),
      spec_(std::move(spec)),
      options_(options),
      dropout_(register_module("dropout", torch::nn::Dropout(options_.dropout))),
      heads_(register_module("heads", torch::nn::ModuleDict())) {
  if (spec_.heads.empty()) fail("the task spec has no heads; a model needs at least one");
  if (options_.dropout < 0 || options_.dropout >= 1)
    fail("dropout {} is out of range; use a value in [0, 1)", options_.dropout);
  for (const auto& head : spec_.heads) {
    if (head.name.empty() || head.name.find('.') != std::string::npos)
      fail("head name '{}' cannot be used: it must be non-empty and contain no '.'", head.name);
    if (head.num_outputs() == 0) fail("head '{}' has no classes or tags", head.name);
    heads_->update(std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>>{
        {head.name,
         torch::nn::Linear(backbone_->feature_dim(), static_cast<int64_t>(head.num_outputs()))
             .ptr()}});
  }
}

HeadOutputs MultiTaskModelImpl::heads_forward(torch::Tensor features) {
  features = dropout_(features);
  HeadOutputs outputs;
  for (const auto& head : spec_.heads)
    outputs[head.name] = heads_->at<torch::nn::LinearImpl>(head.name).forward(features);
  return outputs;
}

ParameterGroups MultiTaskModelImpl::parameter_groups() {
  return {.backbone = backbone_->trainable_parameters(), .heads = heads_->parameters()};
}

torch::nn::Linear MultiTaskModelImpl::head(const std::string& name) const {
  if (!heads_->contains(name)) fail("the model has no head '{}'", name);
  return torch::nn::Linear(std::dynamic_pointer_cast<torch::nn::LinearImpl>((*heads_)[name]));
}

nlohmann::json MultiTaskModelImpl::architecture() const {
  nlohmann::json heads = nlohmann::json::array();
  for (const auto& head : spec_.heads)
    heads.push_back({{"name", head.name},
                     {"kind", head.kind == HeadKind::Softmax ? "softmax" : "multilabel"},
                     {"outputs", head.num_outputs()}});
  return {{"backbone", backbone_->architecture()},
          {"feature_dim", backbone_->feature_dim()},
          {"options", options_.to_json()},
          {"heads", heads}};
}

HeadOutputs head_probabilities(const TaskSpec& spec, const HeadOutputs& logits) {
  HeadOutputs probabilities;
  for (const auto& head : spec.heads) {
    const torch::Tensor& head_logits = logits.at(head.name);
    probabilities[head.name] =
        head.kind == HeadKind::Softmax ? head_logits.softmax(1) : head_logits.sigmoid();
  }
  return probabilities;
}

}  // namespace garmentnet
