// `garmentnet evaluate`: scores a model on labelled data (running it through the same streaming
// path as `predict`), or scores an existing predictions file against the labels so any system's
// output can be compared on equal terms. docs/evaluate.md lists every number and file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/task_spec.h"
#include "eval/metrics.h"
#include "infer/batch_predict.h"
#include "infer/benchmark.h"

namespace garmentnet {

struct EvaluateOptions {
  std::filesystem::path model;        // model file; optional when scoring `predictions`
  std::filesystem::path task;         // scoring `predictions` without a model: task spec JSON
                                      // (empty: the garment task)
  std::filesystem::path labels;       // labelled table (.parquet or .csv), read with the task spec
  std::filesystem::path images_dir;   // images; required to run the model, optional when scoring
                                      // `predictions` (then only used for the mistakes grid)
  std::filesystem::path predictions;  // non-empty: score this predictions file, run no model
  std::filesystem::path out_dir;      // evaluation.json, report.html, plots/ (and, running the
                                      // model, predictions.parquet)
  int threads = 0;                    // model threads (0: all cores); decoding uses stream's
  StreamOptions stream;               // batching, decoding, failure handling
  bool report = true;                 // write report.html and its plots
  size_t worst_mistakes = 24;         // wrong top-1 categories shown in the report's grid
  double bench_seconds = 0.5;         // running the model: time per speed measurement of the
                                      // benchmark module (as `bench --quick`); 0 = none
};

// Size and shape of the model that was scored.
struct ModelFacts {
  std::filesystem::path path;
  uintmax_t file_bytes = 0;  // model file size on disk
  int64_t parameters = 0;    // number of weights
  std::string backbone;      // architecture description from the model file
  int input_width = 0;
  int input_height = 0;
};

// A labelled row whose most likely category is wrong.
struct Mistake {
  std::string id;
  std::filesystem::path image;
  std::string true_class;
  std::string predicted_class;
  double probability = -1;  // of the predicted class; -1 when scoring a predictions file
};

struct EvaluationResult {
  bool ran_model = false;              // false: a predictions file was scored
  TaskSpec spec;                       // the task scored
  std::filesystem::path labels;        // the labelled table
  std::filesystem::path predictions;   // the scored predictions file (when not running a model)
  std::filesystem::path images_dir;    // the images (may be empty when scoring a predictions file)
  size_t rows = 0;                     // labelled rows (exact duplicates dropped)
  size_t scored = 0;                   // rows with a prediction: the metrics are over these
  std::vector<ImageFailure> failures;  // rows without a prediction, left out of every metric
  std::map<std::string, SoftmaxMetrics> softmax;        // per softmax head scored
  std::map<std::string, MultiLabelMetrics> multilabel;  // per multi-label head scored
  // Running the model: precision-recall curves per multi-label head (for the report).
  std::map<std::string, std::vector<PrecisionRecallCurve>> curves;
  std::optional<ModelFacts> model;      // when a model file was given
  double seconds = 0;                   // running the model: wall time of decode + model
  double images_per_second = 0;         // running the model: scored images / seconds
  int batch_size = 0;                   // running the model: images per forward pass
  int threads = 0;                      // running the model: threads used
  std::vector<Mistake> worst_mistakes;  // category head: most confident wrong top-1 first
                                        // (file order when scoring a predictions file)
  // Running the model with bench_seconds > 0: the figures `garmentnet bench --quick` gives,
  // decoding the evaluated images.
  std::optional<BenchmarkResult> benchmark;

  // Everything above as written to evaluation.json (docs/evaluate.md).
  nlohmann::json to_json() const;
};

// Scores as `options` say and writes options.out_dir. Bad input (missing columns, ids in only
// one of labels and predictions, values out of range, not a model) is an InputError naming the
// file, row and column. Rows whose image cannot be read are listed in `failures` (an InputError
// with stream.stop_at_first_failure).
EvaluationResult evaluate(const EvaluateOptions& options);

// The terminal summary: headline numbers, per-class and per-tag tables, speed and model size.
std::string evaluation_summary_text(const EvaluationResult& result);

// report.html with a confusion-matrix heatmap, precision-recall curves, per-tag F1 bars and a
// grid of the worst mistakes; plots go to out_dir/plots.
void write_evaluation_report(const EvaluationResult& result, const std::filesystem::path& out_dir);

}  // namespace garmentnet
