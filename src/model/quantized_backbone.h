// Int8 backbones: post-training static quantization of a native backbone, in C++ through the
// quantized operators (oneDNN engine). The fp32 backbone is traced once; its graph becomes a short
// program of fused steps (convolution with its batch norm folded in and its ReLU/ReLU6 fused,
// add(+ReLU), max pool, global average pool) that runs either in fp32 (for calibration, and to
// check the folding) or in int8: weights quantized per output channel (symmetric qint8),
// activations per tensor (quint8) with ranges calibrated on sample images. The pooled features
// come out as floats, so the heads stay fp32. Route and measurements: docs/quantization.md.
#pragma once

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "model/backbone.h"

namespace torch::jit {
struct Module;
}

namespace garmentnet {

// How an activation's int8 range is chosen from the calibration images.
enum class RangeObserver {
  MinMax,      // the smallest and largest value seen
  Percentile,  // the 0.01% and 99.99% quantiles, averaged over the calibration batches
};
std::string_view name_of(RangeObserver observer);

// What calibration measured: per activation of the program, both observers' ranges, so several
// int8 backbones can be built from one calibration pass and compared.
class Calibration {
 public:
  // Traces `backbone` (a native one, in eval mode) into its program; InputError naming the
  // backbone for an imported (TorchScript) or already quantized backbone, or an operation the
  // program cannot express.
  explicit Calibration(const Backbone& backbone, int height, int width);
  ~Calibration();
  Calibration(Calibration&&) noexcept;

  // Runs the fp32 program on one batch of normalised images [N, 3, H, W], recording ranges.
  void observe(const at::Tensor& images);
  // Features of the fp32 program (batch norm folded), to check it against the backbone.
  at::Tensor fp32_features(const at::Tensor& images) const;
  // The int8 backbone with ranges from `observer` (at least one batch must have been observed).
  Backbone quantize(RangeObserver observer) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `images` (float) quantized to quint8 with the same values as at::quantize_per_tensor (round half
// to even of x / scale, plus the zero point, clamped to 0..255), on all of LibTorch's threads:
// at::quantize_per_tensor runs on one thread, one element at a time, and took a quarter of
// mobilenet_v2's int8 forward pass at batch 32. The first step of every int8 backbone.
at::Tensor quantize_images(const at::Tensor& images, double scale, int64_t zero_point);

// Whether a backbone runs in int8 (built by Calibration::quantize or read from a model file).
bool is_quantized(const Backbone& backbone);

// Packs an int8 backbone's weights for oneDNN once its weights are read (torch::load), before its
// first forward; Calibration::quantize returns backbones already prepared. A step that oneDNN
// fails at on this CPU is routed around at its first failure (weights packed per input shape, or
// the step in fp32 with one warning naming it); GARMENTNET_TEST_FAIL_INT8_STEP=<step index> injects
// such a failure, for tests.
void prepare_int8_backbone(const Backbone& backbone);

// The steps of an int8 backbone routed around so far in this process, each named with how:
// "step 39 (conv 1x1 96→576): weights packed per input shape" or "...: runs in fp32".
std::vector<std::string> int8_steps_routed_around(const Backbone& backbone);

// Adds an int8 backbone to a TorchScript module: its prepacked weights as attributes and a method
// `method(self, images: Tensor) -> Tensor` giving the pooled features through the same quantized
// operators as the backbone's forward (so the same numbers), for `export --format torchscript`.
void define_int8_torchscript(const Backbone& backbone, torch::jit::Module& module,
                             const std::string& method);

// Rebuilds an int8 backbone from its architecture() JSON ({"kind": "int8", ...}); its weights are
// read into it afterwards (torch::load). `source` names the file in errors.
Backbone quantized_backbone_from_architecture(const nlohmann::json& architecture,
                                              const std::string& source);

}  // namespace garmentnet
