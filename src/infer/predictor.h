// Runs a trained model on images: the one inference path shared by `predict`, `evaluate`,
// `bench` and `serve`, so a model answers identically everywhere. The header is torch-free so
// callers (the HTTP server, the CLI) compile quickly.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/task_spec.h"

namespace garmentnet {

// A forward pass uses LibTorch's intra-op threads: a process-wide setting, made by the command
// (use_model_threads), never by a Predictor.
struct PredictorOptions {
  // Run a frozen TorchScript graph of the model optimised for the CPU (conv + batch-norm folding,
  // oneDNN) instead of the eager model: about 2x faster (docs/benchmarks.md). It is checked against
  // the eager model when loading; if it cannot be built or disagrees, a warning is logged and
  // the eager model is used.
  bool optimize = true;
  // Largest probability difference from the eager model accepted by that check. A negative value
  // rejects every graph (forces the eager fallback; for tests).
  double optimized_tolerance = 1e-4;
};

// Probabilities per head name: row-major [rows × head outputs] (softmax over classes for
// softmax heads, one sigmoid per tag for multi-label heads).
using HeadProbabilities = std::map<std::string, std::vector<float>>;

class Predictor {
 public:
  // Loads a model file; InputError naming the file if it is not a usable model.
  explicit Predictor(const std::filesystem::path& model_file, const PredictorOptions& options = {});
  ~Predictor();
  Predictor(const Predictor&) = delete;
  Predictor& operator=(const Predictor&) = delete;

  const TaskSpec& spec() const;
  const Preprocessing& preprocessing() const;
  // Tuned thresholds of a multi-label head (0.5 each where none were tuned).
  const std::vector<double>& thresholds(const std::string& head) const;
  // The model file's JSON document: metrics, metadata, architecture.
  const nlohmann::json& document() const;
  const std::filesystem::path& path() const;
  // Number of weights (trainable or not) of the loaded model (all models of an ensemble), for
  // reports.
  int64_t parameter_count() const;

  // Probabilities for images already resized to the model input (resize_for_model); an ensemble
  // file's are the mean of its models'. Thread-safe:
  // concurrent calls run one after another.
  HeadProbabilities predict(const std::vector<cv::Mat>& resized) const;

  // Whether predict runs the optimised TorchScript graph (of every model of an ensemble; false: the
  // eager model, because options.optimize was off, the graph was rejected at load, or the model is
  // int8, which runs its fused int8 operators directly).
  bool optimized() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace garmentnet
