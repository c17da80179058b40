#include "eval/metric_report.h"

#include <fmt/format.h>

#include "core/plot.h"

namespace garmentnet {
namespace {

std::string decimal(double value) { return fmt::format("{:.3f}", value); }

}  // namespace

std::vector<std::string> class_table_header() {
  return {"class", "precision", "recall", "F1", "support"};
}

std::vector<std::vector<std::string>> class_table_rows(const SoftmaxMetrics& m) {
  std::vector<std::vector<std::string>> rows;
  for (const ClassMetrics& c : m.classes) {
    rows.push_back({c.name, decimal(c.scores.precision), decimal(c.scores.recall),
                    decimal(c.scores.f1), std::to_string(c.support)});
  }
  return rows;
}

std::vector<std::string> tag_table_header(bool scores) {
  if (!scores) return {"tag", "precision", "recall", "F1", "positives"};
  return {"tag", "threshold", "precision", "recall", "F1", "F1 at 0.5", "AP", "positives"};
}

std::vector<std::vector<std::string>> tag_table_rows(const MultiLabelMetrics& m, bool scores) {
  std::vector<std::vector<std::string>> rows;
  for (const TagMetrics& t : m.tags) {
    const BinaryScores& s = t.at_threshold;
    if (scores) {
      rows.push_back({t.name, decimal(t.threshold), decimal(s.precision), decimal(s.recall),
                      decimal(s.f1), decimal(t.at_default.f1), decimal(t.average_precision),
                      std::to_string(t.positives)});
    } else {
      rows.push_back({t.name, decimal(s.precision), decimal(s.recall), decimal(s.f1),
                      std::to_string(t.positives)});
    }
  }
  return rows;
}

void write_confusion_chart(const HeadSpec& head, const SoftmaxMetrics& m,
                           const std::filesystem::path& png) {
  Heatmap confusion{.style = {.title = "Confusion matrix: " + head.name,
                              .x_label = "predicted (top-1)",
                              .y_label = "true",
                              .width = 800,
                              .height = 650},
                    .row_labels = head.classes,
                    .column_labels = head.classes};
  for (const auto& row : m.confusion) confusion.values.emplace_back(row.begin(), row.end());
  write_heatmap(confusion, png);
}

void write_precision_recall_curves(const HeadSpec& head,
                                   const std::vector<PrecisionRecallCurve>& curves,
                                   const MultiLabelMetrics& m, const std::filesystem::path& png) {
  PrecisionRecallChart chart{.style = {.title = "Precision-recall: " + head.name}};
  for (size_t k = 0; k < curves.size(); ++k) {
    PrecisionRecallSeries series{
        .name = fmt::format("{} (AP {:.2f})", curves[k].name, m.tags[k].average_precision)};
    for (const auto& point : curves[k].points) {
      series.recall.push_back(point.recall);
      series.precision.push_back(point.precision);
    }
    chart.series.push_back(std::move(series));
  }
  write_precision_recall_chart(chart, png);
}

}  // namespace garmentnet
