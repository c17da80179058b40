// TorchScript versions of a trained multi-task model. The native C++ model is traced into a
// TorchScript graph (weights become constants) whose forward(images) returns the probabilities of
// every head. Two uses:
//   - fast inference: the graph is frozen and optimised for the CPU (conv + batch-norm folding,
//     oneDNN convolutions), which the Predictor runs instead of the eager model;
//   - export: `garmentnet export --format torchscript` writes the frozen graph with the class
//     names, thresholds and preprocessing attached, for TorchServe, Triton and Python
//     (docs/export.md).
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "model/model_file.h"
#include "model/traced_model.h"

namespace garmentnet {

// Which graph optimisations to apply to a traced model.
struct GraphOptimizations {
  bool freeze = true;  // freeze the graph: fold conv + batch-norm, constant-fold, drop dropout
  bool optimize_for_inference = true;  // then torch::jit::optimize_for_inference (oneDNN layouts,
                                       // conv + add/relu fusion); implies freeze
};

// A frozen and/or CPU-optimised copy of a traced model (trace_model); same inputs and outputs.
torch::jit::Module optimize_traced_model(const torch::jit::Module& traced,
                                         const GraphOptimizations& optimizations);

// Runs a traced (and possibly optimised) model: head name → probabilities.
HeadOutputs run_traced_model(torch::jit::Module& module, const TaskSpec& spec,
                             const torch::Tensor& images);

// Largest absolute difference between two sets of head outputs with the same heads and shapes.
double max_abs_difference(const HeadOutputs& a, const HeadOutputs& b);

// Writes `bundle`'s model as a standalone TorchScript file (see docs/export.md): the frozen
// traced graph (portable ATen operations, no oneDNN-specific ones), with attributes head_names,
// head_kinds, labels, thresholds, input_size, mean, std and resize, and an extra file
// `garmentnet.json` holding the same and the model file's task spec. Written atomically.
void export_torchscript(ModelBundle& bundle, const nlohmann::json& model_document,
                        const std::filesystem::path& out);

// Name of the extra file inside an exported module that describes it.
inline constexpr const char* kExportMetadataFile = "garmentnet.json";

}  // namespace garmentnet
