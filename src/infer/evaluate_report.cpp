// The human-facing side of `evaluate`: the terminal summary and report.html with its plots.
#include <fmt/format.h>

#include "core/html_report.h"
#include "core/plot.h"
#include "core/text_table.h"
#include "data/image_grid.h"
#include "eval/metric_report.h"
#include "infer/evaluate.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

std::string percent(double value) { return fmt::format("{:.1f}%", 100 * value); }
std::string decimal(double value) { return fmt::format("{:.3f}", value); }

std::string megabytes(uintmax_t bytes) { return fmt::format("{:.2f} MB", double(bytes) / 1e6); }

// The headline numbers as name/value rows, shared by the terminal and the report.
std::vector<std::pair<std::string, std::string>> headline(const EvaluationResult& r) {
  std::vector<std::pair<std::string, std::string>> rows;
  rows.emplace_back("labelled rows", std::to_string(r.rows));
  rows.emplace_back("scored rows", std::to_string(r.scored));
  if (!r.failures.empty())
    rows.emplace_back("rows without a prediction", std::to_string(r.failures.size()));
  if (const HeadSpec* category = r.spec.category_head();
      category && r.softmax.count(category->name)) {
    const SoftmaxMetrics& m = r.softmax.at(category->name);
    rows.emplace_back(category->name + " top-1 accuracy", percent(m.top1_accuracy));
    rows.emplace_back(category->name + " top-2 accuracy", percent(m.top2_accuracy));
    rows.emplace_back(category->name + " macro F1", decimal(m.macro_f1));
  }
  if (const HeadSpec* tags = r.spec.tag_head(); tags && r.multilabel.count(tags->name)) {
    const MultiLabelMetrics& m = r.multilabel.at(tags->name);
    rows.emplace_back(tags->name + (r.ran_model ? " macro F1 (tuned thresholds)" : " macro F1"),
                      decimal(m.macro_f1));
    if (r.ran_model) {
      rows.emplace_back(tags->name + " macro F1 (threshold 0.5)", decimal(m.macro_f1_at_default));
      rows.emplace_back(tags->name + " mean average precision", decimal(m.mean_average_precision));
    }
  }
  if (r.ran_model) {
    rows.emplace_back("speed", fmt::format("{:.1f} images/s (batch {}, {} threads, decode + model)",
                                           r.images_per_second, r.batch_size, r.threads));
  }
  if (r.model) {
    rows.emplace_back("model", r.model->path.string());
    rows.emplace_back("model size on disk", megabytes(r.model->file_bytes));
    rows.emplace_back("parameters", fmt::format("{:.3f} M", double(r.model->parameters) / 1e6));
    rows.emplace_back("backbone", fmt::format("{} ({}x{} input)", r.model->backbone,
                                              r.model->input_width, r.model->input_height));
  }
  return rows;
}

std::string title(const EvaluationResult& r) {
  return r.ran_model ? fmt::format("Evaluation of {} on {}", r.model->path.filename().string(),
                                   r.labels.string())
                     : fmt::format("Evaluation of {} against {}", r.predictions.string(),
                                   r.labels.string());
}

std::string speed_title(const BenchmarkResult& b) {
  return fmt::format(
      "Inference speed (the figures of `garmentnet bench --quick`, decoding {} images of {})",
      b.decode_files, b.images_source);
}

}  // namespace

std::string evaluation_summary_text(const EvaluationResult& r) {
  std::string text = title(r) + "\n\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, value] : headline(r)) rows.push_back({name, value});
  text += format_text_table({"", "value"}, rows);
  for (const auto& head : r.spec.heads) {
    if (r.softmax.count(head.name)) {
      text += fmt::format("\n{} (top-1 decisions)\n", head.name);
      text += format_text_table(class_table_header(), class_table_rows(r.softmax.at(head.name)));
    } else if (r.multilabel.count(head.name)) {
      text += fmt::format("\n{}{}\n", head.name,
                          r.ran_model ? " (decisions at the model's tuned thresholds)" : "");
      text += format_text_table(tag_table_header(r.ran_model),
                                tag_table_rows(r.multilabel.at(head.name), r.ran_model));
    }
  }
  if (r.benchmark) text += "\n" + speed_title(*r.benchmark) + "\n" + format_benchmark(*r.benchmark);
  return text;
}

void write_evaluation_report(const EvaluationResult& r, const fs::path& out_dir) {
  const fs::path plots = out_dir / "plots";
  fs::create_directories(plots);
  HtmlReport report(title(r));
  report.section("Summary");
  report.key_values(headline(r));
  if (!r.ran_model) {
    report.paragraph(
        "Scored from the decisions in the predictions file: category1/category2 and the 0/1 "
        "tag columns. Probabilities are not read, so there is no average precision and no "
        "precision-recall curve.");
  }
  if (!r.failures.empty()) {
    report.subsection("Rows without a prediction (left out of every number)");
    std::vector<std::vector<std::string>> rows;
    for (size_t i = 0; i < r.failures.size() && i < 50; ++i) {
      const ImageFailure& f = r.failures[i];
      rows.push_back({std::to_string(f.row + 1), f.id, f.reason});
    }
    report.table({"row", r.spec.id_column, "reason"}, rows);
    if (r.failures.size() > 50)
      report.paragraph(
          fmt::format("… and {} more (evaluation.json lists all).", r.failures.size() - 50));
  }

  for (const auto& head : r.spec.heads) {
    if (r.softmax.count(head.name)) {
      const SoftmaxMetrics& m = r.softmax.at(head.name);
      report.section("Category head '" + head.name + "'");
      const std::string file = head.name + "_confusion.png";
      write_confusion_chart(head, m, plots / file);
      report.image("plots/" + file,
                   "Rows: true class; columns: most likely class. Counts of labelled rows.");
      report.table(class_table_header(), class_table_rows(m));
    } else if (r.multilabel.count(head.name)) {
      const MultiLabelMetrics& m = r.multilabel.at(head.name);
      report.section("Tag head '" + head.name + "'");
      report.table(tag_table_header(r.ran_model), tag_table_rows(m, r.ran_model));
      BarChart f1{.style = {.title = "F1 per tag: " + head.name, .y_label = "F1"},
                  .value_decimals = 2};
      f1.categories = head.classes;
      f1.series_names = {r.ran_model ? "tuned thresholds" : "decisions in the file"};
      f1.values.emplace_back();
      for (const TagMetrics& t : m.tags) f1.values[0].push_back(t.at_threshold.f1);
      if (r.ran_model) {
        f1.series_names.push_back("threshold 0.5");
        f1.values.emplace_back();
        for (const TagMetrics& t : m.tags) f1.values[1].push_back(t.at_default.f1);
      }
      const std::string f1_file = head.name + "_f1.png";
      write_bar_chart(f1, plots / f1_file);
      report.image("plots/" + f1_file, "F1 of each tag's 0/1 decisions.");
      if (r.curves.count(head.name)) {
        const std::string pr_file = head.name + "_pr.png";
        write_precision_recall_curves(head, r.curves.at(head.name), m, plots / pr_file);
        report.image("plots/" + pr_file, "Precision-recall curve of each tag over all thresholds.");
      }
    }
  }

  if (!r.worst_mistakes.empty() && !r.images_dir.empty()) {
    report.section("Worst mistakes");
    std::vector<GridTile> tiles;
    for (const Mistake& m : r.worst_mistakes) {
      // Short lines: a tile is only as wide as its thumbnail and longer lines are cut.
      GridTile tile{.image = m.image,
                    .caption = {m.id, "true " + m.true_class, "pred " + m.predicted_class}};
      if (m.probability >= 0) tile.caption.push_back(fmt::format("p = {:.2f}", m.probability));
      tiles.push_back(std::move(tile));
    }
    write_png(compose_image_grid(tiles, {.thumbnail = 160, .columns = 5}),
              plots / "worst_mistakes.png");
    report.image("plots/worst_mistakes.png", r.ran_model
                                                 ? "Wrong top-1 categories, most confident first."
                                                 : "Wrong top-1 categories, in file order.");
  }
  if (r.benchmark) {
    report.section("Inference speed");
    report.paragraph(speed_title(*r.benchmark) + ". See docs/benchmarks.md for what each row is.");
    report.preformatted(benchmark_description(*r.benchmark));
    for (const BenchmarkTable& table : benchmark_tables(*r.benchmark))
      report.table(table.headers, table.rows);
  }
  report.write(out_dir / "report.html");
}

}  // namespace garmentnet
