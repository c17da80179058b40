// `garmentnet train` and `garmentnet pretrain`: flags → TrainOptions, and the process-wide
// settings of a run (threads, Ctrl-C/SIGTERM handling, data-parallel ranks) made here, at the edge.
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/progress.h"
#include "core/stop_signals.h"
#include "core/thread_pool.h"
#include "dist/gloo_data_parallel.h"
#include "dist/local_launcher.h"
#include "train/mlflow_observer.h"
#include "train/trainer.h"
#include "train/transfer_comparison.h"

namespace garmentnet::cli {
namespace {

// A flag taking one name of `names`; any other is an InputError listing them. `target` is the
// choice or an optional one (left unset when the flag is not given).
template <typename Target, typename Choice, size_t N>
CLI::Option* add_choice(CLI::App& command, const std::string& flag, Target& target,
                        const ChoiceNames<Choice, N>& names, const std::string& help) {
  std::string type_name;
  for (const auto& [name, value] : names.entries)
    type_name += (type_name.empty() ? "" : "|") + std::string(name);
  return command
      .add_option_function<std::string>(
          flag,
          [&target, &names, flag](const std::string& given) { target = names.parse(given, flag); },
          help)
      ->type_name(type_name);
}

// Where a run is tracked besides its folder: --mlflow-uri, --experiment, --run-name, --log-model,
// --mlflow-wait.
struct TrackingFlags {
  std::string mlflow_uri;
  std::string experiment;
  std::string run_name;
  bool log_model = false;
  double mlflow_wait_seconds = 15;
};

// How a command's processes are laid out: --threads, --nproc and --dist-timeout.
struct ProcessFlags {
  int threads = 0;
  int nproc = 1;
  int dist_timeout = 300;
};

// The process of one command: LibTorch and the decoding pool get `threads` (0 = all cores),
// Ctrl-C / SIGTERM ask the run to stop at the next step instead of killing it; under a launcher's
// environment (RANK, WORLD_SIZE, ...: torchrun, a PyTorchJob, --nproc) the process joins its
// data-parallel run, and ranks but 0 show only warnings. Rank 0's run is tracked in MLflow when
// --mlflow-uri or MLFLOW_TRACKING_URI names a store.
struct TrainingProcess {
  TrainingProcess(const ProcessFlags& flags, const TrackingFlags& tracking,
                  const TrainOptions& options)
      : threads(flags.threads > 0 ? flags.threads : default_thread_count()),
        resources(this->threads) {
    at::set_num_threads(this->threads);
    hooks.stop_requested = &signals.requested();
    if (const auto environment = distributed_environment()) {
      if (environment->rank > 0) {
        spdlog::set_level(std::max(spdlog::get_level(), spdlog::level::warn));
        Progress::set_shown(false);
      }
      parallel = join_data_parallel(*environment, std::chrono::seconds(flags.dist_timeout));
      hooks.parallel = parallel.get();
      if (environment->rank > 0) return;
    }
    MlflowSettings settings =
        mlflow_settings_from(tracking.mlflow_uri, tracking.experiment, tracking.run_name);
    if (settings.uri.empty()) return;
    settings.final_wait =
        std::chrono::milliseconds(static_cast<int64_t>(tracking.mlflow_wait_seconds * 1000));
    mlflow = std::make_unique<MlflowObserver>(settings, options.out_dir, tracking.log_model);
    hooks.observers.push_back(mlflow.get());
  }
  int threads;
  TrainingResources resources;
  StopSignals signals;
  std::unique_ptr<DataParallel> parallel;
  std::unique_ptr<MlflowObserver> mlflow;
  TrainingHooks hooks;
};

// With --nproc N > 1 this process only starts N ranks of the same command on this machine and
// waits for them: true then, after they ended (an error when one failed).
bool launched_ranks(const ProcessFlags& flags) {
  if (flags.nproc <= 1) return false;
  if (distributed_environment())
    fail(
        "--nproc starts its own ranks, but this process already is one (WORLD_SIZE is set by a "
        "launcher); drop --nproc under torchrun or a PyTorchJob");
  const int threads =
      flags.threads > 0 ? flags.threads : std::max(1, default_thread_count() / flags.nproc);
  const int exit_code =
      launch_local_ranks(flags.nproc, threads, std::chrono::seconds(flags.dist_timeout));
  if (exit_code != 0) throw CLI::RuntimeError(exit_code);
  return true;
}

// The options of a config.json or a study's best_config.json; what belongs to one run (its data,
// folder, validation rows) is left out. Flags given with --config override it.
void apply_config_file(TrainOptions& options, const std::filesystem::path& file) {
  const nlohmann::json config = nlohmann::json::parse(read_file(file), nullptr, false);
  if (!config.is_object())
    fail("--config {}: not a JSON object of training options", file.string());
  const nlohmann::json run_keys = to_json(TrainOptions{});
  const std::vector<std::string> settable = settable_option_names();
  for (const auto& [name, value] : config.items()) {
    if (std::find(settable.begin(), settable.end(), name) == settable.end() &&
        run_keys.contains(name))
      continue;
    set_option(options, name, value);
  }
}

void add_training_flags(CLI::App& command, TrainOptions& o, ProcessFlags& process,
                        TrackingFlags& tracking) {
  command
      .add_option("--data", o.data_dir, "Dataset folder: data.parquet, images/, optional task.json")
      ->required();
  command.add_option("--out", o.out_dir, "Run directory to write")->required();
  // First, so that the flags given after it are applied over it.
  command.add_option_function<std::filesystem::path>(
      "--config", [&o](const std::filesystem::path& file) { apply_config_file(o, file); },
      "Training options from a JSON file (a run's config.json, a study's best_config.json); "
      "other flags override them");
  command.add_option("--epochs", o.epochs, "Maximum epochs")->capture_default_str();
  command.add_option("--batch-size", o.batch_size, "Images per step")->capture_default_str();
  command.add_option("--image-size", o.image_size, "Model input side in pixels")
      ->capture_default_str();
  add_choice(command, "--resize", o.resize, kResizeModes,
             "How images reach the input size [default: stretch]");
  command.add_option("--head-lr", o.head_lr, "Peak learning rate of the heads")
      ->capture_default_str();
  command
      .add_option("--backbone-lr", o.backbone_lr, "Peak learning rate of trained backbone blocks")
      ->capture_default_str();
  command.add_option("--weight-decay", o.weight_decay, "Weight decay")->capture_default_str();
  add_choice(command, "--optimizer", o.optimizer, kOptimizerKinds, "Optimiser [default: adamw]");
  add_choice(command, "--schedule", o.schedule, kLrSchedules,
             "Learning-rate schedule [default: cosine]");
  command.add_option("--warmup-epochs", o.warmup_epochs, "Linear warm-up epochs")
      ->capture_default_str();
  command.add_option("--label-smoothing", o.label_smoothing, "Softmax heads")
      ->capture_default_str();
  command.add_option("--dropout", o.dropout, "Dropout before the heads")->capture_default_str();
  command.add_option("--validation", o.validation,
                     "Validation table (default: a stratified split)");
  command
      .add_option("--validation-fraction", o.validation_fraction,
                  "Share held out for validation (0: none; every row trains, the last epoch is "
                  "the model)")
      ->capture_default_str();
  command.add_option("--folds", o.folds,
                     "Cross-validation: validate on fold --fold of this many stratified folds "
                     "(0 = off)");
  command.add_option("--fold", o.fold, "The validation fold, 0-based, with --folds");
  add_choice(command, "--monitor", o.monitor, kMonitors,
             "Best checkpoint and early stopping on [default: score]");
  command
      .add_option("--patience", o.patience,
                  "Epochs without improvement before stopping (0 = never)")
      ->capture_default_str();
  add_choice(command, "--augment", o.augment, kAugmentationPresets,
             "Training augmentation: standard (flip, rotation, shift, zoom, colour), light (flip "
             "and shift) or none [default: standard; with --resume: the run's own]");
  command.add_option("--seed", o.seed, "Seed of split, weights, shuffling, augmentation")
      ->capture_default_str();
  command
      .add_option("--threads", process.threads, "Threads (0 = all cores; with --nproc: per rank)")
      ->capture_default_str();
  command
      .add_option("--nproc", process.nproc,
                  "Data-parallel over this many processes on this machine, each training on its "
                  "share of every epoch (docs/scale-out.md; under torchrun or a PyTorchJob leave "
                  "it at 1)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  command
      .add_option("--dist-timeout", process.dist_timeout,
                  "Data-parallel: seconds a rank waits at a step for the others before giving up "
                  "(joining waits up to 15 minutes, or this if longer)")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  command.add_flag("--resume", o.resume, "Continue the run in --out from its checkpoint");
  command.add_flag("--strict", o.strict, "Missing images and null labels are errors");
  command.add_flag("!--no-report", o.report, "Skip report.html");
  command.add_option("--mlflow-uri", tracking.mlflow_uri,
                     "Track the run in MLflow: http://HOST:PORT of a tracking server, file:PATH or "
                     "a folder [default: $MLFLOW_TRACKING_URI]");
  command.add_option("--experiment", tracking.experiment,
                     "MLflow experiment, created if missing [default: $MLFLOW_EXPERIMENT_NAME or "
                     "Default]");
  command.add_option("--run-name", tracking.run_name,
                     "MLflow run name [default: the --out folder's name]");
  command.add_flag("--log-model", tracking.log_model, "Also send model.gnm to MLflow");
  command
      .add_option("--mlflow-wait", tracking.mlflow_wait_seconds,
                  "Seconds the end of a run waits for MLflow records still unsent; the rest is "
                  "kept for `garmentnet runs push`")
      ->capture_default_str();
}

void print_result(const TrainResult& result) {
  if (result.interrupted) {
    spdlog::warn("training interrupted after {} completed epoch(s); continue with --resume",
                 result.epochs_run);
    return;
  }
  spdlog::info("best epoch {} of {}{}; model: {}", result.best_epoch, result.epochs_run,
               result.stopped_early ? " (stopped early)" : "", result.model_path.string());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  auto process_flags = std::make_shared<ProcessFlags>();
  auto tracking = std::make_shared<TrackingFlags>();
  CLI::App* command = app.add_subcommand("train", "Train the multi-task model (transfer learning)");
  add_training_flags(*command, *options, *process_flags, *tracking);
  command
      ->add_option("--backbone", options->backbone,
                   "Native architecture (small_cnn, resnet18, resnet50, mobilenet_v2, vgg16), "
                   "torchscript:FILE, or a backbone file from `pretrain`")
      ->capture_default_str();
  add_choice(*command, "--transfer", options->transfer, kTransferModes,
             "[default: scratch for a bare architecture, finetune for a pretrained backbone; "
             "with --resume: the run's own]");
  command
      ->add_option("--unfreeze-blocks", options->unfreeze_blocks,
                   "finetune: last backbone blocks trained")
      ->capture_default_str();
  command->add_flag("!--no-feature-cache", options->feature_cache,
                    "frozen: run the backbone on every step instead of caching its features");
  command
      ->add_option("--feature-views", options->feature_views,
                   "frozen: feature-cache views per image (1 = no augmentation)")
      ->capture_default_str();
  command->callback([options, process_flags, tracking] {
    if (launched_ranks(*process_flags)) return;
    TrainingProcess process(*process_flags, *tracking, *options);
    print_result(train_model(*options, process.resources, process.hooks));
  });
}

void add_pretrain_command(CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  auto process_flags = std::make_shared<ProcessFlags>();
  auto tracking = std::make_shared<TrackingFlags>();
  options->epochs = 8;
  CLI::App* command = app.add_subcommand(
      "pretrain",
      "Train a backbone from scratch on a source dataset and save it for `train --backbone`");
  add_training_flags(*command, *options, *process_flags, *tracking);
  command->add_option("--architecture", options->backbone, "Native architecture to pretrain")
      ->capture_default_str();
  auto compare_on = std::make_shared<std::filesystem::path>();
  auto compare_epochs = std::make_shared<int>(4);
  command->add_option(
      "--compare-on", *compare_on,
      "Then train this target dataset frozen, fine-tuned and from scratch and compare "
      "(transfer.html)");
  command->add_option("--compare-epochs", *compare_epochs, "Epochs of each comparison run")
      ->capture_default_str();
  command->callback([options, process_flags, tracking, compare_on, compare_epochs] {
    if (!compare_on->empty() && options->validation.empty() && options->validation_fraction == 0)
      fail(
          "--compare-on compares the runs' validation figures: give a --validation-fraction above "
          "0 (or leave its default)");
    if (launched_ranks(*process_flags)) return;
    TrainingProcess process(*process_flags, *tracking, *options);
    const TrainResult result = pretrain_backbone(*options, process.resources, process.hooks);
    print_result(result);
    if (compare_on->empty() || result.interrupted) return;
    if (process.parallel) {
      // The comparison's small runs go on in rank 0 alone, from the backbone it saved.
      if (process.parallel->rank() != 0) return;
      process.hooks.parallel = nullptr;
    }
    process.hooks.observers.clear();  // the comparison's runs are not the tracked run
    TrainOptions target = *options;
    target.data_dir = *compare_on;
    target.epochs = *compare_epochs;
    compare_transfer(target, options->out_dir / "backbone.pt", options->backbone, options->out_dir,
                     process.resources, process.hooks);
  });
}

}  // namespace garmentnet::cli
