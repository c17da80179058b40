#include "model/losses.h"

#include <fmt/ranges.h>
#include <torch/nn/functional/loss.h>

#include "core/error.h"

namespace garmentnet {
namespace {

namespace F = torch::nn::functional;

struct HeadLoss {
  torch::Tensor loss;
  int64_t labelled = 0;
};

// A zero that stays connected to the graph, so backward() works even when nothing is labelled.
torch::Tensor connected_zero(const torch::Tensor& logits) { return logits.sum() * 0; }

HeadLoss softmax_loss(const HeadSpec& head, const torch::Tensor& logits,
                      const torch::Tensor& target, const HeadLossOptions& options) {
  if (target.dim() != 1 || target.size(0) != logits.size(0))
    fail("targets of head '{}' have shape [{}]; expected [{}] (one class index per row)", head.name,
         fmt::join(target.sizes(), ", "), logits.size(0));
  const torch::Tensor classes = target.to(torch::kLong);
  const torch::Tensor labelled = classes >= 0;
  const int64_t count = labelled.sum().item<int64_t>();
  if (count == 0) return {connected_zero(logits), 0};
  const torch::Tensor kept_classes = classes.index({labelled});
  if (kept_classes.max().item<int64_t>() >= logits.size(1))
    fail("head '{}' has {} classes but a target is {}", head.name, logits.size(1),
         kept_classes.max().item<int64_t>());
  auto functional_options = F::CrossEntropyFuncOptions().label_smoothing(options.label_smoothing);
  if (options.class_weights.defined())
    functional_options.weight(options.class_weights.to(logits.dtype()));
  return {F::cross_entropy(logits.index({labelled}), kept_classes, functional_options), count};
}

HeadLoss multilabel_loss(const HeadSpec& head, const torch::Tensor& logits,
                         const torch::Tensor& target, const HeadLossOptions& options) {
  if (target.sizes() != logits.sizes())
    fail("targets of head '{}' have shape [{}]; expected [{}] (0/1/-1 per row and tag)", head.name,
         fmt::join(target.sizes(), ", "), fmt::join(logits.sizes(), ", "));
  const torch::Tensor values = target.to(logits.dtype());
  const torch::Tensor labelled = (values >= 0).to(logits.dtype());
  const int64_t count = static_cast<int64_t>(labelled.sum().item<double>());
  if (count == 0) return {connected_zero(logits), 0};
  auto functional_options = F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone);
  if (options.pos_weight.defined())
    functional_options.pos_weight(options.pos_weight.to(logits.dtype()));
  const torch::Tensor per_entry =
      F::binary_cross_entropy_with_logits(logits, values.clamp_min(0), functional_options);
  return {(per_entry * labelled).sum() / static_cast<double>(count), count};
}

}  // namespace

LossResult multitask_loss(const TaskSpec& spec, const HeadOutputs& logits,
                          const HeadTargets& targets, const LossOptions& options) {
  LossResult result;
  const HeadLossOptions defaults;
  for (const auto& head : spec.heads) {
    const auto head_logits = logits.find(head.name);
    const auto head_targets = targets.find(head.name);
    if (head_logits == logits.end()) fail("no outputs for head '{}'", head.name);
    if (head_targets == targets.end()) fail("no targets for head '{}'", head.name);
    const auto head_options = options.find(head.name);
    const HeadLossOptions& chosen = head_options == options.end() ? defaults : head_options->second;
    const HeadLoss loss =
        head.kind == HeadKind::Softmax
            ? softmax_loss(head, head_logits->second, head_targets->second, chosen)
            : multilabel_loss(head, head_logits->second, head_targets->second, chosen);
    const torch::Tensor weighted = loss.loss * head.loss_weight;
    result.total = result.total.defined() ? result.total + weighted : weighted;
    result.per_head[head.name] = loss.loss.item<double>();
    result.labelled[head.name] = loss.labelled;
  }
  return result;
}

}  // namespace garmentnet
