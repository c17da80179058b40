// Evaluation metrics for the two kinds of heads, computed from plain arrays (no torch), so the
// trainer, `evaluate` and `serve` all score predictions with the same code. docs/metrics.md
// defines every number precisely.
//
// The structs are the metrics; JSON is only how they are written to files and read back
// (`to_json` / `from_json`, which round-trip exactly).
//
// Layout conventions: probabilities are row-major [rows × columns] floats; labels are int64 with
// -1 meaning "missing", which every metric ignores (a missing label is neither right nor wrong).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <vector>

namespace garmentnet {

// The label value that marks a missing label.
inline constexpr int64_t kMissingLabel = -1;

// The default decision threshold of a tag before tuning.
inline constexpr double kDefaultTagThreshold = 0.5;

// ---- Decisions --------------------------------------------------------------------------------

// The indices of the most and second most probable class of each row of `probabilities`
// ([rows × classes]). Equal probabilities rank the lower class index first; NaN ranks below
// every number. With a single class the second index is -1.
std::vector<std::array<int64_t, 2>> top2_classes(std::span<const float> probabilities,
                                                 std::size_t classes);

// Tag decisions (0/1, [rows × tags]): a tag is on when its probability >= its threshold.
std::vector<int64_t> decide_tags(std::span<const float> probabilities,
                                 std::span<const double> thresholds);

// ---- Binary scores ----------------------------------------------------------------------------

// Precision, recall and F1 of one binary decision, from its counts. A ratio whose denominator is
// zero is 0 (no predicted positives → precision 0; no actual positives → recall 0).
struct BinaryScores {
  int64_t true_positives = 0;
  int64_t false_positives = 0;
  int64_t false_negatives = 0;
  double precision = 0;
  double recall = 0;
  double f1 = 0;

  nlohmann::json to_json() const;
  static BinaryScores from_json(const nlohmann::json& json);
};

BinaryScores binary_scores(int64_t true_positives, int64_t false_positives,
                           int64_t false_negatives);

// ---- Softmax head -----------------------------------------------------------------------------

struct ClassMetrics {
  std::string name;
  BinaryScores scores;  // the class against all others, on the top-1 prediction
  int64_t support = 0;  // labelled rows whose true class is this one

  nlohmann::json to_json() const;
  static ClassMetrics from_json(const nlohmann::json& json);
};

struct SoftmaxMetrics {
  int64_t count = 0;    // rows with a label (the denominator of the accuracies)
  int64_t missing = 0;  // rows without a label, ignored
  double top1_accuracy = 0;
  double top2_accuracy = 0;  // true class among the two most probable
  // confusion[true class][predicted top-1 class], counts of labelled rows.
  std::vector<std::vector<int64_t>> confusion;
  std::vector<ClassMetrics> classes;
  // Mean F1 over the classes that occur among the labels or the top-1 predictions (F1 is
  // undefined for the others).
  double macro_f1 = 0;

  nlohmann::json to_json() const;
  static SoftmaxMetrics from_json(const nlohmann::json& json);
};

// Scores a softmax head. `probabilities` is [rows × class_names.size()], `labels` has one class
// index (or -1) per row. A label outside [0, classes) is an InputError naming the row.
SoftmaxMetrics softmax_metrics(std::span<const float> probabilities,
                               std::span<const int64_t> labels,
                               const std::vector<std::string>& class_names);

// ---- Multi-label head -------------------------------------------------------------------------

// One point of a precision-recall curve: the scores when every item with probability >= threshold
// is called positive.
struct PrecisionRecallPoint {
  double threshold = 0;
  double precision = 0;
  double recall = 0;
};

// The curve of one tag: one point per distinct probability among the labelled rows, in order of
// decreasing threshold (so increasing recall). Empty when the tag has no positive label.
struct PrecisionRecallCurve {
  std::string name;
  std::vector<PrecisionRecallPoint> points;
};

struct TagMetrics {
  std::string name;
  int64_t count = 0;      // rows with a label for this tag
  int64_t positives = 0;  // of those, rows labelled 1
  double threshold = kDefaultTagThreshold;
  BinaryScores at_threshold;     // decisions at `threshold`
  BinaryScores at_default;       // decisions at 0.5
  double average_precision = 0;  // sklearn's average_precision_score; 0 without positives
  bool has_positives() const { return positives > 0; }

  nlohmann::json to_json() const;
  static TagMetrics from_json(const nlohmann::json& json);
};

struct MultiLabelMetrics {
  std::vector<TagMetrics> tags;
  // Mean F1 over the tags with an actual or predicted positive (F1 is undefined for the others).
  double macro_f1 = 0;                // of at_threshold.f1
  double macro_f1_at_default = 0;     // of at_default.f1
  double mean_average_precision = 0;  // mean AP over the tags that have positives

  nlohmann::json to_json() const;
  static MultiLabelMetrics from_json(const nlohmann::json& json);
};

// Scores a multi-label head. `probabilities` and `labels` are [rows × tag_names.size()]; labels
// are 0, 1 or -1. `thresholds` has one value per tag (pass the tuned ones, or 0.5 each).
// A label other than 0/1/-1 is an InputError naming the row and tag.
MultiLabelMetrics multilabel_metrics(std::span<const float> probabilities,
                                     std::span<const int64_t> labels,
                                     const std::vector<std::string>& tag_names,
                                     std::span<const double> thresholds);

// The precision-recall curve of every tag (for plots).
std::vector<PrecisionRecallCurve> precision_recall_curves(
    std::span<const float> probabilities, std::span<const int64_t> labels,
    const std::vector<std::string>& tag_names);

// The threshold chosen for one tag by `tune_tag_thresholds`.
struct TunedThreshold {
  std::string name;
  double threshold = kDefaultTagThreshold;
  double f1 = 0;       // F1 on the tuning data at `threshold`
  bool tuned = false;  // false: the tag had no positive label, so 0.5 was kept and f1 is 0

  nlohmann::json to_json() const;
};

// For each tag, the threshold that maximises F1 on the given (validation) data. Candidates are
// the distinct probabilities of the labelled rows; among equal best F1 the lowest candidate wins
// (more recall for the same F1). The threshold returned lies halfway between the winning
// probability and the next lower distinct probability (or half the winning probability when it is
// the lowest), so it makes exactly the winning decisions on this data with the widest margin.
std::vector<TunedThreshold> tune_tag_thresholds(std::span<const float> probabilities,
                                                std::span<const int64_t> labels,
                                                const std::vector<std::string>& tag_names);

}  // namespace garmentnet
