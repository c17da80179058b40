// The multi-task model as a TorchScript graph, and the work that graph does per image. Tracing
// lives with the model because both inference (the Predictor's fast path, export, `bench`) and
// training (the model card's FLOPs) need it.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <cstdint>

#include "data/image.h"
#include "model/multitask_model.h"

namespace garmentnet {

// Traces `model` (which must be in eval mode) on a batch of `trace_batch` random images of
// `pre`'s size. The result's forward takes normalised float images [N, 3, H, W] (any N) and
// returns a tuple with one probability tensor per head, in the task spec's head order: softmax
// over the classes for softmax heads [N, classes], one sigmoid per tag for multi-label heads
// [N, tags]. The model's parameters stop requiring gradients (tracing bakes them in as
// constants). InputError if the model cannot be traced.
torch::jit::Module trace_model(MultiTaskModel& model, const Preprocessing& pre,
                               int64_t trace_batch = 2);

// Multiply-accumulate operations per image of a traced model (trace_model, before optimisation),
// counted from the shapes the tracer recorded: convolutions (output elements × input channels
// per group × kernel area), linear layers and matrix products (output elements × inner size).
// Element-wise work (batch norm, activations, pooling) is left out; it is small next to these.
// Warns when some such operations had no recorded shapes (the count is then too low).
struct MacCount {
  int64_t macs_per_image = 0;  // sum over the counted operations, divided by the traced batch
  int64_t counted_ops = 0;     // convolution/linear/matmul nodes counted
  int64_t skipped_ops = 0;     // such nodes whose shapes the trace did not record (not counted)
};
MacCount count_macs(const torch::jit::Module& traced, int64_t trace_batch);

}  // namespace garmentnet
