#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"

namespace garmentnet {
namespace {

using nlohmann::json;

double ratio(int64_t numerator, int64_t denominator) {
  return denominator == 0 ? 0.0 : static_cast<double>(numerator) / static_cast<double>(denominator);
}

std::size_t row_count(std::span<const float> probabilities, std::size_t columns,
                      std::string_view what) {
  if (columns == 0) fail("{}: there must be at least one column", what);
  if (probabilities.size() % columns != 0) {
    fail("{}: {} probabilities do not make whole rows of {} columns", what, probabilities.size(),
         columns);
  }
  return probabilities.size() / columns;
}

// Probability ranking used by top-2: a beats b when it is a number larger than b, or b is NaN.
bool ranks_above(float a, float b) { return !std::isnan(a) && (std::isnan(b) || a > b); }

// The labelled (probability, label) pairs of one tag column, checked.
struct ScoredLabel {
  float probability;
  bool positive;
};

std::vector<ScoredLabel> tag_column(std::span<const float> probabilities,
                                    std::span<const int64_t> labels, std::size_t tags,
                                    std::size_t tag, std::string_view tag_name) {
  const std::size_t rows = probabilities.size() / tags;
  std::vector<ScoredLabel> column;
  column.reserve(rows);
  for (std::size_t row = 0; row < rows; ++row) {
    const int64_t label = labels[row * tags + tag];
    if (label == kMissingLabel) continue;
    if (label != 0 && label != 1) {
      fail("multi-label metrics: row {} tag '{}' has label {}; tag labels must be 0, 1 or -1", row,
           tag_name, label);
    }
    const float probability = probabilities[row * tags + tag];
    if (std::isnan(probability)) {
      fail("multi-label metrics: row {} tag '{}' has a NaN probability (the model diverged?)", row,
           tag_name);
    }
    column.push_back({probability, label == 1});
  }
  return column;
}

// Cumulative counts at each distinct threshold, highest first: calling positive every item with
// probability >= threshold gives `true_positives` and `false_positives`.
struct ThresholdCounts {
  double threshold;
  int64_t true_positives;
  int64_t false_positives;
};

std::vector<ThresholdCounts> counts_by_threshold(std::vector<ScoredLabel> column) {
  std::sort(column.begin(), column.end(), [](const ScoredLabel& a, const ScoredLabel& b) {
    return a.probability > b.probability;
  });
  std::vector<ThresholdCounts> counts;
  int64_t true_positives = 0;
  int64_t false_positives = 0;
  for (std::size_t i = 0; i < column.size(); ++i) {
    (column[i].positive ? true_positives : false_positives) += 1;
    const bool last_of_its_value =
        i + 1 == column.size() || column[i + 1].probability != column[i].probability;
    if (last_of_its_value) {
      counts.push_back({column[i].probability, true_positives, false_positives});
    }
  }
  return counts;
}

int64_t count_positives(const std::vector<ScoredLabel>& column) {
  return std::count_if(column.begin(), column.end(),
                       [](const ScoredLabel& item) { return item.positive; });
}

// Mean F1 over the entries where F1 is defined, i.e. that have an actual or a predicted positive
// (TP + FP + FN > 0); 0 when there is none.
double macro_f1_of(const std::vector<const BinaryScores*>& entries) {
  double sum = 0;
  int defined = 0;
  for (const BinaryScores* scores : entries) {
    if (scores->true_positives + scores->false_positives + scores->false_negatives == 0) continue;
    sum += scores->f1;
    ++defined;
  }
  return defined == 0 ? 0.0 : sum / defined;
}

BinaryScores scores_at(const std::vector<ScoredLabel>& column, double threshold) {
  int64_t true_positives = 0, false_positives = 0, false_negatives = 0;
  for (const ScoredLabel& item : column) {
    const bool predicted = static_cast<double>(item.probability) >= threshold;
    if (predicted && item.positive) ++true_positives;
    if (predicted && !item.positive) ++false_positives;
    if (!predicted && item.positive) ++false_negatives;
  }
  return binary_scores(true_positives, false_positives, false_negatives);
}

// sklearn's average_precision_score: sum over distinct thresholds of (R_n - R_{n-1}) * P_n.
double average_precision(const std::vector<ThresholdCounts>& counts, int64_t positives) {
  if (positives == 0) return 0.0;
  double area = 0;
  double previous_recall = 0;
  for (const ThresholdCounts& point : counts) {
    const double recall = ratio(point.true_positives, positives);
    area += (recall - previous_recall) *
            ratio(point.true_positives, point.true_positives + point.false_positives);
    previous_recall = recall;
  }
  return area;
}

void check_multilabel_shapes(std::span<const float> probabilities, std::span<const int64_t> labels,
                             const std::vector<std::string>& tag_names) {
  const std::size_t rows = row_count(probabilities, tag_names.size(), "multi-label metrics");
  if (labels.size() != rows * tag_names.size()) {
    fail("multi-label metrics: {} rows of probabilities but {} labels for {} tags", rows,
         labels.size(), tag_names.size());
  }
}

}  // namespace

std::vector<std::array<int64_t, 2>> top2_classes(std::span<const float> probabilities,
                                                 std::size_t classes) {
  const std::size_t rows = row_count(probabilities, classes, "top-2 classes");
  std::vector<std::array<int64_t, 2>> top2(rows);
  for (std::size_t row = 0; row < rows; ++row) {
    const float* p = probabilities.data() + row * classes;
    int64_t first = 0;
    int64_t second = -1;
    // Scanning in index order and replacing only on a strictly higher rank keeps the lower index
    // first among equal probabilities.
    for (std::size_t c = 1; c < classes; ++c) {
      const auto index = static_cast<int64_t>(c);
      if (ranks_above(p[c], p[first])) {
        second = first;
        first = index;
      } else if (second == -1 || ranks_above(p[c], p[second])) {
        second = index;
      }
    }
    top2[row] = {first, second};
  }
  return top2;
}

std::vector<int64_t> decide_tags(std::span<const float> probabilities,
                                 std::span<const double> thresholds) {
  const std::size_t tags = thresholds.size();
  row_count(probabilities, tags, "tag decisions");
  std::vector<int64_t> decisions(probabilities.size());
  for (std::size_t i = 0; i < probabilities.size(); ++i) {
    decisions[i] = static_cast<double>(probabilities[i]) >= thresholds[i % tags] ? 1 : 0;
  }
  return decisions;
}

BinaryScores binary_scores(int64_t true_positives, int64_t false_positives,
                           int64_t false_negatives) {
  BinaryScores scores;
  scores.true_positives = true_positives;
  scores.false_positives = false_positives;
  scores.false_negatives = false_negatives;
  scores.precision = ratio(true_positives, true_positives + false_positives);
  scores.recall = ratio(true_positives, true_positives + false_negatives);
  // 2PR/(P+R) written with counts: exact, and 0 when there is no true positive.
  scores.f1 = ratio(2 * true_positives, 2 * true_positives + false_positives + false_negatives);
  return scores;
}

SoftmaxMetrics softmax_metrics(std::span<const float> probabilities,
                               std::span<const int64_t> labels,
                               const std::vector<std::string>& class_names) {
  const std::size_t classes = class_names.size();
  const std::size_t rows = row_count(probabilities, classes, "softmax metrics");
  if (labels.size() != rows) {
    fail("softmax metrics: {} rows of probabilities but {} labels", rows, labels.size());
  }
  SoftmaxMetrics metrics;
  metrics.confusion.assign(classes, std::vector<int64_t>(classes, 0));
  int64_t top1_hits = 0;
  int64_t top2_hits = 0;
  const auto top2 = top2_classes(probabilities, classes);
  for (std::size_t row = 0; row < rows; ++row) {
    const int64_t label = labels[row];
    if (label == kMissingLabel) {
      ++metrics.missing;
      continue;
    }
    if (label < 0 || label >= static_cast<int64_t>(classes)) {
      fail("softmax metrics: row {} has class index {}; expected 0..{} or -1 (missing)", row, label,
           classes - 1);
    }
    ++metrics.count;
    top1_hits += top2[row][0] == label;
    top2_hits += top2[row][0] == label || top2[row][1] == label;
    ++metrics.confusion[label][top2[row][0]];
  }
  metrics.top1_accuracy = ratio(top1_hits, metrics.count);
  metrics.top2_accuracy = ratio(top2_hits, metrics.count);

  for (std::size_t c = 0; c < classes; ++c) {
    int64_t support = 0;
    int64_t predicted = 0;
    for (std::size_t other = 0; other < classes; ++other) {
      support += metrics.confusion[c][other];
      predicted += metrics.confusion[other][c];
    }
    const int64_t hits = metrics.confusion[c][c];
    ClassMetrics& entry = metrics.classes.emplace_back();
    entry.name = class_names[c];
    entry.support = support;
    entry.scores = binary_scores(hits, predicted - hits, support - hits);
  }
  std::vector<const BinaryScores*> per_class;
  for (const ClassMetrics& entry : metrics.classes) per_class.push_back(&entry.scores);
  metrics.macro_f1 = macro_f1_of(per_class);
  return metrics;
}

MultiLabelMetrics multilabel_metrics(std::span<const float> probabilities,
                                     std::span<const int64_t> labels,
                                     const std::vector<std::string>& tag_names,
                                     std::span<const double> thresholds) {
  check_multilabel_shapes(probabilities, labels, tag_names);
  const std::size_t tags = tag_names.size();
  if (thresholds.size() != tags) {
    fail("multi-label metrics: {} thresholds for {} tags", thresholds.size(), tags);
  }
  MultiLabelMetrics metrics;
  double ap_sum = 0;
  int with_positives = 0;
  for (std::size_t tag = 0; tag < tags; ++tag) {
    const auto column = tag_column(probabilities, labels, tags, tag, tag_names[tag]);
    TagMetrics& entry = metrics.tags.emplace_back();
    entry.name = tag_names[tag];
    entry.count = static_cast<int64_t>(column.size());
    entry.positives = count_positives(column);
    entry.threshold = thresholds[tag];
    entry.at_threshold = scores_at(column, thresholds[tag]);
    entry.at_default = scores_at(column, kDefaultTagThreshold);
    entry.average_precision = average_precision(counts_by_threshold(column), entry.positives);
    if (entry.has_positives()) {
      ap_sum += entry.average_precision;
      ++with_positives;
    }
  }
  std::vector<const BinaryScores*> at_thresholds, at_default;
  for (const TagMetrics& entry : metrics.tags) {
    at_thresholds.push_back(&entry.at_threshold);
    at_default.push_back(&entry.at_default);
  }
  metrics.macro_f1 = macro_f1_of(at_thresholds);
  metrics.macro_f1_at_default = macro_f1_of(at_default);
  metrics.mean_average_precision = with_positives == 0 ? 0.0 : ap_sum / with_positives;
  return metrics;
}

std::vector<PrecisionRecallCurve> precision_recall_curves(
    std::span<const float> probabilities, std::span<const int64_t> labels,
    const std::vector<std::string>& tag_names) {
  check_multilabel_shapes(probabilities, labels, tag_names);
  const std::size_t tags = tag_names.size();
  std::vector<PrecisionRecallCurve> curves;
  for (std::size_t tag = 0; tag < tags; ++tag) {
    const auto column = tag_column(probabilities, labels, tags, tag, tag_names[tag]);
    PrecisionRecallCurve& curve = curves.emplace_back();
    curve.name = tag_names[tag];
    const int64_t positives = count_positives(column);
    if (positives == 0) continue;
    for (const ThresholdCounts& point : counts_by_threshold(column)) {
      curve.points.push_back(
          {point.threshold,
           ratio(point.true_positives, point.true_positives + point.false_positives),
           ratio(point.true_positives, positives)});
    }
  }
  return curves;
}

std::vector<TunedThreshold> tune_tag_thresholds(std::span<const float> probabilities,
                                                std::span<const int64_t> labels,
                                                const std::vector<std::string>& tag_names) {
  check_multilabel_shapes(probabilities, labels, tag_names);
  const std::size_t tags = tag_names.size();
  std::vector<TunedThreshold> tuned;
  for (std::size_t tag = 0; tag < tags; ++tag) {
    const auto column = tag_column(probabilities, labels, tags, tag, tag_names[tag]);
    TunedThreshold& entry = tuned.emplace_back();
    entry.name = tag_names[tag];
    const int64_t positives = count_positives(column);
    if (positives == 0) continue;  // nothing to tune on: keep 0.5, flagged by tuned == false
    const auto counts = counts_by_threshold(column);
    // F1 = 2TP / (2TP + FP + FN) with FN = positives - TP. Compared as exact fractions so equal
    // F1 values tie exactly; `>=` lets a later (lower) candidate win a tie.
    std::size_t best = 0;
    for (std::size_t i = 1; i < counts.size(); ++i) {
      const auto numerator = [](const ThresholdCounts& c) { return 2 * c.true_positives; };
      const auto denominator = [&](const ThresholdCounts& c) {
        return c.true_positives + c.false_positives + positives;
      };
      if (numerator(counts[i]) * denominator(counts[best]) >=
          numerator(counts[best]) * denominator(counts[i])) {
        best = i;
      }
    }
    const double winner = counts[best].threshold;
    if (best + 1 < counts.size()) {
      entry.threshold = (winner + counts[best + 1].threshold) / 2;
    } else {
      entry.threshold = winner > 0 ? winner / 2 : winner;  // every item is called positive
    }
    entry.f1 = binary_scores(counts[best].true_positives, counts[best].false_positives,
                             positives - counts[best].true_positives)
                   .f1;
    entry.tuned = true;
  }
  return tuned;
}

// ---- JSON -------------------------------------------------------------------------------------

json BinaryScores::to_json() const {
  return {{"precision", precision},
          {"recall", recall},
          {"f1", f1},
          {"true_positives", true_positives},
          {"false_positives", false_positives},
          {"false_negatives", false_negatives}};
}

json ClassMetrics::to_json() const {
  json out = scores.to_json();
  out["name"] = name;
  out["support"] = support;
  return out;
}

json SoftmaxMetrics::to_json() const {
  json class_list = json::array();
  for (const ClassMetrics& entry : classes) class_list.push_back(entry.to_json());
  return {{"count", count},
          {"missing", missing},
          {"top1_accuracy", top1_accuracy},
          {"top2_accuracy", top2_accuracy},
          {"macro_f1", macro_f1},
          {"confusion", confusion},
          {"classes", class_list}};
}

json TagMetrics::to_json() const {
  return {{"name", name},
          {"count", count},
          {"positives", positives},
          {"threshold", threshold},
          {"at_threshold", at_threshold.to_json()},
          {"at_default_threshold", at_default.to_json()},
          {"average_precision", average_precision}};
}

json MultiLabelMetrics::to_json() const {
  json tag_list = json::array();
  for (const TagMetrics& entry : tags) tag_list.push_back(entry.to_json());
  return {{"macro_f1", macro_f1},
          {"macro_f1_at_default_threshold", macro_f1_at_default},
          {"mean_average_precision", mean_average_precision},
          {"tags", tag_list}};
}

BinaryScores BinaryScores::from_json(const json& j) {
  BinaryScores s;
  s.precision = j.at("precision").get<double>();
  s.recall = j.at("recall").get<double>();
  s.f1 = j.at("f1").get<double>();
  s.true_positives = j.at("true_positives").get<int64_t>();
  s.false_positives = j.at("false_positives").get<int64_t>();
  s.false_negatives = j.at("false_negatives").get<int64_t>();
  return s;
}

ClassMetrics ClassMetrics::from_json(const json& j) {
  return {.name = j.at("name").get<std::string>(),
          .scores = BinaryScores::from_json(j),
          .support = j.at("support").get<int64_t>()};
}

SoftmaxMetrics SoftmaxMetrics::from_json(const json& j) {
  SoftmaxMetrics m;
  m.count = j.at("count").get<int64_t>();
  m.missing = j.at("missing").get<int64_t>();
  m.top1_accuracy = j.at("top1_accuracy").get<double>();
  m.top2_accuracy = j.at("top2_accuracy").get<double>();
  m.macro_f1 = j.at("macro_f1").get<double>();
  m.confusion = j.at("confusion").get<std::vector<std::vector<int64_t>>>();
  for (const json& entry : j.at("classes")) m.classes.push_back(ClassMetrics::from_json(entry));
  return m;
}

TagMetrics TagMetrics::from_json(const json& j) {
  TagMetrics t;
  t.name = j.at("name").get<std::string>();
  t.count = j.at("count").get<int64_t>();
  t.positives = j.at("positives").get<int64_t>();
  t.threshold = j.at("threshold").get<double>();
  t.at_threshold = BinaryScores::from_json(j.at("at_threshold"));
  t.at_default = BinaryScores::from_json(j.at("at_default_threshold"));
  t.average_precision = j.at("average_precision").get<double>();
  return t;
}

MultiLabelMetrics MultiLabelMetrics::from_json(const json& j) {
  MultiLabelMetrics m;
  m.macro_f1 = j.at("macro_f1").get<double>();
  m.macro_f1_at_default = j.at("macro_f1_at_default_threshold").get<double>();
  m.mean_average_precision = j.at("mean_average_precision").get<double>();
  for (const json& entry : j.at("tags")) m.tags.push_back(TagMetrics::from_json(entry));
  return m;
}

json TunedThreshold::to_json() const {
  return {{"name", name}, {"threshold", threshold}, {"f1", f1}, {"tuned", tuned}};
}

}  // namespace garmentnet
