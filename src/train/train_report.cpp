#include "train/train_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <span>

#include "core/atomic_file.h"
#include "core/html_report.h"
#include "core/plot.h"
#include "data/image_grid.h"
#include "eval/metric_report.h"
#include "eval/metrics.h"

namespace garmentnet {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// One figure per epoch, e.g. the validation top-1 of a head.
template <typename Figure>
std::vector<double> series(const TrainingHistory& history, Figure figure) {
  std::vector<double> values;
  for (const EpochRecord& record : history) values.push_back(figure(record));
  return values;
}

std::string percent(double value) { return fmt::format("{:.1f}%", 100 * value); }

// Caption lines of one validation row: true vs predicted category, and the tags.
std::vector<std::string> caption(const TaskSpec& spec, const SplitPredictions& p,
                                 const std::map<std::string, std::vector<double>>& thresholds,
                                 size_t row) {
  std::vector<std::string> lines;
  for (const auto& head : spec.heads) {
    const size_t n = head.num_outputs();
    const float* probs = p.probabilities.at(head.name).data() + row * n;
    const int64_t* labels =
        p.labels.at(head.name).data() + row * (head.kind == HeadKind::Softmax ? 1 : n);
    if (head.kind == HeadKind::Softmax) {
      const auto top = top2_classes(std::span<const float>(probs, n), n).front();
      lines.push_back("true " +
                      (labels[0] >= 0 ? head.classes[static_cast<size_t>(labels[0])] : "?"));
      lines.push_back(
          fmt::format("pred {} {:.2f}", head.classes[static_cast<size_t>(top[0])], probs[top[0]]));
    } else {
      std::string truth, predicted;
      for (size_t k = 0; k < n; ++k) {
        if (labels[k] == 1) truth += (truth.empty() ? "" : ",") + head.classes[k];
        if (probs[k] >= thresholds.at(head.name)[k])
          predicted += (predicted.empty() ? "" : ",") + head.classes[k];
      }
      lines.push_back("tags " + (truth.empty() ? "-" : truth) + " / " +
                      (predicted.empty() ? "-" : predicted));
    }
  }
  return lines;
}

// Loss and quality per epoch, and a table of the epochs.
void add_learning_curves(HtmlReport& report, const TrainReportInputs& in, const fs::path& plots) {
  const TrainingHistory& history = in.history;
  std::vector<double> epochs;
  for (const EpochRecord& record : history) epochs.push_back(record.epoch);
  report.section("Learning curves");
  // Without validation rows the curves are the training figures alone.
  const bool validated = !history.empty() && !history.front().validation.heads.empty();
  LineChart loss{.style = {.title = "Loss per head", .x_label = "epoch", .y_label = "loss"}};
  for (const auto& head : in.spec.heads) {
    const std::string& name = head.name;
    loss.series.push_back({name + " train", epochs, series(history, [&](const EpochRecord& e) {
                             return e.train.head(name).loss;
                           })});
    if (!validated) continue;
    loss.series.push_back(
        {name + " validation", epochs,
         series(history, [&](const EpochRecord& e) { return e.validation.head(name).loss; }),
         true});
  }
  write_line_chart(loss, plots / "loss.png");
  report.image("plots/loss.png",
               validated ? "Training (solid) and validation (dashed) loss of each head."
                         : "Training loss of each head (the run has no validation rows).");
  if (!validated) {
    std::vector<std::vector<std::string>> rows;
    for (const EpochRecord& e : history)
      rows.push_back({std::to_string(e.epoch), fmt::format("{:.4f}", e.train.loss),
                      fmt::format("{:.4f}", e.train.score), fmt::format("{:.1f}", e.seconds)});
    report.table({"epoch", "train loss", "train score", "seconds"}, rows);
    return;
  }

  LineChart quality{
      .style = {.title = "Validation quality", .x_label = "epoch", .y_label = "score"}};
  for (const auto& head : in.spec.heads) {
    const std::string& name = head.name;
    const auto train = [&](const EpochRecord& e) -> const HeadMetrics& {
      return e.train.head(name);
    };
    const auto val = [&](const EpochRecord& e) -> const HeadMetrics& {
      return e.validation.head(name);
    };
    if (head.kind == HeadKind::Softmax) {
      quality.series.push_back(
          {name + " top-1 (train)", epochs,
           series(history, [&](const EpochRecord& e) { return train(e).softmax->top1_accuracy; })});
      quality.series.push_back(
          {name + " top-1", epochs,
           series(history, [&](const EpochRecord& e) { return val(e).softmax->top1_accuracy; }),
           true});
      quality.series.push_back(
          {name + " top-2", epochs,
           series(history, [&](const EpochRecord& e) { return val(e).softmax->top2_accuracy; }),
           true});
    } else {
      quality.series.push_back(
          {name + " mAP", epochs,
           series(history,
                  [&](const EpochRecord& e) { return val(e).multilabel->mean_average_precision; }),
           true});
      quality.series.push_back(
          {name + " macro F1", epochs,
           series(history, [&](const EpochRecord& e) { return val(e).multilabel->macro_f1; }),
           true});
    }
  }
  write_line_chart(quality, plots / "quality.png");
  report.image("plots/quality.png", "Accuracy, mean average precision and F1 per epoch.");

  std::vector<std::vector<std::string>> rows;
  for (const EpochRecord& e : history) {
    rows.push_back({std::to_string(e.epoch), fmt::format("{:.4f}", e.train.loss),
                    fmt::format("{:.4f}", e.validation.loss),
                    fmt::format("{:.4f}", e.validation.score), fmt::format("{:.1f}", e.seconds)});
  }
  report.table({"epoch", "train loss", "val loss", "val score", "seconds"}, rows);
}

// The best epoch's metrics per head (tables, confusion matrix, precision-recall curves); its
// lines of the model card are added to `card`.
void add_best_epoch(HtmlReport& report, const TrainReportInputs& in, const fs::path& plots,
                    std::string& card) {
  report.section("Best epoch on validation data");
  for (const auto& head : in.spec.heads) {
    const auto& probs = in.best_validation.probabilities.at(head.name);
    const auto& labels = in.best_validation.labels.at(head.name);
    report.subsection(head.name);
    if (head.kind == HeadKind::Softmax) {
      const SoftmaxMetrics m = softmax_metrics(probs, labels, head.classes);
      report.key_values({{"top-1 accuracy", percent(m.top1_accuracy)},
                         {"top-2 accuracy", percent(m.top2_accuracy)},
                         {"macro F1", fmt::format("{:.3f}", m.macro_f1)},
                         {"validation rows", std::to_string(m.count)}});
      card += fmt::format("- **{}**: top-1 {}, top-2 {}, macro F1 {:.3f} (validation, {} rows)\n",
                          head.name, percent(m.top1_accuracy), percent(m.top2_accuracy), m.macro_f1,
                          m.count);
      write_confusion_chart(head, m, plots / (head.name + "_confusion.png"));
      report.image("plots/" + head.name + "_confusion.png",
                   "Rows: true class; columns: top-1 prediction.");
      report.table(class_table_header(), class_table_rows(m));
    } else {
      const auto& thresholds = in.thresholds.at(head.name);
      const MultiLabelMetrics m = multilabel_metrics(probs, labels, head.classes, thresholds);
      for (const TagMetrics& t : m.tags) {
        card += fmt::format("- **{} / {}**: F1 {:.3f} at threshold {:.3f}, AP {:.3f}\n", head.name,
                            t.name, t.at_threshold.f1, t.threshold, t.average_precision);
      }
      report.table(tag_table_header(true), tag_table_rows(m, true));
      write_precision_recall_curves(head, precision_recall_curves(probs, labels, head.classes), m,
                                    plots / (head.name + "_pr.png"));
      report.image("plots/" + head.name + "_pr.png",
                   "Precision-recall curve of each tag on validation data.");
    }
  }
}

// Sample validation images and the most confident mistakes, with captions.
void add_validation_images(HtmlReport& report, const TrainReportInputs& in, const fs::path& plots) {
  if (!in.validation_images.empty()) {
    report.section("Validation images");
    std::vector<GridTile> sample, mistakes;
    for (size_t row = 0; row < std::min<size_t>(16, in.validation_images.size()); ++row) {
      sample.push_back(
          {in.validation_images[row], caption(in.spec, in.best_validation, in.thresholds, row)});
    }
    write_png(compose_image_grid(sample), plots / "validation_samples.png");
    report.image("plots/validation_samples.png",
                 "The first validation images: true and predicted category (probability); tags "
                 "true / predicted.");
    if (const HeadSpec* category = in.spec.category_head()) {
      // The most confident wrong answers of the category head.
      const size_t n = category->num_outputs();
      const auto& probs = in.best_validation.probabilities.at(category->name);
      const auto& labels = in.best_validation.labels.at(category->name);
      const auto tops = top2_classes(probs, n);
      std::vector<std::pair<float, size_t>> wrong;
      for (size_t row = 0; row < labels.size(); ++row) {
        if (labels[row] >= 0 && tops[row][0] != labels[row])
          wrong.emplace_back(probs[row * n + tops[row][0]], row);
      }
      std::sort(wrong.rbegin(), wrong.rend());
      for (size_t i = 0; i < std::min<size_t>(16, wrong.size()); ++i) {
        mistakes.push_back({in.validation_images[wrong[i].second],
                            caption(in.spec, in.best_validation, in.thresholds, wrong[i].second)});
      }
      if (!mistakes.empty()) {
        write_png(compose_image_grid(mistakes), plots / "worst_mistakes.png");
        report.image("plots/worst_mistakes.png",
                     "The most confident wrong categories on validation data.");
      }
    }
  }
}

}  // namespace

void write_train_report(const TrainReportInputs& in) {
  const fs::path plots = in.out_dir / "plots";
  fs::create_directories(plots);

  HtmlReport report("Training run " + in.out_dir.filename().string());
  report.section("Summary");
  std::vector<std::pair<std::string, std::string>> facts;
  for (const auto& [key, value] : in.summary.items()) {
    facts.emplace_back(key, value.is_string() ? value.get<std::string>() : value.dump());
  }
  report.key_values(facts);

  add_learning_curves(report, in, plots);
  std::string card = "# Model card\n\n";
  for (const auto& [key, value] : facts) card += fmt::format("- **{}**: {}\n", key, value);
  if (in.best_validation.probabilities.empty()) {
    report.paragraph(
        "This run trained on every row, without validation rows: the model is the last epoch's. "
        "Use `garmentnet evaluate` on held-out test data for its figures.");
  } else {
    add_best_epoch(report, in, plots, card);
    add_validation_images(report, in, plots);
    report.paragraph(
        "Thresholds were tuned on the validation data to maximise each tag's F1; "
        "validation scores at tuned thresholds are therefore slightly optimistic. "
        "Use `garmentnet evaluate` on held-out test data for unbiased figures.");
  }
  report.write(in.out_dir / "report.html");
  write_file_atomically(in.out_dir / "model_card.md", card);
}

}  // namespace garmentnet
