// `garmentnet tune`: a hyper-parameter study. Trials draw training options from a search space;
// each trial trains once per stratified cross-validation fold (train_model with --folds/--fold),
// all in one process so images are decoded once and a frozen backbone's features computed once
// for the whole study. Every finished fold is recorded atomically in study.json (and
// trials.parquet), so a killed study resumes without re-running them. The best trial's
// out-of-fold predictions point at training rows whose category is probably wrong.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "train/train_options.h"

namespace garmentnet {

class TrainingResources;
struct TrainResult;

// One option of the search space (an option name of config.json, as set_option takes it).
struct SearchParameter {
  enum class Kind {
    Fixed,       // always `values[0]`
    Choice,      // one of `values`
    IntRange,    // an integer in [low, high]
    Uniform,     // a number in [low, high]
    LogUniform,  // a number in [low, high], uniform in its logarithm (learning rates)
  };
  std::string name;
  Kind kind = Kind::Fixed;
  std::vector<nlohmann::json> values;
  double low = 0;
  double high = 0;

  // Values for a grid search: the choices, every integer of a range of at most 10 (else 5 evenly
  // spaced), or 3 points of a continuous range (its ends and middle, geometric for log-uniform).
  std::vector<nlohmann::json> grid() const;
  nlohmann::json draw(std::mt19937_64& rng) const;
};

// A search space file: an object of option name → a plain value (fixed), or
// {"choice": [...]}, {"int": [low, high]}, {"uniform": [low, high]}, {"log_uniform": [low, high]}.
// InputError naming the option for an unknown option, kind or a bad range.
std::vector<SearchParameter> parse_search_space(const nlohmann::json& space);
// The space of `garmentnet tune` without --space: learning rates, weight decay, dropout, label
// smoothing and augmentation.
nlohmann::json builtin_search_space();

enum class SearchStrategy {
  Random,  // every trial draws every option
  Grid,    // the trials walk the grid of the space
  Tpe,     // random for the first kTpeStartupTrials, then proposed by TPE (tpe.h)
};
inline constexpr auto kSearchStrategies = choice_names<SearchStrategy>(
    std::pair{"random", SearchStrategy::Random}, std::pair{"grid", SearchStrategy::Grid},
    std::pair{"tpe", SearchStrategy::Tpe});

struct TuneOptions {
  TrainOptions base;  // data_dir and every option the space leaves alone
  std::filesystem::path out_dir;
  nlohmann::json space;  // as parse_search_space reads it
  SearchStrategy strategy = SearchStrategy::Random;
  int trials = 20;            // at most this many trials (a grid: at most its size)
  double budget_minutes = 0;  // > 0: no fold starts after this long
  int folds = 3;
  uint64_t seed = 42;   // the trials' draws and the folds
  bool resume = false;  // continue the study in out_dir
  // Pruning of bad trials by asynchronous successive halving (ASHA): at the rung epochs
  // min_epochs × reduction^k, a fold goes on only when its score so far is in the top 1/reduction
  // of the same fold of every trial that reached that epoch. 0 = no pruning.
  int reduction = 3;
  int min_epochs = 1;
};

// A fold's best validation score up to a rung epoch.
struct RungScore {
  int fold = 0;
  int epoch = 0;
  double score = 0;
};

// One trained fold of a trial: its best epoch's validation figures.
struct FoldResult {
  int fold = 0;
  double score = 0;
  std::optional<double> top1, top2, tag_f1;
  int best_epoch = 0;
  double seconds = 0;
};

struct TrialResult {
  int trial = 0;          // 1-based
  nlohmann::json config;  // option name → value drawn (or fixed)
  std::vector<FoldResult> folds;
  std::string error;                // the options could not be trained (InputError's message)
  std::vector<RungScore> rungs;     // every rung its folds reached
  std::optional<RungScore> pruned;  // the rung where the pruning stopped it

  // Every fold trained to its end: neither failed nor pruned.
  bool complete(int folds_per_trial) const;
  double mean_score() const;
  double score_spread() const;  // standard deviation over folds
};

// A training row whose category is probably wrong (eval/suspect_labels.h), found from the best
// trial's out-of-fold predictions.
struct SuspectRow {
  std::string id;
  std::filesystem::path image;
  std::string given;
  std::string predicted;
  double confidence = 0;         // the out-of-fold probability of `predicted`
  double given_probability = 0;  // and of `given`
};

struct SuspectSummary {
  std::vector<SuspectRow> rows;  // most doubtful first
  size_t rows_checked = 0;
  // When the dataset records the categories it was given wrong (make-dataset --label-noise):
  // how many of the rows checked, and the suspects' precision and recall against them.
  size_t known_wrong = 0;
  std::optional<double> precision, recall;
  // Then also: the k rows with the lowest probability of their given category, for k of ¼, ½, 1
  // and 2 times the known wrong count: the precision and recall of reading from the top.
  struct AtRank {
    size_t rows = 0;
    double precision = 0;
    double recall = 0;
  };
  std::vector<AtRank> most_doubtful;
};

struct StudyResult {
  std::vector<TrialResult> trials;
  std::optional<size_t> best;  // index of the complete trial with the highest mean score
  bool interrupted = false;    // stopped by Ctrl-C / SIGTERM: --resume continues
  std::optional<SuspectSummary> suspects;  // once a trial is complete
};

// Runs (or with resume continues) the study in out_dir: study.json, trials.parquet,
// best_config.json, suspect_labels.parquet, report.html and trials/NNN/fold-K run folders (each
// with out_of_fold.parquet: the category probabilities of its validation rows). InputError when
// out_dir holds a study and resume is off, or the study there was started with another space,
// strategy, folds or seed.
StudyResult run_study(const TuneOptions& options, TrainingResources& resources,
                      const std::atomic<bool>* stop_requested);

// Trains the best complete trial's options on every row of the training table into out_dir/refit
// (a run folder with model.gnm and report.html): as many epochs as its folds' median best epoch,
// the last epoch kept, tag thresholds the mean of its fold models' (each tuned on rows its fold
// model never saw). The model to evaluate and serve. InputError when no trial is complete.
TrainResult refit_best_trial(const StudyResult& study, const TuneOptions& options,
                             TrainingResources& resources, const std::atomic<bool>* stop_requested);

// Writes the best complete trial's fold models as one ensemble file, out_dir/ensemble.gnm, which
// predict, evaluate and serve use as one model averaging its members; returns its path.
// InputError when no trial is complete.
std::filesystem::path write_best_trial_ensemble(const StudyResult& study,
                                                const TuneOptions& options);

}  // namespace garmentnet
