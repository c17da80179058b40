#include "train/run_comparison.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/html_report.h"
#include "core/plot.h"
#include "train/epoch_metrics.h"
#include "train/run_listing.h"

namespace garmentnet {
namespace {

namespace fs = std::filesystem;

// A figure's value per epoch ("validation/cc3/top1" → (epoch, value) pairs).
using Curves = std::map<std::string, std::vector<std::pair<double, double>>>;

struct ComparedRun {
  RunSummary summary;
  nlohmann::json config;
  Curves curves;
  std::map<std::string, double> best;  // every figure at the best epoch
  double mean_epoch_seconds = 0;
};

ComparedRun read_compared_run(const fs::path& folder) {
  ComparedRun run;
  run.config = read_run_file(folder / "config.json");
  const nlohmann::json metrics = read_run_file(folder / "metrics.json");
  if (!run.config.is_object() || !metrics.is_array()) {
    fail(
        "{} is not a training run folder: its {} is missing or not readable (give folders that "
        "`garmentnet train --out` wrote; `garmentnet runs list DIR` lists them)",
        folder.string(), run.config.is_object() ? "metrics.json" : "config.json");
  }
  run.summary = summarize_run(folder, folder.generic_string());
  const TrainingHistory history = history_from_json(metrics);
  for (const EpochRecord& record : history) {
    // Images per second need the run's row count, which metrics.json does not keep.
    for (const auto& [name, value] : epoch_figures(record, 0)) {
      if (name == "speed/images_per_second") continue;
      run.curves[name].emplace_back(record.epoch, value);
      if (record.epoch == run.summary.best_epoch) run.best[name] = value;
    }
    run.mean_epoch_seconds += record.seconds / static_cast<double>(history.size());
  }
  return run;
}

// One chart of `figure` with a line per run, in the run's colour; `dashed_figure`, when given, is
// drawn dashed in the same colour (training next to validation).
void add_curve_chart(HtmlReport& report, const std::vector<ComparedRun>& runs,
                     const std::string& figure, const std::string& dashed_figure,
                     const fs::path& out_dir, const std::string& caption) {
  LineChart chart{.style = {.title = figure, .x_label = "epoch", .y_label = "value"},
                  .key_below = true};
  for (size_t i = 0; i < runs.size(); ++i) {
    for (const std::string& name : {figure, dashed_figure}) {
      const auto found = runs[i].curves.find(name);
      if (name.empty() || found == runs[i].curves.end()) continue;
      LineSeries line{.name = runs[i].summary.name + (name == figure ? "" : " (train)"),
                      .dashed = name != figure,
                      .color = static_cast<int>(i)};
      for (const auto& [epoch, value] : found->second) {
        line.x.push_back(epoch);
        line.y.push_back(value);
      }
      chart.series.push_back(std::move(line));
    }
  }
  if (chart.series.empty()) return;
  std::string stem = figure;
  std::replace_if(
      stem.begin(), stem.end(), [](unsigned char c) { return !std::isalnum(c); }, '_');
  const std::string file = "plots/" + stem + ".png";
  write_line_chart(chart, out_dir / file);
  report.image(file, caption);
}

// The runs' figures at their best epochs, a column per run, and which run is best at each.
void add_best_epochs_table(HtmlReport& report, const std::vector<ComparedRun>& runs) {
  std::vector<std::string> headers = {"figure"};
  for (const ComparedRun& run : runs) headers.push_back(run.summary.name);
  headers.push_back("best");
  const auto text_row = [&](const std::string& name, auto cell) {
    std::vector<std::string> row = {name};
    for (const ComparedRun& run : runs) row.push_back(cell(run));
    row.emplace_back();
    return row;
  };
  std::vector<std::vector<std::string>> rows = {
      text_row("status",
               [](const ComparedRun& run) {
                 return run.summary.status ? std::string(name_of(*run.summary.status)) : "";
               }),
      text_row("backbone", [](const ComparedRun& run) { return run.summary.backbone; }),
      text_row("transfer", [](const ComparedRun& run) { return run.summary.transfer; }),
      text_row("epochs run / planned",
               [](const ComparedRun& run) {
                 return fmt::format("{}/{}", run.summary.epochs_run, run.summary.epochs_planned);
               }),
      text_row("best epoch", [](const ComparedRun& run) {
        return run.summary.best_epoch > 0 ? std::to_string(run.summary.best_epoch) : "";
      })};
  std::set<std::string> figures;
  for (const ComparedRun& run : runs)
    for (const auto& [name, value] : run.best) figures.insert(name);
  for (const std::string& figure : figures) {
    if (!figure.starts_with("validation/")) continue;
    // Lower is better for losses, higher for every score.
    const bool lower_is_better = figure.ends_with("loss");
    std::vector<std::string> row = {figure};
    std::optional<size_t> best;
    for (size_t i = 0; i < runs.size(); ++i) {
      const auto found = runs[i].best.find(figure);
      row.push_back(found == runs[i].best.end() ? "" : fmt::format("{:.4f}", found->second));
      if (found == runs[i].best.end()) continue;
      const double value = found->second;
      const double best_value = best ? runs[*best].best.at(figure) : 0;
      if (!best || (lower_is_better ? value < best_value : value > best_value)) best = i;
    }
    row.push_back(best ? runs[*best].summary.name : "");
    rows.push_back(std::move(row));
  }
  rows.push_back(text_row("mean epoch seconds", [](const ComparedRun& run) {
    return fmt::format("{:.1f}", run.mean_epoch_seconds);
  }));
  report.table(headers, rows);
}

}  // namespace

std::vector<std::vector<std::string>> differing_options(
    const std::vector<nlohmann::json>& configs) {
  std::vector<std::map<std::string, std::string>> options;
  std::set<std::string> names;
  for (const nlohmann::json& config : configs) {
    options.push_back(flat_options(config));
    for (const auto& [name, value] : options.back()) names.insert(name);
  }
  names.erase("out");
  std::vector<std::vector<std::string>> rows;
  for (const std::string& name : names) {
    std::vector<std::string> row = {name};
    for (const auto& run : options) {
      const auto found = run.find(name);
      row.push_back(found == run.end() ? "" : found->second);
    }
    if (std::adjacent_find(row.begin() + 1, row.end(), std::not_equal_to<>()) != row.end())
      rows.push_back(std::move(row));
  }
  return rows;
}

void write_run_comparison(const std::vector<fs::path>& run_dirs, const fs::path& out_dir) {
  std::vector<ComparedRun> runs;
  std::vector<nlohmann::json> configs;
  for (const fs::path& folder : run_dirs) {
    runs.push_back(read_compared_run(folder));
    configs.push_back(runs.back().config);
  }
  fs::create_directories(out_dir / "plots");
  HtmlReport report(fmt::format("Comparison of {} training runs", runs.size()));

  report.section("Best epochs");
  report.paragraph(
      "Each run's validation figures at its best epoch (the epoch its monitor chose); the last "
      "column names the best run for each figure (lowest loss, highest score).");
  add_best_epochs_table(report, runs);

  report.section("Options that differ");
  std::vector<std::string> headers = {"option"};
  for (const ComparedRun& run : runs) headers.push_back(run.summary.name);
  const auto rows = differing_options(configs);
  if (rows.empty()) {
    report.paragraph("The runs were trained with the same options.");
  } else {
    report.table(headers, rows);
  }

  report.section("Learning curves");
  report.paragraph("One colour per run, the same in every chart.");
  add_curve_chart(report, runs, "validation/score", "", out_dir,
                  "Validation score: the mean of the heads' top-1 accuracy and mAP.");
  add_curve_chart(report, runs, "validation/loss", "train/loss", out_dir,
                  "Validation loss (solid) and training loss (dashed).");
  std::vector<std::string> head_figures;
  for (const ComparedRun& run : runs) {
    for (const auto& [name, points] : run.curves) {
      const bool headline = name.starts_with("validation/") &&
                            (name.ends_with("/top1") || name.ends_with("/top2") ||
                             name.ends_with("/mAP") || name.ends_with("/macro_f1"));
      if (headline &&
          std::find(head_figures.begin(), head_figures.end(), name) == head_figures.end())
        head_figures.push_back(name);
    }
  }
  for (const std::string& figure : head_figures)
    add_curve_chart(report, runs, figure, "", out_dir, figure + " per epoch.");
  report.write(out_dir / "compare.html");
}

}  // namespace garmentnet
