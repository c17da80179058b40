#include "train/study_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/html_report.h"
#include "core/plot.h"
#include "data/image_grid.h"

namespace garmentnet {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string option_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_float()) return fmt::format("{:.4g}", value.get<double>());
  return value.dump();
}

// The trials that trained every fold, best mean score first.
std::vector<const TrialResult*> ranked_trials(const StudyResult& study, int folds) {
  std::vector<const TrialResult*> ranked;
  for (const TrialResult& trial : study.trials)
    if (trial.complete(folds)) ranked.push_back(&trial);
  std::stable_sort(ranked.begin(), ranked.end(), [](const TrialResult* a, const TrialResult* b) {
    return a->mean_score() > b->mean_score();
  });
  return ranked;
}

void add_summary(HtmlReport& report, const StudyResult& study, const TuneOptions& options,
                 const std::vector<const TrialResult*>& ranked) {
  int pruned = 0, failed = 0;
  double seconds = 0;
  for (const TrialResult& trial : study.trials) {
    pruned += trial.pruned ? 1 : 0;
    failed += trial.error.empty() ? 0 : 1;
    for (const FoldResult& fold : trial.folds) seconds += fold.seconds;
  }
  std::vector<std::pair<std::string, std::string>> rows = {
      {"strategy", std::string(kSearchStrategies.name_of(options.strategy))},
      {"folds", std::to_string(options.folds)},
      {"trials", fmt::format("{} started: {} complete, {} pruned, {} failed", study.trials.size(),
                             ranked.size(), pruned, failed)},
      {"pruning", options.reduction > 0
                      ? fmt::format("ASHA, reduction factor {}, first rung epoch {}",
                                    options.reduction, options.min_epochs)
                      : "none"},
      {"training time (finished folds)",
       seconds < 120 ? fmt::format("{:.1f} s", seconds) : fmt::format("{:.1f} min", seconds / 60)}};
  if (!ranked.empty()) {
    rows.push_back({"best", fmt::format("trial {}: {:.4f} ± {:.4f}", ranked[0]->trial,
                                        ranked[0]->mean_score(), ranked[0]->score_spread())});
  }
  report.section("Study");
  report.key_values(rows);
  if (ranked.size() < 2) return;
  // The standard error of the difference of two means over the same number of folds.
  const TrialResult& first = *ranked[0];
  const TrialResult& second = *ranked[1];
  const double lead = first.mean_score() - second.mean_score();
  const double error = std::sqrt(
      (std::pow(first.score_spread(), 2) + std::pow(second.score_spread(), 2)) / options.folds);
  report.paragraph(fmt::format(
      "The best trial leads the second (trial {}) by {:.4f}; the standard error of that "
      "difference over {} folds is {:.4f}: {}.",
      second.trial, lead, options.folds, error,
      lead > 2 * error ? "the lead is beyond fold noise (more than twice it)"
                       : "the lead is within fold noise: the two are not told apart"));
}

void add_best_trials(HtmlReport& report, const std::vector<const TrialResult*>& ranked,
                     const std::vector<SearchParameter>& varied, int folds) {
  report.section("Best trials");
  std::vector<std::string> headers = {"trial", "mean score", "spread"};
  for (int fold = 0; fold < folds; ++fold) headers.push_back(fmt::format("fold {}", fold + 1));
  for (const SearchParameter& parameter : varied) headers.push_back(parameter.name);
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < std::min<size_t>(ranked.size(), 10); ++i) {
    const TrialResult& trial = *ranked[i];
    std::vector<std::string> row = {std::to_string(trial.trial),
                                    fmt::format("{:.4f}", trial.mean_score()),
                                    fmt::format("{:.4f}", trial.score_spread())};
    std::vector<const FoldResult*> by_fold(static_cast<size_t>(folds));
    for (const FoldResult& fold : trial.folds) by_fold[static_cast<size_t>(fold.fold)] = &fold;
    for (const FoldResult* fold : by_fold) row.push_back(fmt::format("{:.4f}", fold->score));
    for (const SearchParameter& parameter : varied)
      row.push_back(option_text(trial.config.at(parameter.name)));
    rows.push_back(std::move(row));
  }
  report.table(headers, rows);
}

// The mean score of every complete trial against one searched option: a scatter plot for
// numbers, bars (the mean per value) for choices of text.
void add_option_chart(HtmlReport& report, const std::vector<const TrialResult*>& ranked,
                      const SearchParameter& parameter, const fs::path& out_dir) {
  const std::string file = "plots/score_vs_" + parameter.name + ".png";
  const ChartStyle style{.title = "mean score against " + parameter.name,
                         .x_label = parameter.name,
                         .y_label = "mean validation score"};
  const bool numeric = std::all_of(ranked.begin(), ranked.end(), [&](const TrialResult* trial) {
    return trial->config.at(parameter.name).is_number();
  });
  if (numeric) {
    LineSeries points{.points_only = true};  // no name: no legend
    for (const TrialResult* trial : ranked) {
      points.x.push_back(trial->config.at(parameter.name).get<double>());
      points.y.push_back(trial->mean_score());
    }
    write_line_chart({.style = style,
                      .series = {points},
                      .log_x = parameter.kind == SearchParameter::Kind::LogUniform},
                     out_dir / file);
  } else {
    std::map<std::string, std::pair<double, int>> sums;  // value → (sum of means, trials)
    for (const TrialResult* trial : ranked) {
      auto& [sum, count] = sums[option_text(trial->config.at(parameter.name))];
      sum += trial->mean_score();
      ++count;
    }
    BarChart bars{.style = style, .values = {{}}, .value_decimals = 3};
    for (const auto& [value, sum] : sums) {
      bars.categories.push_back(value);
      bars.values[0].push_back(sum.first / sum.second);
    }
    write_bar_chart(bars, out_dir / file);
  }
  report.image(file, numeric ? "Each point is a complete trial."
                             : "The mean over the complete trials with each value.");
}

void add_progress_chart(HtmlReport& report, const StudyResult& study, int folds,
                        const fs::path& out_dir) {
  LineSeries trials{.name = "trial's mean score", .points_only = true};
  LineSeries best{.name = "best so far"};
  for (const TrialResult& trial : study.trials) {
    if (!trial.complete(folds)) continue;
    trials.x.push_back(trial.trial);
    trials.y.push_back(trial.mean_score());
    best.x.push_back(trial.trial);
    best.y.push_back(best.y.empty() ? trial.mean_score()
                                    : std::max(best.y.back(), trial.mean_score()));
  }
  if (trials.x.empty()) return;
  report.section("Progress");
  write_line_chart({.style = {.title = "best mean score, trial after trial",
                              .x_label = "trial",
                              .y_label = "mean validation score"},
                    .series = {trials, best},
                    .key_below = true},
                   out_dir / "plots/progress.png");
  report.image("plots/progress.png", "Complete trials only; pruned and failed ones are left out.");
}

// Fold 1's score at each rung of every trial that reached one; pruned trials dashed.
void add_rung_chart(HtmlReport& report, const StudyResult& study, const fs::path& out_dir) {
  LineChart chart{.style = {.title = "pruning rungs (fold 1)",
                            .x_label = "epoch",
                            .y_label = "best validation score so far"},
                  .key_below = true};
  int pruned = 0;
  for (const TrialResult& trial : study.trials) {
    LineSeries line{.name = fmt::format("trial {}{}", trial.trial, trial.pruned ? " (pruned)" : ""),
                    .dashed = trial.pruned.has_value()};
    for (const RungScore& rung : trial.rungs) {
      if (rung.fold != 0) continue;
      line.x.push_back(rung.epoch);
      line.y.push_back(rung.score);
    }
    if (line.x.empty()) continue;
    pruned += trial.pruned ? 1 : 0;
    chart.series.push_back(std::move(line));
  }
  if (chart.series.empty()) return;
  report.section("Pruning");
  report.paragraph(fmt::format(
      "{} trial(s) were pruned. At each rung epoch a fold went on only when its score was in the "
      "top 1/η of the same fold of the trials that reached that epoch.",
      pruned));
  write_line_chart(chart, out_dir / "plots/rungs.png");
  report.image("plots/rungs.png");
}

void add_suspect_labels(HtmlReport& report, const SuspectSummary& suspects,
                        const fs::path& out_dir) {
  report.section("Suspect labels");
  std::string text = fmt::format(
      "{} of the {} training rows have a category the best trial's out-of-fold predictions "
      "confidently disagree with (confident learning: a row is confidently of a class when its "
      "probability reaches that class's mean probability over the rows labelled with it). They "
      "are listed in suspect_labels.parquet, most doubtful first, for a person to relabel.",
      suspects.rows.size(), suspects.rows_checked);
  if (suspects.precision && suspects.recall) {
    text += fmt::format(
        " The dataset records {} of these rows' categories as wrong (make-dataset "
        "--label-noise): the suspects' precision is {:.3f} and their recall {:.3f}.",
        suspects.known_wrong, *suspects.precision, *suspects.recall);
  }
  report.paragraph(text);
  if (!suspects.most_doubtful.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const SuspectSummary::AtRank& at : suspects.most_doubtful) {
      rows.push_back({std::to_string(at.rows), fmt::format("{:.3f}", at.precision),
                      fmt::format("{:.3f}", at.recall)});
    }
    report.paragraph(
        "Reading every training row from the most doubtful (lowest probability of its given "
        "category) down, against the categories the dataset records as wrong:");
    report.table({"rows read", "precision", "recall"}, rows);
  }
  if (suspects.rows.empty()) return;
  std::vector<std::vector<std::string>> rows;
  std::vector<GridTile> tiles;
  for (size_t i = 0; i < std::min<size_t>(suspects.rows.size(), 24); ++i) {
    const SuspectRow& row = suspects.rows[i];
    rows.push_back({row.id, row.given, row.predicted, fmt::format("{:.3f}", row.confidence),
                    fmt::format("{:.3f}", row.given_probability)});
    tiles.push_back(
        {row.image,
         {"given " + row.given, fmt::format("looks {} {:.2f}", row.predicted, row.confidence)}});
  }
  write_png(compose_image_grid(tiles, {.columns = 6}), out_dir / "plots/suspect_labels.png");
  report.image("plots/suspect_labels.png",
               "The most doubtful rows: their given and likely category.");
  report.table({"id", "given", "likely", "its probability", "probability of the given"}, rows);
}

}  // namespace

void write_study_report(const StudyResult& study, const TuneOptions& options,
                        const std::vector<SearchParameter>& space) {
  fs::create_directories(options.out_dir / "plots");
  const std::vector<const TrialResult*> ranked = ranked_trials(study, options.folds);
  std::vector<SearchParameter> varied;
  for (const SearchParameter& parameter : space)
    if (parameter.kind != SearchParameter::Kind::Fixed) varied.push_back(parameter);

  HtmlReport report("Tuning study: " + options.out_dir.filename().string());
  add_summary(report, study, options, ranked);
  if (!ranked.empty()) {
    add_best_trials(report, ranked, varied, options.folds);
    report.section("Score against each option");
    for (const SearchParameter& parameter : varied)
      add_option_chart(report, ranked, parameter, options.out_dir);
  }
  add_progress_chart(report, study, options.folds, options.out_dir);
  add_rung_chart(report, study, options.out_dir);
  if (study.suspects) add_suspect_labels(report, *study.suspects, options.out_dir);
  report.write(options.out_dir / "report.html");
}

}  // namespace garmentnet
