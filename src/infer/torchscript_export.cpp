#include "infer/torchscript_export.h"

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/core/ivalue.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/ir/ir.h>

#include <algorithm>
#include <functional>
#include <numeric>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/version.h"

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

c10::List<std::string> string_list(const std::vector<std::string>& values) {
  c10::List<std::string> list;
  for (const auto& value : values) list.push_back(value);
  return list;
}

c10::List<double> float_list(const std::vector<double>& values) {
  c10::List<double> list;
  for (double value : values) list.push_back(value);
  return list;
}

std::string head_kind_name(HeadKind kind) {
  return kind == HeadKind::Softmax ? "softmax" : "multilabel";
}

// What a user of an exported module needs to know, as JSON (also stored as attributes).
nlohmann::json export_description(const ModelBundle& bundle, const nlohmann::json& document) {
  const TaskSpec& spec = bundle.model->spec();
  nlohmann::json outputs = nlohmann::json::array();
  for (const auto& head : spec.heads) {
    nlohmann::json output = {{"head", head.name},
                             {"kind", head_kind_name(head.kind)},
                             {"values", "probabilities"},
                             {"labels", head.classes}};
    if (head.kind == HeadKind::MultiLabel) output["thresholds"] = bundle.thresholds(head.name);
    outputs.push_back(std::move(output));
  }
  const Preprocessing& pre = bundle.preprocessing;
  return {
      {"format", "garmentnet-torchscript"},
      {"format_version", 1},
      {"garmentnet_version", std::string(kGarmentnetVersion)},
      {"input",
       {{"layout", "NCHW float32, RGB, pixels scaled to [0,1] then (x - mean) / std"},
        {"height", pre.height},
        {"width", pre.width},
        {"preprocessing", pre.to_json()}}},
      {"outputs", outputs},
      {"task_spec", spec.to_json()},
      {"metrics", document.value("metrics", nlohmann::json::object())},
  };
}

}  // namespace

torch::jit::Module trace_model(MultiTaskModel& model, const Preprocessing& pre,
                               int64_t trace_batch) {
  if (model->is_training()) fail("internal error: trace_model needs a model in eval mode");
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

torch::jit::Module optimize_traced_model(const torch::jit::Module& traced,
                                         const GraphOptimizations& optimizations) {
  torch::jit::Module result = traced.clone();
  result.eval();
  if (!optimizations.freeze && !optimizations.optimize_for_inference) return result;
  result = torch::jit::freeze(result);
  if (optimizations.optimize_for_inference) result = torch::jit::optimize_for_inference(result);
  return result;
}

HeadOutputs run_traced_model(torch::jit::Module& module, const TaskSpec& spec,
                             const torch::Tensor& images) {
  const c10::IValue output = module.forward({images});
  const auto& elements = output.toTupleRef().elements();
  if (elements.size() != spec.heads.size())
    fail("internal error: the TorchScript model returned {} outputs for {} heads", elements.size(),
         spec.heads.size());
  HeadOutputs result;
  for (size_t i = 0; i < spec.heads.size(); ++i)
    result[spec.heads[i].name] = elements[i].toTensor();
  return result;
}

double max_abs_difference(const HeadOutputs& a, const HeadOutputs& b) {
  double largest = 0;
  for (const auto& [name, tensor] : a) {
    const auto other = b.find(name);
    if (other == b.end() || other->second.sizes() != tensor.sizes())
      return std::numeric_limits<double>::infinity();
    largest = std::max(largest, (tensor - other->second).abs().max().item<double>());
  }
  return a.size() == b.size() ? largest : std::numeric_limits<double>::infinity();
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
  return count;
}

void export_torchscript(ModelBundle& bundle, const nlohmann::json& model_document,
                        const std::filesystem::path& out) {
  const TaskSpec spec = bundle.model->spec();
  const Preprocessing& pre = bundle.preprocessing;
  bundle.model->eval();
  torch::jit::Module traced = trace_model(bundle.model, pre);
  // Frozen (conv + batch-norm folded) but not optimize_for_inference: its oneDNN operations would
  // tie the file to CPUs, and servers such as Triton may run it on a GPU.
  torch::jit::Module module =
      optimize_traced_model(traced, {.freeze = true, .optimize_for_inference = false});

  // Freezing drops attributes the graph does not use, so the descriptive ones go on afterwards.
  module.register_attribute("training", c10::BoolType::get(), false);
  c10::List<std::string> head_names, head_kinds;
  c10::Dict<std::string, c10::List<std::string>> labels;
  c10::Dict<std::string, c10::List<double>> thresholds;
  for (const auto& head : spec.heads) {
    head_names.push_back(head.name);
    head_kinds.push_back(head_kind_name(head.kind));
    labels.insert(head.name, string_list(head.classes));
    if (head.kind == HeadKind::MultiLabel)
      thresholds.insert(head.name, float_list(bundle.thresholds(head.name)));
  }
  const auto string_list_type = c10::ListType::ofStrings();
  const auto float_list_type = c10::ListType::ofFloats();
  module.register_attribute("head_names", string_list_type, head_names);
  module.register_attribute("head_kinds", string_list_type, head_kinds);
  module.register_attribute(
      "labels", c10::DictType::create(c10::StringType::get(), string_list_type), labels);
  module.register_attribute(
      "thresholds", c10::DictType::create(c10::StringType::get(), float_list_type), thresholds);
  module.register_attribute("input_size", c10::ListType::ofInts(),
                            c10::List<int64_t>({pre.height, pre.width}));
  module.register_attribute("mean", float_list_type,
                            float_list({pre.mean[0], pre.mean[1], pre.mean[2]}));
  module.register_attribute("std", float_list_type,
                            float_list({pre.std[0], pre.std[1], pre.std[2]}));
  module.register_attribute("resize", c10::StringType::get(),
                            pre.resize == ResizeMode::Stretch ? "stretch" : "pad");

  const torch::jit::ExtraFilesMap extra{
      {kExportMetadataFile, export_description(bundle, model_document).dump(2)}};
  write_atomically(out, [&](const std::filesystem::path& temp) {
    try {
      module.save(temp.string(), extra);
    } catch (const c10::Error& error) {
      fail("cannot write the TorchScript model {}: {}", out.string(),
           error.what_without_backtrace());
    }
  });
}

}  // namespace garmentnet
