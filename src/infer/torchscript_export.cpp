#include "infer/torchscript_export.h"

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/core/ivalue.h>
#include <fmt/format.h>

#include <algorithm>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/version.h"
#include "model/quantized_backbone.h"

namespace garmentnet {
namespace {

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

// An int8 model as TorchScript source: the int8 backbone's quantized operators, then the fp32 heads
// (dropout is a no-op at inference). Tracing cannot record it: the int8 convolutions are calls on
// prepacked weights, which the tracer does not see.
torch::jit::Module int8_module(MultiTaskModel& model) {
  const TaskSpec& spec = model->spec();
  torch::jit::Module module{c10::QualifiedName("__torch__.garmentnet.Int8MultiTaskModel")};
  define_int8_torchscript(model->backbone(), module, "features");
  std::string types, results, code;
  for (size_t i = 0; i < spec.heads.size(); ++i) {
    const HeadSpec& head = spec.heads[i];
    const torch::nn::Linear linear = model->head(head.name);
    module.register_parameter(fmt::format("head{}_weight", i), linear->weight.detach(), false);
    module.register_parameter(fmt::format("head{}_bias", i), linear->bias.detach(), false);
    code += fmt::format(
        "    p{0} = torch.{1}(torch.linear(features, self.head{0}_weight, self.head{0}_bias){2})\n",
        i, head.kind == HeadKind::Softmax ? "softmax" : "sigmoid",
        head.kind == HeadKind::Softmax ? ", 1" : "");
    types += std::string(i ? ", " : "") + "Tensor";
    results += fmt::format("p{}, ", i);
  }
  module.define(fmt::format(
      "def forward(self, images: Tensor) -> Tuple[{}]:\n    features = self.features(images)\n"
      "{}    return ({})\n",
      types, code, results));
  return module;
}

}  // namespace

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
    fail_internal("the TorchScript model returned {} outputs for {} heads", elements.size(),
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

void export_torchscript(ModelBundle& bundle, const nlohmann::json& model_document,
                        const std::filesystem::path& out) {
  const TaskSpec spec = bundle.model->spec();
  const Preprocessing& pre = bundle.preprocessing;
  bundle.model->eval();
  // fp32: frozen (conv + batch-norm folded) but not optimize_for_inference: its oneDNN operations
  // would tie the file to CPUs, and servers such as Triton may run it on a GPU. An int8 model is
  // CPU-only anyway (oneDNN's quantized engine).
  torch::jit::Module module =
      is_quantized(bundle.model->backbone())
          ? int8_module(bundle.model)
          : optimize_traced_model(trace_model(bundle.model, pre),
                                  {.freeze = true, .optimize_for_inference = false});

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
  module.register_attribute("resize", c10::StringType::get(), std::string(name_of(pre.resize)));
  module.register_attribute("shrink", c10::StringType::get(), std::string(name_of(pre.shrink)));

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
