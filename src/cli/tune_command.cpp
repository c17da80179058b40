// `garmentnet tune`: flags → TuneOptions; threads and Ctrl-C/SIGTERM handling set here.
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/stop_signals.h"
#include "core/thread_pool.h"
#include "train/trainer.h"
#include "train/tuning.h"

namespace garmentnet::cli {
namespace {

// NAME=VALUE of --fix: VALUE as JSON (numbers, true/false), else as text.
std::pair<std::string, nlohmann::json> fixed_option(const std::string& given) {
  const size_t equals = given.find('=');
  if (equals == std::string::npos || equals == 0)
    fail("--fix takes NAME=VALUE (e.g. --fix epochs=6), not '{}'", given);
  const std::string text = given.substr(equals + 1);
  nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
  if (value.is_discarded() || value.is_object() || value.is_array()) value = text;
  return {given.substr(0, equals), value};
}

}  // namespace

void add_tune_command(CLI::App& app) {
  auto options = std::make_shared<TuneOptions>();
  auto space_file = std::make_shared<std::filesystem::path>();
  auto strategy = std::make_shared<std::string>("random");
  auto fixed = std::make_shared<std::vector<std::string>>();
  auto threads = std::make_shared<int>(0);
  CLI::App* command = app.add_subcommand(
      "tune",
      "Hyper-parameter search: trials of training options scored by stratified k-fold "
      "cross-validation; resumable");
  command->add_option("--data", options->base.data_dir, "Dataset folder (the training table)")
      ->required();
  command->add_option("--out", options->out_dir, "Study folder to write")->required();
  command->add_option("--space", *space_file,
                      "Search space (JSON): option → value, {\"choice\": [...]}, {\"int\": [lo, "
                      "hi]}, {\"uniform\": [lo, hi]} or {\"log_uniform\": [lo, hi]} [default: "
                      "learning rates, weight decay, dropout, label smoothing, augmentation]");
  command->add_option("--fix", *fixed,
                      "NAME=VALUE: a training option every trial uses (e.g. --fix epochs=6 --fix "
                      "backbone=runs/pretrain/backbone.pt); repeatable");
  command
      ->add_option("--strategy", *strategy,
                   "random, grid, or tpe (random for the first 10 trials, then proposed from the "
                   "trials so far)")
      ->check(CLI::IsMember({"random", "grid", "tpe"}))
      ->capture_default_str();
  command->add_option("--trials", options->trials, "Most trials to run")->capture_default_str();
  command->add_option("--budget-minutes", options->budget_minutes,
                      "No fold starts after this many minutes (0 = no limit)");
  command->add_option("--folds", options->folds, "Cross-validation folds")->capture_default_str();
  command->add_option("--seed", options->seed, "Seed of the draws and of the folds")
      ->capture_default_str();
  command
      ->add_option("--reduction-factor", options->reduction,
                   "Pruning (ASHA): at epochs min×factor^k a fold goes on only in the top "
                   "1/factor of the trials' same fold there (0 = no pruning)")
      ->capture_default_str();
  command->add_option("--min-epochs", options->min_epochs, "Pruning: the first rung epoch")
      ->capture_default_str();
  command->add_flag("--resume", options->resume,
                    "Continue the study in --out: finished folds are not trained again");
  command->add_option("--threads", *threads, "Threads (0 = all cores)")->capture_default_str();
  auto refit = std::make_shared<bool>(false);
  command->add_flag("--refit", *refit,
                    "Then train the best options on the training table into --out/refit (the "
                    "model to evaluate and serve)");
  auto ensemble = std::make_shared<bool>(false);
  command->add_flag("--ensemble", *ensemble,
                    "Then write the best trial's fold models as one model, --out/ensemble.gnm, "
                    "whose answer is their mean (K times the compute of one model)");
  command->callback([=] {
    options->strategy = kSearchStrategies.parse(*strategy, "--strategy");
    options->space = space_file->empty()
                         ? builtin_search_space()
                         : nlohmann::json::parse(read_file(*space_file), nullptr, false);
    if (options->space.is_discarded())
      fail("{} is not JSON: a search space is a JSON object", space_file->string());
    options->base.report = false;
    for (const std::string& given : *fixed) {
      const auto [name, value] = fixed_option(given);
      set_option(options->base, name, value);
    }
    const int thread_count = *threads > 0 ? *threads : default_thread_count();
    at::set_num_threads(thread_count);
    TrainingResources resources(thread_count);
    StopSignals signals;
    const StudyResult study = run_study(*options, resources, &signals.requested());
    if (study.interrupted) {
      spdlog::warn("the study stopped; finished folds are kept: add --resume to continue it");
    }
    if (!study.best) {
      fail("no trial finished all its folds: see {}", (options->out_dir / "study.json").string());
    }
    const TrialResult& best = study.trials[*study.best];
    spdlog::info("best: trial {}, score {:.4f} ± {:.4f} over {} folds: {}", best.trial,
                 best.mean_score(), best.score_spread(), best.folds.size(), best.config.dump());
    spdlog::info("its options: {} (`garmentnet train --config` takes them)",
                 (options->out_dir / "best_config.json").string());
    if (study.interrupted) return;
    if (*ensemble) {
      spdlog::info("ensemble of the best trial's fold models: {}",
                   write_best_trial_ensemble(study, *options).string());
    }
    if (!*refit) return;
    const TrainResult refitted = refit_best_trial(study, *options, resources, &signals.requested());
    if (refitted.interrupted) fail("the refit stopped; run tune again with --resume --refit");
    spdlog::info("refit model: {}", refitted.model_path.string());
  });
}

}  // namespace garmentnet::cli
