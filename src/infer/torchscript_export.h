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

namespace garmentnet {

// Traces `model` (which must be in eval mode) on a batch of `trace_batch` random images of
// `pre`'s size. The result's forward takes normalised float images [N, 3, H, W] (any N) and
// returns a tuple with one probability tensor per head, in the task spec's head order: softmax
// over the classes for softmax heads [N, classes], one sigmoid per tag for multi-label heads
// [N, tags]. The model's parameters stop requiring gradients (tracing bakes them in as
// constants). InputError if the model cannot be traced.
torch::jit::Module trace_model(MultiTaskModel& model, const Preprocessing& pre,
                               int64_t trace_batch = 2);

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

// Multiply-accumulate operations per image of a traced model (trace_model, before optimisation),
// counted from the shapes the tracer recorded: convolutions (output elements × input channels
// per group × kernel area), linear layers and matrix products (output elements × inner size).
// Element-wise work (batch norm, activations, pooling) is left out; it is small next to these.
struct MacCount {
  int64_t macs_per_image = 0;  // sum over the counted operations, divided by the traced batch
  int64_t counted_ops = 0;     // convolution/linear/matmul nodes counted
  int64_t skipped_ops = 0;     // such nodes whose shapes the trace did not record (not counted)
};
MacCount count_macs(const torch::jit::Module& traced, int64_t trace_batch);

// Writes `bundle`'s model as a standalone TorchScript file (see docs/export.md): the frozen
// traced graph (portable ATen operations, no oneDNN-specific ones), with attributes head_names,
// head_kinds, labels, thresholds, input_size, mean, std and resize, and an extra file
// `garmentnet.json` holding the same and the model file's task spec. Written atomically.
void export_torchscript(ModelBundle& bundle, const nlohmann::json& model_document,
                        const std::filesystem::path& out);

// Name of the extra file inside an exported module that describes it.
inline constexpr const char* kExportMetadataFile = "garmentnet.json";

}  // namespace garmentnet
