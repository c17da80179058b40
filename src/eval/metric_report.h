// Report pieces shared by the training report and the evaluation report, so both show a head's
// metrics the same way: per-class and per-tag tables, the confusion matrix, precision-recall
// curves.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/task_spec.h"
#include "eval/metrics.h"

namespace garmentnet {

std::vector<std::string> class_table_header();
std::vector<std::vector<std::string>> class_table_rows(const SoftmaxMetrics& metrics);

// With `scores` the table has thresholds, F1 at 0.5 and AP (probabilities were available);
// without, only the decisions' precision, recall and F1.
std::vector<std::string> tag_table_header(bool scores);
std::vector<std::vector<std::string>> tag_table_rows(const MultiLabelMetrics& metrics, bool scores);

// Heatmap of confusion[true][predicted] with the counts in the cells.
void write_confusion_chart(const HeadSpec& head, const SoftmaxMetrics& metrics,
                           const std::filesystem::path& png);

// One precision-recall curve per tag, named with its average precision.
void write_precision_recall_curves(const HeadSpec& head,
                                   const std::vector<PrecisionRecallCurve>& curves,
                                   const MultiLabelMetrics& metrics,
                                   const std::filesystem::path& png);

}  // namespace garmentnet
