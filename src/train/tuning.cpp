#include "train/tuning.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/table.h"
#include "eval/suspect_labels.h"
#include "model/ensemble.h"
#include "model/model_file.h"
#include "train/study_report.h"
#include "train/tpe.h"
#include "train/trainer.h"
#include "train/training_observer.h"

namespace garmentnet {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The run folder of a trial's fold.
fs::path fold_dir(const TuneOptions& options, int trial, int fold) {
  return options.out_dir / fmt::format("trials/{:03d}/fold-{}", trial, fold);
}

constexpr std::pair<SearchParameter::Kind, std::string_view> kKindNames[] = {
    {SearchParameter::Kind::Choice, "choice"},
    {SearchParameter::Kind::IntRange, "int"},
    {SearchParameter::Kind::Uniform, "uniform"},
    {SearchParameter::Kind::LogUniform, "log_uniform"}};

SearchParameter parse_parameter(const std::string& name, const json& spec) {
  SearchParameter parameter{.name = name};
  // A plain value, or an object that is not a range, is the option's fixed value.
  if (!spec.is_object() || spec.size() != 1) {
    parameter.values = {spec};
    return parameter;
  }
  const auto& [kind_name, arguments] = *spec.items().begin();
  bool known = false;
  for (const auto& [kind, kind_text] : kKindNames) {
    if (kind_name == kind_text) {
      parameter.kind = kind;
      known = true;
    }
  }
  if (!known)
    fail("search space, option '{}': '{}' is unknown: use choice, int, uniform or log_uniform",
         name, kind_name);
  if (!arguments.is_array() || arguments.empty())
    fail("search space, option '{}': {} takes a list", name, kind_name);
  if (parameter.kind == SearchParameter::Kind::Choice) {
    parameter.values = arguments.get<std::vector<json>>();
    return parameter;
  }
  const bool numbers =
      arguments.size() == 2 && arguments[0].is_number() && arguments[1].is_number();
  if (!numbers || arguments[0].get<double>() > arguments[1].get<double>())
    fail("search space, option '{}': {} takes [low, high] with low <= high, not {}", name,
         kind_name, arguments.dump());
  parameter.low = arguments[0].get<double>();
  parameter.high = arguments[1].get<double>();
  if (parameter.kind == SearchParameter::Kind::LogUniform && parameter.low <= 0)
    fail("search space, option '{}': log_uniform needs low > 0", name);
  if (parameter.kind == SearchParameter::Kind::IntRange &&
      (!arguments[0].is_number_integer() || !arguments[1].is_number_integer()))
    fail("search space, option '{}': int takes whole numbers, not {}", name, arguments.dump());
  return parameter;
}

// The options of trial `trial` (1-based): drawn from its own random stream (so a resumed study
// draws the same), proposed by TPE from the trials before it (past its start-up trials), or the
// trial-th point of the grid, the last option changing fastest.
json trial_config(const std::vector<SearchParameter>& space, SearchStrategy strategy, uint64_t seed,
                  int trial, const std::vector<ScoredConfig>& history) {
  json config = json::object();
  std::mt19937_64 rng(seed * 1000003u + static_cast<uint64_t>(trial));
  if (strategy == SearchStrategy::Tpe && trial > kTpeStartupTrials)
    return propose_tpe(space, history, rng);
  if (strategy != SearchStrategy::Grid) {
    for (const SearchParameter& parameter : space) config[parameter.name] = parameter.draw(rng);
    return config;
  }
  size_t index = static_cast<size_t>(trial - 1);
  for (auto parameter = space.rbegin(); parameter != space.rend(); ++parameter) {
    const std::vector<json> grid = parameter->grid();
    config[parameter->name] = grid[index % grid.size()];
    index /= grid.size();
  }
  return config;
}

size_t grid_size(const std::vector<SearchParameter>& space) {
  size_t size = 1;
  for (const SearchParameter& parameter : space) size *= parameter.grid().size();
  return size;
}

json fold_to_json(const FoldResult& fold) {
  json out = {{"fold", fold.fold},
              {"score", fold.score},
              {"best_epoch", fold.best_epoch},
              {"seconds", fold.seconds}};
  if (fold.top1) out["top1"] = *fold.top1;
  if (fold.top2) out["top2"] = *fold.top2;
  if (fold.tag_f1) out["tag_f1"] = *fold.tag_f1;
  return out;
}

FoldResult fold_from_json(const json& in) {
  FoldResult fold{.fold = in.at("fold"),
                  .score = in.at("score"),
                  .best_epoch = in.at("best_epoch"),
                  .seconds = in.at("seconds")};
  if (in.contains("top1")) fold.top1 = in["top1"].get<double>();
  if (in.contains("top2")) fold.top2 = in["top2"].get<double>();
  if (in.contains("tag_f1")) fold.tag_f1 = in["tag_f1"].get<double>();
  return fold;
}

json rung_to_json(const RungScore& rung) {
  return {{"fold", rung.fold}, {"epoch", rung.epoch}, {"score", rung.score}};
}

RungScore rung_from_json(const json& in) {
  return {.fold = in.at("fold"), .epoch = in.at("epoch"), .score = in.at("score")};
}

json trial_to_json(const TrialResult& trial) {
  json folds = json::array();
  for (const FoldResult& fold : trial.folds) folds.push_back(fold_to_json(fold));
  json rungs = json::array();
  for (const RungScore& rung : trial.rungs) rungs.push_back(rung_to_json(rung));
  json out = {{"trial", trial.trial}, {"config", trial.config}, {"folds", folds}, {"rungs", rungs}};
  if (!trial.error.empty()) out["error"] = trial.error;
  if (trial.pruned) out["pruned"] = rung_to_json(*trial.pruned);
  return out;
}

TrialResult trial_from_json(const json& in) {
  TrialResult trial{.trial = in.at("trial"), .config = in.at("config")};
  for (const json& fold : in.at("folds")) trial.folds.push_back(fold_from_json(fold));
  for (const json& rung : in.value("rungs", json::array()))
    trial.rungs.push_back(rung_from_json(rung));
  trial.error = in.value("error", "");
  if (in.contains("pruned")) trial.pruned = rung_from_json(in["pruned"]);
  return trial;
}

// ASHA's decision at the rung epochs of one fold: the fold goes on only when its best validation
// score so far is in the top 1/reduction of the scores of the same fold of every trial at that
// epoch, itself included (while fewer than `reduction` have reached it: only the best goes on),
// as Optuna's successive-halving pruner decides. Rungs and the pruning land in `trial`.
class RungPruner : public TrainingObserver {
 public:
  RungPruner(const std::vector<TrialResult>& trials, TrialResult& trial, int fold,
             const TuneOptions& options, int epochs)
      : trials_(trials), trial_(trial), fold_(fold), options_(options), epochs_(epochs) {}

  bool stop_after(const EpochEnd& end) override {
    best_ = std::max(best_, end.record.validation.score);
    const int epoch = end.record.epoch;
    if (!is_rung(epoch)) return false;
    trial_.rungs.push_back({fold_, epoch, best_});
    std::vector<double> competing;
    for (const TrialResult& trial : trials_) {
      for (const RungScore& rung : trial.rungs)
        if (rung.fold == fold_ && rung.epoch == epoch) competing.push_back(rung.score);
    }
    std::sort(competing.begin(), competing.end(), std::greater<>());
    const size_t promoted = std::max<size_t>(competing.size() / options_.reduction, 1);
    if (best_ >= competing[promoted - 1]) return false;
    trial_.pruned = trial_.rungs.back();
    spdlog::info(
        "trial {} pruned at fold {} epoch {}: score {:.4f}, below the top {} of the {} folds at "
        "that epoch ({:.4f})",
        trial_.trial, fold_ + 1, epoch, best_, promoted, competing.size(), competing[promoted - 1]);
    return true;
  }

 private:
  // Rungs: min_epochs × reduction^k before the last epoch (which needs no decision).
  bool is_rung(int epoch) const {
    if (options_.reduction < 2 || epoch >= epochs_) return false;
    for (int rung = options_.min_epochs; rung <= epoch; rung *= options_.reduction)
      if (rung == epoch) return true;
    return false;
  }

  const std::vector<TrialResult>& trials_;
  TrialResult& trial_;
  int fold_;
  const TuneOptions& options_;
  int epochs_;
  double best_ = -std::numeric_limits<double>::infinity();
};

// trials.parquet: a row per trained fold (status "finished"), per pruned trial ("pruned": the
// fold and its score at the rung epoch where it stopped, that epoch as best_epoch) and per trial
// that could not be trained ("failed", with the error), each with the trial's options as columns.
void write_trials_table(const std::vector<TrialResult>& trials,
                        const std::vector<SearchParameter>& space, const fs::path& file) {
  std::vector<Column> columns = {{"trial", ColumnType::Int64},    {"status", ColumnType::String},
                                 {"fold", ColumnType::Int64},     {"score", ColumnType::Double},
                                 {"top1", ColumnType::Double},    {"top2", ColumnType::Double},
                                 {"tag_f1", ColumnType::Double},  {"best_epoch", ColumnType::Int64},
                                 {"seconds", ColumnType::Double}, {"error", ColumnType::String}};
  for (const SearchParameter& parameter : space) {
    // A column's type is its values' kind: whole numbers, numbers, or text.
    ColumnType type = ColumnType::Int64;
    for (const TrialResult& trial : trials) {
      const json& value = trial.config.at(parameter.name);
      if (!value.is_number_integer() && !value.is_boolean())
        type = value.is_number() && type != ColumnType::String ? ColumnType::Double
                                                               : ColumnType::String;
    }
    columns.push_back({parameter.name, type});
  }
  const auto cell = [](const auto& value) -> Value {
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::optional<double>>) {
      return value ? Value(*value) : Value();
    } else if constexpr (std::is_integral_v<std::decay_t<decltype(value)>>) {
      return static_cast<int64_t>(value);
    } else {
      return Value(value);
    }
  };
  const auto add_row = [&](const TrialResult& trial, std::vector<Value> cells) {
    cells.insert(cells.begin(), cell(trial.trial));
    for (const SearchParameter& parameter : space) {
      const json& option = trial.config.at(parameter.name);
      Value value = option.is_number_integer() || option.is_boolean() ? Value(option.get<int64_t>())
                    : option.is_number()                              ? Value(option.get<double>())
                    : option.is_string() ? Value(option.get<std::string>())
                                         : Value(option.dump());
      const ColumnType type = columns[cells.size()].type;
      if (type == ColumnType::Double && std::holds_alternative<int64_t>(value))
        value = static_cast<double>(std::get<int64_t>(value));
      if (type == ColumnType::String && !std::holds_alternative<std::string>(value))
        value = option.dump();
      cells.push_back(std::move(value));
    }
    for (size_t c = 0; c < columns.size(); ++c) columns[c].values.push_back(std::move(cells[c]));
  };
  for (const TrialResult& trial : trials) {
    for (const FoldResult& fold : trial.folds) {
      add_row(trial, {cell(std::string("finished")), cell(fold.fold), cell(fold.score),
                      cell(fold.top1), cell(fold.top2), cell(fold.tag_f1), cell(fold.best_epoch),
                      cell(fold.seconds), Value()});
    }
    if (trial.pruned) {
      add_row(trial,
              {cell(std::string("pruned")), cell(trial.pruned->fold), cell(trial.pruned->score),
               Value(), Value(), Value(), cell(trial.pruned->epoch), Value(), Value()});
    }
    if (!trial.error.empty()) {
      add_row(trial, {cell(std::string("failed")), Value(), Value(), Value(), Value(), Value(),
                      Value(), Value(), cell(trial.error)});
    }
  }
  Table table;
  for (Column& column : columns) table.add_column(std::move(column));
  write_table(table, file);
}

constexpr std::string_view kProbabilityPrefix = "p:";

// out_of_fold.parquet of a fold: each validation row's id, image, given category and the
// probability of every category ("p:<class>"), from the fold's best epoch.
void write_out_of_fold(const TrainResult& result, const fs::path& file) {
  const HeadSpec* category = result.spec.category_head();
  if (category == nullptr || result.best_validation.probabilities.empty()) return;
  const std::vector<float>& probabilities = result.best_validation.probabilities.at(category->name);
  const std::vector<int64_t>& labels = result.best_validation.labels.at(category->name);
  const size_t classes = category->classes.size();
  std::vector<Column> columns = {
      {"id", ColumnType::String}, {"image", ColumnType::String}, {"label", ColumnType::String}};
  for (const std::string& name : category->classes)
    columns.push_back({std::string(kProbabilityPrefix) + name, ColumnType::Double});
  for (size_t row = 0; row < labels.size(); ++row) {
    columns[0].values.emplace_back(result.validation_ids[row]);
    columns[1].values.emplace_back(result.validation_images[row].string());
    columns[2].values.push_back(
        labels[row] >= 0 ? Value(category->classes[static_cast<size_t>(labels[row])]) : Value());
    for (size_t j = 0; j < classes; ++j)
      columns[3 + j].values.emplace_back(static_cast<double>(probabilities[row * classes + j]));
  }
  Table table;
  for (Column& column : columns) table.add_column(std::move(column));
  write_table(table, file);
}

// The ids whose category make-dataset --label-noise changed (its label_noise.parquet), if any.
std::optional<std::set<std::string>> known_wrong_labels(const fs::path& data_dir) {
  const fs::path file = data_dir / "label_noise.parquet";
  if (!fs::exists(file)) return std::nullopt;
  const Table table = read_table(file);
  std::set<std::string> ids;
  for (const Value& id : table.column("uuid", file.string()).values)
    ids.insert(std::get<std::string>(id));
  return ids;
}

// Suspect labels from the out-of-fold predictions of the best trial's folds, written to
// suspect_labels.parquet; none before a trial is complete.
std::optional<SuspectSummary> find_study_suspects(const StudyResult& study,
                                                  const TuneOptions& options) {
  if (!study.best) return std::nullopt;
  const TrialResult& best = study.trials[*study.best];
  std::vector<fs::path> files;
  for (const FoldResult& fold : best.folds) {
    files.push_back(fold_dir(options, best.trial, fold.fold) / "out_of_fold.parquet");
    if (!fs::exists(files.back())) return std::nullopt;
  }
  const Table table = read_tables(files);
  std::vector<std::string> classes;
  std::vector<const Column*> probability_columns;
  for (const Column& column : table.columns()) {
    if (!column.name.starts_with(kProbabilityPrefix)) continue;
    classes.push_back(column.name.substr(kProbabilityPrefix.size()));
    probability_columns.push_back(&column);
  }
  const size_t rows = table.num_rows();
  std::vector<float> probabilities(rows * classes.size());
  std::vector<int64_t> labels(rows, -1);
  const Column& given = table.column("label");
  const Column& row_ids = table.column("id");
  const Column& row_images = table.column("image");
  for (size_t row = 0; row < rows; ++row) {
    for (size_t j = 0; j < classes.size(); ++j)
      probabilities[row * classes.size() + j] =
          static_cast<float>(std::get<double>(probability_columns[j]->values[row]));
    if (is_null(given.values[row])) continue;
    const auto found =
        std::find(classes.begin(), classes.end(), std::get<std::string>(given.values[row]));
    if (found != classes.end()) labels[row] = found - classes.begin();
  }
  SuspectSummary summary{.rows_checked = rows};
  Column ids{"id", ColumnType::String}, images{"image", ColumnType::String},
      given_labels{"given_label", ColumnType::String},
      predicted{"predicted_label", ColumnType::String},
      confidence{"confidence", ColumnType::Double},
      given_probability{"given_probability", ColumnType::Double};
  for (const SuspectLabel& suspect : find_suspect_labels(probabilities, labels, classes.size())) {
    SuspectRow row{.id = std::get<std::string>(row_ids.values[suspect.row]),
                   .image = std::get<std::string>(row_images.values[suspect.row]),
                   .given = classes[static_cast<size_t>(suspect.given)],
                   .predicted = classes[static_cast<size_t>(suspect.predicted)],
                   .confidence = suspect.confidence,
                   .given_probability = suspect.given_probability};
    ids.values.emplace_back(row.id);
    images.values.emplace_back(row.image.string());
    given_labels.values.emplace_back(row.given);
    predicted.values.emplace_back(row.predicted);
    confidence.values.emplace_back(row.confidence);
    given_probability.values.emplace_back(row.given_probability);
    summary.rows.push_back(std::move(row));
  }
  Table suspects;
  for (Column* column : {&ids, &images, &given_labels, &predicted, &confidence, &given_probability})
    suspects.add_column(std::move(*column));
  write_table(suspects, options.out_dir / "suspect_labels.parquet");

  if (const auto wrong = known_wrong_labels(options.base.data_dir)) {
    size_t found = 0;
    for (const SuspectRow& row : summary.rows) found += wrong->count(row.id);
    for (const Value& id : row_ids.values)
      summary.known_wrong += wrong->count(std::get<std::string>(id));
    if (!summary.rows.empty())
      summary.precision = static_cast<double>(found) / static_cast<double>(summary.rows.size());
    if (summary.known_wrong > 0)
      summary.recall = static_cast<double>(found) / static_cast<double>(summary.known_wrong);
    // Every labelled row, lowest probability of its given category first.
    std::vector<std::pair<double, bool>> ranked;
    for (size_t row = 0; row < rows; ++row) {
      if (labels[row] < 0) continue;
      ranked.emplace_back(probabilities[row * classes.size() + static_cast<size_t>(labels[row])],
                          wrong->count(std::get<std::string>(row_ids.values[row])) > 0);
    }
    std::sort(ranked.begin(), ranked.end());
    for (const double share : {0.25, 0.5, 1.0, 2.0}) {
      const auto k = std::min(
          ranked.size(),
          static_cast<size_t>(std::lround(share * static_cast<double>(summary.known_wrong))));
      if (k == 0) continue;
      const auto hits = static_cast<double>(
          std::count_if(ranked.begin(), ranked.begin() + static_cast<ptrdiff_t>(k),
                        [](const auto& entry) { return entry.second; }));
      summary.most_doubtful.push_back({.rows = k,
                                       .precision = hits / static_cast<double>(k),
                                       .recall = hits / static_cast<double>(summary.known_wrong)});
    }
  }
  return summary;
}

FoldResult fold_result(int fold, const TrainResult& result) {
  const HeadlineFigures headline = headline_figures(result.best_metrics);
  FoldResult out{.fold = fold,
                 .score = result.best_metrics.score,
                 .top1 = headline.top1,
                 .top2 = headline.top2,
                 .tag_f1 = headline.tag_f1,
                 .best_epoch = result.best_epoch};
  for (const EpochRecord& record : result.history) out.seconds += record.seconds;
  return out;
}

std::optional<size_t> best_trial(const std::vector<TrialResult>& trials, int folds) {
  std::optional<size_t> best;
  for (size_t i = 0; i < trials.size(); ++i) {
    if (trials[i].complete(folds) && (!best || trials[i].mean_score() > trials[*best].mean_score()))
      best = i;
  }
  return best;
}

std::string duration_text(double seconds) {
  if (seconds < 90) return fmt::format("{:.0f} s", seconds);
  const auto minutes = static_cast<int>(std::lround(seconds / 60));
  return minutes >= 60 ? fmt::format("{}h{:02d}", minutes / 60, minutes % 60)
                       : fmt::format("{} min", minutes);
}

// The base options with a trial's drawn ones over them.
TrainOptions trial_options(const TrainOptions& base, const json& config) {
  TrainOptions options = base;
  for (const auto& [name, value] : config.items()) set_option(options, name, value);
  return options;
}

// The study's state and its files in out_dir.
class Study {
 public:
  Study(const TuneOptions& options, std::vector<SearchParameter> space)
      : options_(options), space_(std::move(space)) {
    TrainOptions base = options.base;
    base.out_dir.clear();
    settings_ = {
        {"space", options.space},         {"strategy", kSearchStrategies.name_of(options.strategy)},
        {"folds", options.folds},         {"seed", options.seed},
        {"reduction", options.reduction}, {"min_epochs", options.min_epochs},
        {"base", to_json(base)}};
  }

  // Reads the study in out_dir, when there is one and resume is on.
  void open() {
    const fs::path file = options_.out_dir / "study.json";
    if (!fs::exists(file)) {
      if (options_.resume)
        fail("{} holds no study to resume (no study.json)", options_.out_dir.string());
      return;
    }
    if (!options_.resume) {
      fail("{} already holds a study: add --resume to continue it, or give another --out",
           options_.out_dir.string());
    }
    const json saved = json::parse(read_file(file), nullptr, false);
    if (!saved.is_object() || saved.value("settings", json()) != settings_) {
      fail(
          "the study in {} was started with other settings (data, search space, strategy, folds, "
          "seed or base options): resume it with the same ones, or give another --out",
          options_.out_dir.string());
    }
    for (const json& trial : saved.at("trials")) result_.trials.push_back(trial_from_json(trial));
  }

  TrialResult& trial(int number) {
    for (TrialResult& trial : result_.trials)
      if (trial.trial == number) return trial;
    result_.trials.push_back(
        {.trial = number,
         .config = trial_config(space_, options_.strategy, options_.seed, number, history())});
    return result_.trials.back();
  }

  // study.json, trials.parquet and best_config.json, each written atomically.
  void save() {
    result_.best = best_trial(result_.trials, options_.folds);
    json trials = json::array();
    for (const TrialResult& trial : result_.trials) trials.push_back(trial_to_json(trial));
    json study = {{"settings", settings_}, {"trials", trials}};
    if (result_.best) {
      const TrialResult& best = result_.trials[*result_.best];
      study["best"] = {{"trial", best.trial},
                       {"score_mean", best.mean_score()},
                       {"score_spread", best.score_spread()}};
      write_file_atomically(options_.out_dir / "best_config.json", best_config(best).dump(2));
    }
    if (const auto& suspects = result_.suspects) {
      study["suspect_labels"] = {{"rows_checked", suspects->rows_checked},
                                 {"suspects", suspects->rows.size()},
                                 {"known_wrong", suspects->known_wrong}};
      if (suspects->precision) study["suspect_labels"]["precision"] = *suspects->precision;
      if (suspects->recall) study["suspect_labels"]["recall"] = *suspects->recall;
      for (const SuspectSummary::AtRank& at : suspects->most_doubtful) {
        study["suspect_labels"]["most_doubtful"].push_back(
            {{"rows", at.rows}, {"precision", at.precision}, {"recall", at.recall}});
      }
    }
    write_file_atomically(options_.out_dir / "study.json", study.dump(2));
    if (!result_.trials.empty())
      write_trials_table(result_.trials, space_, options_.out_dir / "trials.parquet");
  }

  StudyResult& result() { return result_; }

 private:
  // The finished trials as TPE learns from them: complete ones with their mean score, pruned and
  // failed ones as bad.
  std::vector<ScoredConfig> history() const {
    std::vector<ScoredConfig> scored;
    for (const TrialResult& trial : result_.trials) {
      if (trial.complete(options_.folds)) {
        scored.push_back({.config = trial.config, .score = trial.mean_score()});
      } else if (trial.pruned || !trial.error.empty()) {
        scored.push_back({.config = trial.config, .bad = true});
      }
    }
    return scored;
  }

  // The winning trial's options over the base ones, as config.json writes them.
  json best_config(const TrialResult& trial) const {
    const json all = to_json(trial_options(options_.base, trial.config));
    json config = json::object();
    // An empty text is a choice left to the run (transfer: from the backbone).
    for (const std::string& name : settable_option_names())
      if (all.at(name) != "") config[name] = all.at(name);
    return config;
  }

  const TuneOptions& options_;
  std::vector<SearchParameter> space_;
  json settings_;
  StudyResult result_;
};

enum class FoldOutcome {
  Recorded,     // trained to its end and recorded
  TrialEnded,   // pruned, or the trial's options cannot be trained: on to the next trial
  StudyStopped  // a stop was requested: the fold is not recorded
};

// Trains fold `fold` of `trial` (again, when a killed study left it half done) and records it.
FoldOutcome run_fold(Study& study, TrialResult& trial, int fold, const TuneOptions& options,
                     TrainingResources& resources, const std::atomic<bool>* stop_requested) {
  TrainOptions run = trial_options(options.base, trial.config);
  run.seed = options.seed;
  run.folds = options.folds;
  run.fold = fold;
  run.out_dir = fold_dir(options, trial.trial, fold);
  fs::remove_all(run.out_dir);
  std::erase_if(trial.rungs, [&](const RungScore& rung) { return rung.fold == fold; });
  RungPruner pruner(study.result().trials, trial, fold, options, run.epochs);
  TrainResult result;
  try {
    result =
        train_model(run, resources, {.observers = {&pruner}, .stop_requested = stop_requested});
  } catch (const InputError& error) {
    trial.error = error.what();
    spdlog::warn("trial {} cannot be trained, the study goes on without it: {}", trial.trial,
                 trial.error);
    study.save();
    return FoldOutcome::TrialEnded;
  }
  if (result.interrupted) return FoldOutcome::StudyStopped;
  if (!trial.pruned) {
    write_out_of_fold(result, run.out_dir / "out_of_fold.parquet");
    trial.folds.push_back(fold_result(fold, result));
  }
  study.save();
  return trial.pruned ? FoldOutcome::TrialEnded : FoldOutcome::Recorded;
}

// The trials and their folds that are not recorded yet, until the trials, the budget or a stop
// request ends the study; a progress line after every fold.
void run_trials(Study& study, const TuneOptions& options, const std::vector<SearchParameter>& space,
                TrainingResources& resources, const std::atomic<bool>* stop_requested) {
  const int trials = options.strategy == SearchStrategy::Grid
                         ? static_cast<int>(std::min<size_t>(grid_size(space), options.trials))
                         : options.trials;
  const auto started = Clock::now();
  double trained_seconds = 0;
  int trained_here = 0;
  for (int number = 1; number <= trials; ++number) {
    TrialResult& trial = study.trial(number);
    for (int fold = 0; fold < options.folds && trial.error.empty() && !trial.pruned; ++fold) {
      if (std::any_of(trial.folds.begin(), trial.folds.end(),
                      [&](const FoldResult& done) { return done.fold == fold; }))
        continue;
      const double minutes = std::chrono::duration<double>(Clock::now() - started).count() / 60;
      if (options.budget_minutes > 0 && minutes >= options.budget_minutes) {
        spdlog::info("the budget of {} minutes is spent: no more folds start",
                     options.budget_minutes);
        return;
      }
      spdlog::info("trial {}/{} fold {}/{}: {}", number, trials, fold + 1, options.folds,
                   trial.config.dump());
      const FoldOutcome outcome =
          stop_requested && *stop_requested
              ? FoldOutcome::StudyStopped
              : run_fold(study, trial, fold, options, resources, stop_requested);
      if (outcome == FoldOutcome::StudyStopped) {
        study.result().interrupted = true;
        return;
      }
      if (outcome != FoldOutcome::Recorded) break;
      trained_seconds += trial.folds.back().seconds;
      ++trained_here;
      int folds_done = 0;
      for (const TrialResult& t : study.result().trials)
        folds_done += static_cast<int>(t.folds.size());
      const std::optional<size_t> best = study.result().best;
      const int total_folds = trials * options.folds;
      double seconds_left = trained_seconds / trained_here * (total_folds - folds_done);
      if (options.budget_minutes > 0) {
        const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
        seconds_left = std::clamp(options.budget_minutes * 60 - elapsed, 0.0, seconds_left);
      }
      spdlog::info(
          "trial {} fold {}: score {:.4f} | {}/{} folds, about {} left | best: {}", number,
          fold + 1, trial.folds.back().score, folds_done, total_folds, duration_text(seconds_left),
          best ? fmt::format("trial {} {:.4f} ± {:.4f}", study.result().trials[*best].trial,
                             study.result().trials[*best].mean_score(),
                             study.result().trials[*best].score_spread())
               : std::string("none complete yet"));
    }
  }
}

}  // namespace

std::vector<json> SearchParameter::grid() const {
  switch (kind) {
    case Kind::Fixed:
    case Kind::Choice:
      return values;
    case Kind::IntRange: {
      const auto from = static_cast<int64_t>(low), to = static_cast<int64_t>(high);
      std::vector<json> points;
      const int64_t count = to - from + 1;
      if (count <= 10) {
        for (int64_t value = from; value <= to; ++value) points.emplace_back(value);
      } else {
        for (int i = 0; i < 5; ++i) points.emplace_back(from + (to - from) * i / 4);
      }
      return points;
    }
    case Kind::Uniform:
      return {low, (low + high) / 2, high};
    case Kind::LogUniform:
      return {low, std::sqrt(low * high), high};
  }
  return values;
}

json SearchParameter::draw(std::mt19937_64& rng) const {
  switch (kind) {
    case Kind::Fixed:
      return values.front();
    case Kind::Choice:
      return values[std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng)];
    case Kind::IntRange:
      return std::uniform_int_distribution<int64_t>(static_cast<int64_t>(low),
                                                    static_cast<int64_t>(high))(rng);
    case Kind::Uniform:
      return std::uniform_real_distribution<double>(low, high)(rng);
    case Kind::LogUniform:
      return std::exp(std::uniform_real_distribution<double>(std::log(low), std::log(high))(rng));
  }
  return values.front();
}

std::vector<SearchParameter> parse_search_space(const json& space) {
  if (!space.is_object() || space.empty())
    fail("a search space is a JSON object of option name → value or range, not {}",
         space.dump().substr(0, 80));
  std::vector<SearchParameter> parameters;
  for (const auto& [name, spec] : space.items()) {
    if (name == "seed")
      fail("search space: 'seed' is the study's own (--seed): it chooses the folds of every trial");
    SearchParameter parameter = parse_parameter(name, spec);
    // Every value must be one the option takes.
    TrainOptions probe;
    for (const json& value : parameter.kind == SearchParameter::Kind::Choice ||
                                     parameter.kind == SearchParameter::Kind::Fixed
                                 ? parameter.values
                                 : parameter.grid())
      set_option(probe, name, value);
    parameters.push_back(std::move(parameter));
  }
  return parameters;
}

json builtin_search_space() {
  return {{"head_lr", {{"log_uniform", {3e-4, 1e-2}}}},
          {"backbone_lr", {{"log_uniform", {1e-4, 3e-3}}}},
          {"weight_decay", {{"log_uniform", {1e-5, 1e-3}}}},
          {"dropout", {{"uniform", {0.0, 0.5}}}},
          {"label_smoothing", {{"uniform", {0.0, 0.15}}}},
          {"augment", {{"choice", {"none", "light", "standard"}}}}};
}

bool TrialResult::complete(int folds_per_trial) const {
  return error.empty() && !pruned && static_cast<int>(folds.size()) == folds_per_trial;
}

double TrialResult::mean_score() const {
  if (folds.empty()) return 0;
  double sum = 0;
  for (const FoldResult& fold : folds) sum += fold.score;
  return sum / static_cast<double>(folds.size());
}

double TrialResult::score_spread() const {
  if (folds.size() < 2) return 0;
  const double mean = mean_score();
  double squares = 0;
  for (const FoldResult& fold : folds) squares += (fold.score - mean) * (fold.score - mean);
  return std::sqrt(squares / static_cast<double>(folds.size() - 1));
}

StudyResult run_study(const TuneOptions& options, TrainingResources& resources,
                      const std::atomic<bool>* stop_requested) {
  if (options.folds < 2) fail("--folds must be at least 2");
  if (options.trials < 1) fail("--trials must be at least 1");
  if (options.reduction == 1 || options.reduction < 0)
    fail("--reduction-factor must be 0 (no pruning) or at least 2");
  if (options.min_epochs < 1) fail("--min-epochs must be at least 1");
  const std::vector<SearchParameter> space = parse_search_space(options.space);
  Study study(options, space);
  study.open();
  fs::create_directories(options.out_dir);
  study.save();
  run_trials(study, options, space, resources, stop_requested);
  study.result().suspects = find_study_suspects(study.result(), options);
  if (const auto& suspects = study.result().suspects) {
    spdlog::info("{} of {} training rows have a suspect category: {}", suspects->rows.size(),
                 suspects->rows_checked, (options.out_dir / "suspect_labels.parquet").string());
    if (suspects->precision && suspects->recall) {
      spdlog::info(
          "against the {} categories the dataset records as wrong: precision {:.3f}, recall {:.3f}",
          suspects->known_wrong, *suspects->precision, *suspects->recall);
    }
    study.save();
  }
  try {
    write_study_report(study.result(), options, space);
  } catch (const InputError& error) {
    spdlog::warn("the study's report.html could not be written: {}", error.what());
  }
  return study.result();
}

TrainResult refit_best_trial(const StudyResult& study, const TuneOptions& options,
                             TrainingResources& resources,
                             const std::atomic<bool>* stop_requested) {
  if (!study.best) fail("no trial finished all its folds: there is nothing to refit");
  const TrialResult& best = study.trials[*study.best];
  TrainOptions run = trial_options(options.base, best.config);
  run.seed = options.seed;
  run.out_dir = options.out_dir / "refit";
  run.report = true;
  run.validation_fraction = 0;  // every row trains
  std::vector<int> best_epochs;
  for (const FoldResult& fold : best.folds) best_epochs.push_back(fold.best_epoch);
  std::nth_element(best_epochs.begin(), best_epochs.begin() + best_epochs.size() / 2,
                   best_epochs.end());
  run.epochs = std::max(1, best_epochs[best_epochs.size() / 2]);
  fs::remove_all(run.out_dir);  // a refit a stopped study left half done
  spdlog::info("refitting trial {}'s options on every row of the training table for {} epochs: {}",
               best.trial, run.epochs, run.out_dir.string());
  TrainResult result = train_model(run, resources, {.stop_requested = stop_requested});
  if (result.interrupted) return result;
  std::vector<ModelBundle> folds;
  for (const FoldResult& fold : best.folds)
    folds.push_back(load_model_file(fold_dir(options, best.trial, fold.fold) / "model.gnm"));
  ModelBundle refit = load_model_file(result.model_path);
  for (const HeadSpec& head : refit.model->spec().heads)
    if (head.kind == HeadKind::MultiLabel)
      refit.tag_thresholds[head.name] = mean_thresholds(folds, head.name);
  save_model_file(refit, result.model_path);
  return result;
}

fs::path write_best_trial_ensemble(const StudyResult& study, const TuneOptions& options) {
  if (!study.best) fail("no trial finished all its folds: there is no ensemble to make");
  const TrialResult& best = study.trials[*study.best];
  std::vector<fs::path> models;
  for (const FoldResult& fold : best.folds)
    models.push_back(fold_dir(options, best.trial, fold.fold) / "model.gnm");
  const fs::path out = options.out_dir / "ensemble.gnm";
  write_ensemble_file(
      models,
      {{"ensemble_of", fmt::format("trial {}'s {} fold models", best.trial, models.size())},
       {"options", best.config}},
      out);
  return out;
}

}  // namespace garmentnet
