#include "model/traced_model.h"

#include <spdlog/spdlog.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/ir/ir.h>

#include <functional>
#include <numeric>

#include "core/error.h"

namespace garmentnet {
namespace {

constexpr const char* kModuleClass = "__torch__.garmentnet.MultiTaskModel";

// Product of the sizes in [begin, end) of a shape the tracer recorded.
int64_t product(const std::vector<int64_t>& sizes, size_t begin, size_t end) {
  return std::accumulate(sizes.begin() + static_cast<long>(begin),
                         sizes.begin() + static_cast<long>(end), int64_t{1}, std::multiplies<>());
}

std::optional<std::vector<int64_t>> shape_of(const torch::jit::Value* value) {
  const auto tensor_type = value->type()->cast<c10::TensorType>();
  if (!tensor_type) return std::nullopt;
  const auto sizes = tensor_type->sizes().concrete_sizes();
  if (!sizes) return std::nullopt;
  return *sizes;
}

// MACs of one convolution / linear / matmul node, or nullopt if its shapes are unknown or it is
// not such a node. Convolution: output elements × (input channels per group × kernel area), which
// is weight.size(1) × kernel area. Linear (weight [out, in]): output elements × in. addmm / mm /
// matmul: output elements × the inner dimension of the first matrix operand.
std::optional<int64_t> node_macs(const torch::jit::Node* node, bool& is_counted_kind) {
  const std::string kind = node->kind().toQualString();
  is_counted_kind = true;
  if (kind == "aten::conv2d" || kind == "aten::_convolution" || kind == "aten::convolution" ||
      kind == "aten::conv1d" || kind == "aten::conv3d") {
    const auto weight = shape_of(node->input(1));
    const auto output = shape_of(node->output());
    if (!weight || !output || weight->size() < 2) return std::nullopt;
    return product(*output, 0, output->size()) * product(*weight, 1, weight->size());
  }
  if (kind == "aten::linear") {
    const auto weight = shape_of(node->input(1));
    const auto output = shape_of(node->output());
    if (!weight || !output || weight->size() != 2) return std::nullopt;
    return product(*output, 0, output->size()) * (*weight)[1];
  }
  if (kind == "aten::addmm" || kind == "aten::mm" || kind == "aten::matmul" ||
      kind == "aten::bmm") {
    const auto first = shape_of(node->input(kind == "aten::addmm" ? 1 : 0));
    const auto output = shape_of(node->output());
    if (!first || !output || first->empty()) return std::nullopt;
    return product(*output, 0, output->size()) * first->back();
  }
  is_counted_kind = false;
  return std::nullopt;
}

}  // namespace

torch::jit::Module trace_model(MultiTaskModel& model, const Preprocessing& pre,
                               int64_t trace_batch) {
  if (model->is_training()) fail_internal("trace_model needs a model in eval mode");
  // Tracing turns every tensor it meets that is not an input into a graph constant, and refuses
  // tensors that require gradients.
  for (auto& parameter : model->parameters()) parameter.requires_grad_(false);
  const TaskSpec spec = model->spec();
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(/*seed_val=*/1);
  const torch::Tensor example =
      at::randn({trace_batch, 3, pre.height, pre.width}, generator, torch::kFloat);
  auto probabilities_tuple = [&](torch::jit::Stack inputs) -> torch::jit::Stack {
    const HeadOutputs probabilities =
        head_probabilities(spec, model->forward(inputs.at(0).toTensor()));
    std::vector<c10::IValue> outputs;
    for (const auto& head : spec.heads) outputs.emplace_back(probabilities.at(head.name));
    return {c10::ivalue::Tuple::create(std::move(outputs))};
  };
  std::shared_ptr<torch::jit::Graph> graph;
  try {
    graph = torch::jit::tracer::trace({example}, probabilities_tuple,
                                      [](const torch::autograd::Variable&) { return ""; })
                .first->graph;
  } catch (const c10::Error& error) {
    fail("cannot trace the model into TorchScript: {}", error.what_without_backtrace());
  }

  torch::jit::Module module{c10::QualifiedName(kModuleClass)};
  // TorchServe and Python call .eval() on what they load, which needs this attribute.
  module.register_attribute("training", c10::BoolType::get(), false);
  graph->insertInput(0, "self")->setType(module._ivalue()->type());
  graph->inputs().at(1)->setDebugName("images");
  auto* forward = module._ivalue()->compilation_unit()->create_function(
      c10::QualifiedName(*module.type()->name(), "forward"), graph);
  module.type()->addMethod(forward);
  return module;
}

MacCount count_macs(const torch::jit::Module& traced, int64_t trace_batch) {
  MacCount count;
  int64_t total = 0;
  const auto graph = traced.get_method("forward").graph();
  // Tracing inlines everything into one block, but walk nested blocks in case a TorchScript
  // backbone left control flow behind.
  std::function<void(const torch::jit::Block*)> visit = [&](const torch::jit::Block* block) {
    for (const torch::jit::Node* node : block->nodes()) {
      bool is_counted_kind = false;
      const auto macs = node_macs(node, is_counted_kind);
      if (macs) {
        total += *macs;
        ++count.counted_ops;
      } else if (is_counted_kind) {
        ++count.skipped_ops;
      }
      for (const torch::jit::Block* inner : node->blocks()) visit(inner);
    }
  };
  visit(graph->block());
  count.macs_per_image = trace_batch > 0 ? total / trace_batch : 0;
  if (count.skipped_ops > 0)
    spdlog::warn("{} convolution/linear operations had no recorded shapes; FLOPs are undercounted",
                 count.skipped_ops);
  return count;
}

}  // namespace garmentnet
