#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/augmentation_presets.h"
#include "model/backbone.h"
#include "model/model_file.h"
#include "model/traced_model.h"
#include "test_support.h"
#include "train/feature_cache.h"
#include "train/trainer.h"
#include "train/training_data.h"
#include "train/transfer_comparison.h"

namespace garmentnet {
namespace {

TrainOptions quick_options(const std::filesystem::path& out) {
  return testing::quick_train_options(out, 6);
}

nlohmann::json read_json(const std::filesystem::path& path) {
  return nlohmann::json::parse(read_file(path));
}

// The value of a `- **key**: value` line of a model card ("" when there is none).
std::string card_value(const std::string& card, const std::string& key) {
  const std::string marker = "- **" + key + "**: ";
  const size_t at = card.find(marker);
  if (at == std::string::npos) return "";
  const size_t begin = at + marker.size();
  return card.substr(begin, card.find('\n', begin) - begin);
}

// Checks that a finished run's report and model card describe the best epoch of metrics.json
// (the first with the highest validation score).
void expect_report_of_best_epoch(const std::filesystem::path& run) {
  ASSERT_TRUE(std::filesystem::exists(run / "report.html"));
  ASSERT_TRUE(std::filesystem::exists(run / "model_card.md"));
  const auto history = read_json(run / "metrics.json");
  size_t best = 0;
  for (size_t i = 1; i < history.size(); ++i) {
    if (history[i]["val"]["score"].get<double>() > history[best]["val"]["score"].get<double>())
      best = i;
  }
  EXPECT_EQ(load_model_file(run / "model.gnm").metrics["epoch"].get<size_t>(), best + 1);
  const std::string card = read_file(run / "model_card.md");
  EXPECT_EQ(card_value(card, "best epoch"), std::to_string(best + 1)) << card;
  const double top1 = history[best]["val"]["heads"]["cc3"]["top1_accuracy"].get<double>();
  EXPECT_NE(card_value(card, "cc3").find(fmt::format("top-1 {:.1f}%", 100 * top1)),
            std::string::npos)
      << card;
}

TEST(Train, TinyTaskLearnsAboveChanceAndWritesTheRun) {
  testing::TempDir dir;
  TrainOptions o = quick_options(dir / "run");
  o.report = true;
  const TrainResult result = train_model(o, testing::training_resources());
  const auto history = read_json(dir / "run/metrics.json");
  ASSERT_EQ(history.size(), 6u);
  // Loss falls and the category head beats chance (5 classes: 0.2) on validation data.
  EXPECT_LT(history.back()["train"]["loss"].get<double>(),
            history.front()["train"]["loss"].get<double>());
  EXPECT_GT(result.best_metrics.head("cc3").softmax->top1_accuracy, 0.4);
  for (const char* file :
       {"model.gnm", "metrics.csv", "config.json", "train.log", "report.html", "model_card.md",
        "plots/loss.png", "plots/validation_samples.png", "plots/worst_mistakes.png",
        "plots/cc3_confusion.png", "plots/tags_pr.png"}) {
    EXPECT_TRUE(std::filesystem::exists(dir / "run" / file)) << file;
  }
  // The model file carries tuned thresholds and the validation metrics of the best epoch.
  const ModelBundle bundle = load_model_file(result.model_path);
  EXPECT_EQ(bundle.thresholds("tags").size(), 3u);
  EXPECT_EQ(bundle.metrics["epoch"].get<int>(), result.best_epoch);
  EXPECT_EQ(bundle.preprocessing.width, 32);

  // The model card states the work per image, as the graph counter (`bench`) counts it.
  ModelBundle traced = load_model_file(result.model_path);
  traced.model->eval();
  const int64_t macs =
      count_macs(trace_model(traced.model, traced.preprocessing, 2), 2).macs_per_image;
  EXPECT_GT(macs, 100'000);  // small_cnn at 32 px: millions
  const std::string card = read_file(dir / "run/model_card.md");
  EXPECT_EQ(card_value(card, "multiply-accumulates per image"), std::to_string(macs)) << card;
  EXPECT_NE(card_value(card, "FLOPs per image").find("(" + std::to_string(2 * macs) + ":"),
            std::string::npos)
      << card;
  expect_report_of_best_epoch(dir / "run");
}

TEST(Train, PretrainSavesABackboneAndComparesTransferModes) {
  testing::TempDir dir;
  TrainOptions o = quick_options(dir / "pre");
  o.data_dir = testing::tiny_dataset() / "source";
  o.epochs = 2;
  pretrain_backbone(o, testing::training_resources());
  ASSERT_TRUE(std::filesystem::exists(dir / "pre/backbone.pt"));

  TrainOptions target = quick_options(dir / "unused");
  target.epochs = 1;
  const nlohmann::json summary = compare_transfer(target, dir / "pre/backbone.pt", "small_cnn",
                                                  dir / "pre", testing::training_resources());
  ASSERT_EQ(summary["runs"].size(), 3u);
  for (const auto& run : summary["runs"]) {
    EXPECT_GT(run["validation"]["heads"]["cc3"]["top1_accuracy"].get<double>(), 0.0) << run["mode"];
  }
  // The frozen run really kept the pretrained backbone: its features equal the backbone file's.
  ModelBundle frozen = load_model_file(dir / "pre/compare/frozen/model.gnm");
  Backbone pretrained = load_backbone_file(dir / "pre/backbone.pt");
  pretrained->eval();
  const auto input = torch::rand({2, 3, 32, 32});
  EXPECT_TRUE(torch::allclose(frozen.model->features(input), pretrained->forward(input)));
  EXPECT_TRUE(std::filesystem::exists(dir / "pre/transfer.html"));
  EXPECT_TRUE(std::filesystem::exists(dir / "pre/plots/transfer.png"));
}

TEST(Train, RefusesToOverwriteARunAndBadOptions) {
  testing::TempDir dir;
  TrainOptions o = quick_options(dir / "run");
  o.epochs = 1;
  train_model(o, testing::training_resources());
  EXPECT_THROW(train_model(o, testing::training_resources()), InputError);
  o.out_dir = dir / "other";
  o.backbone = "torchscript:missing.pt";
  o.transfer = TransferMode::Scratch;  // scratch needs a native architecture
  EXPECT_NE(testing::error_of([&] {
              train_model(o, testing::training_resources());
            }).find("--transfer scratch trains a native architecture"),
            std::string::npos);
}

TEST(Train, FeatureCacheMatchesRecomputingTheFrozenBackbone) {
  testing::TempDir dir;
  TrainOptions o = quick_options(dir / "cached");
  o.transfer = TransferMode::Frozen;
  o.backbone = "small_cnn";
  o.augment = AugmentationPreset::None;
  o.dropout = 0;
  o.epochs = 2;
  const TrainResult cached = train_model(o, testing::training_resources());
  o.out_dir = dir / "recomputed";
  o.feature_cache = false;
  const TrainResult recomputed = train_model(o, testing::training_resources());
  const double a = cached.best_metrics.loss;
  const double b = recomputed.best_metrics.loss;
  EXPECT_NEAR(a, b, 1e-4 * std::abs(a));
}

TEST(Train, ResumeKeepsTheAugmentationAndReportsABestEpochFromBeforeIt) {
  testing::TempDir dir;
  const auto run = dir / "run";
  TrainOptions o = quick_options(run);
  o.transfer = TransferMode::Frozen;
  o.backbone = "small_cnn";
  o.epochs = 2;
  o.augment = AugmentationPreset::Light;
  train_model(o, testing::training_resources());  // no report
  EXPECT_EQ(read_json(run / "config.json")["augment"], "light");
  EXPECT_EQ(read_json(run / "config.json")["augmentation"],
            augmentation_of(AugmentationPreset::Light).to_json());
  ASSERT_FALSE(std::filesystem::exists(run / "report.html"));

  // One more epoch that cannot improve (learning rate 0, frozen backbone): the best epoch stays
  // before the resume, and the report must be made from its model.
  o.augment.reset();
  o.resume = true;
  o.epochs = 3;
  o.head_lr = 0;
  o.report = true;
  const TrainResult result = train_model(o, testing::training_resources());
  EXPECT_EQ(read_json(run / "config.json")["augment"], "light");
  EXPECT_EQ(read_json(run / "metrics.json").size(), 3u);
  EXPECT_LE(result.best_epoch, 2);
  expect_report_of_best_epoch(run);
}

TEST(Train, CommandLineRefusesAnUnknownAugmentationPreset) {
  testing::TempDir dir;
  const auto result =
      testing::run_garmentnet("train --data " + testing::tiny_dataset().string() + " --out " +
                              (dir / "run").string() + " --augment heavy");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("--augment 'heavy' is unknown: use standard, light or none"),
            std::string::npos)
      << result.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "run"));
}

// Runs `garmentnet train` in the background; returns its pid.
// Waits until metrics.json lists `epochs` epochs (or 120 s pass).
bool wait_for_epochs(const std::filesystem::path& run, size_t epochs) {
  return testing::wait_until([&] { return read_json(run / "metrics.json").size() >= epochs; });
}

TEST(Train, ResumeAfterKillContinuesFromTheNextEpoch) {
  testing::TempDir dir;
  const auto run = dir / "run";
  const std::string arguments =
      "train --data " + testing::tiny_dataset().string() + " --out " + run.string() +
      " --image-size 32 --epochs 12 --batch-size 16 --patience 0 --no-report "
      "--transfer scratch --backbone small_cnn";
  const pid_t pid = testing::start_garmentnet(arguments);
  ASSERT_TRUE(wait_for_epochs(run, 2));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  // The checkpoint, not metrics.json, says where the run stands: a kill between the two writes
  // leaves metrics.json one epoch ahead, and that epoch is then run again.
  const auto done = static_cast<size_t>(
      load_model_file(run / "checkpoint.gnm").metadata["training_state"]["next_epoch"].get<int>());
  ASSERT_GE(done, 1u);
  ASSERT_LT(done, 12u) << "the run finished before it could be killed";

  // Resumed with a report: its best epoch may lie before the kill.
  std::string resume_arguments = arguments + " --resume";
  resume_arguments.erase(resume_arguments.find(" --no-report"), std::string(" --no-report").size());
  const auto resumed = testing::run_garmentnet(resume_arguments);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming at epoch " + std::to_string(done + 1) + " of 12"),
            std::string::npos)
      << resumed.output;
  const auto history = read_json(run / "metrics.json");
  ASSERT_EQ(history.size(), 12u);
  for (size_t i = 0; i < history.size(); ++i) EXPECT_EQ(history[i]["epoch"].get<size_t>(), i + 1);
  expect_report_of_best_epoch(run);
}

// The per-epoch figures of a run's metrics.json that a resume must reproduce exactly.
std::vector<std::array<double, 3>> epoch_figures(const std::filesystem::path& run) {
  std::vector<std::array<double, 3>> figures;
  for (const auto& e : read_json(run / "metrics.json")) {
    figures.push_back({e["train"]["loss"].get<double>(), e["val"]["loss"].get<double>(),
                       e["val"]["score"].get<double>()});
  }
  return figures;
}

// A resumed run's per-epoch figures are those of the uninterrupted run `whole`.
void expect_same_figures(const std::filesystem::path& run, const std::filesystem::path& whole) {
  const auto expected = epoch_figures(whole);
  const auto got = epoch_figures(run);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t e = 0; e < got.size(); ++e) {
    for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(got[e][k], expected[e][k], 1e-6) << "epoch " << e;
  }
}

TEST(Train, SigtermMidEpochThenResumeGivesTheFiguresOfAnUninterruptedRun) {
  testing::TempDir dir;
  const std::string common = "train --data " + testing::tiny_dataset().string() +
                             " --image-size 32 --epochs 4 --batch-size 8 --patience 0 "
                             "--no-report --backbone small_cnn --threads 2 --out ";
  const auto whole = testing::run_garmentnet(common + (dir / "whole").string());
  ASSERT_EQ(whole.exit_code, 0) << whole.output;

  const auto run = dir / "stopped";
  const pid_t pid = testing::start_garmentnet(common + run.string());
  ASSERT_TRUE(wait_for_epochs(run, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // into epoch 2
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The checkpoint is the last epoch boundary, and says so.
  const ModelBundle checkpoint = load_model_file(run / "checkpoint.gnm");
  const int next = checkpoint.metadata["training_state"]["next_epoch"].get<int>();
  EXPECT_EQ(static_cast<size_t>(next), read_json(run / "metrics.json").size());
  ASSERT_LT(next, 4) << "the run finished before the signal";

  const auto resumed = testing::run_garmentnet(common + run.string() + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  expect_same_figures(run, dir / "whole");
}

TEST(Train, AKillBetweenTheCheckpointsTwoWritesStillResumesExactly) {
  testing::TempDir dir;
  const std::string common = "train --data " + testing::tiny_dataset().string() +
                             " --image-size 32 --epochs 3 --batch-size 8 --patience 0 "
                             "--no-report --backbone small_cnn --threads 2 --out ";
  const auto whole = testing::run_garmentnet(common + (dir / "whole").string());
  ASSERT_EQ(whole.exit_code, 0) << whole.output;

  // The process ends after epoch 2's optimiser state is written, before its model file.
  const auto run = dir / "torn";
  const auto crashed =
      testing::run_shell("GARMENTNET_TEST_CRASH_BETWEEN_CHECKPOINT_WRITES=2 " +
                         std::string(GARMENTNET_BINARY) + " " + common + run.string());
  ASSERT_NE(crashed.exit_code, 0) << crashed.output;
  EXPECT_EQ(load_model_file(run / "checkpoint.gnm").metadata["training_state"]["next_epoch"], 1);

  const auto resumed = testing::run_garmentnet(common + run.string() + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(resumed.output.find("fresh"), std::string::npos) << resumed.output;
  expect_same_figures(run, dir / "whole");
  // One optimiser file is left: the last checkpoint's.
  size_t optimizer_files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(run))
    optimizer_files += entry.path().filename().string().starts_with("checkpoint.optim.") ? 1 : 0;
  EXPECT_EQ(optimizer_files, 1u);
}

TEST(Train, ObserversHearOfARunThatFailedAndTheErrorReachesTheCaller) {
  // One observer fails the run after its first epoch (as a full disk would); another listens.
  struct Failing : TrainingObserver {
    void on_epoch_end(const EpochEnd&) override { fail("no space left on device"); }
  } failing;
  struct Listening : TrainingObserver {
    std::string error;
    int ends = 0;
    void on_run_failed(const std::string& message) override { error = message; }
    void on_run_end(const TrainResult&) override { ++ends; }
  } listening;
  testing::TempDir dir;
  EXPECT_THROW(train_model(testing::quick_train_options(dir / "run", 2),
                           testing::training_resources(), {.observers = {&failing, &listening}}),
               InputError);
  EXPECT_EQ(listening.error, "no space left on device");
  EXPECT_EQ(listening.ends, 0);
}

// Counts what a run tells its observers, and ends it after `stop_epoch` epochs.
class RecordingObserver : public TrainingObserver {
 public:
  explicit RecordingObserver(int stop_epoch) : stop_epoch_(stop_epoch) {}
  void on_run_start(const RunStart& start) override {
    ++starts;
    steps_per_epoch = start.steps_per_epoch;
  }
  void on_step_end(const StepEnd& step) override {
    ++steps;
    EXPECT_TRUE(std::isfinite(step.loss));
  }
  void on_epoch_end(const EpochEnd& end) override { scores.push_back(end.record.validation.score); }
  bool stop_after(const EpochEnd& end) override { return end.record.epoch >= stop_epoch_; }
  void on_run_end(const TrainResult& result) override { ended_after = result.epochs_run; }

  int starts = 0;
  int64_t steps = 0;
  int64_t steps_per_epoch = 0;
  std::vector<double> scores;
  int ended_after = -1;

 private:
  int stop_epoch_;
};

// Zeroes every gradient (a stand-in for a reduction across ranks) and checks that, with plain
// SGD and no weight decay, the parameters then never move.
class ZeroingGradientHook : public GradientHook {
 public:
  void on_gradients(const std::vector<at::Tensor>& parameters) override {
    ++calls;
    if (initial.empty()) {
      for (const auto& p : parameters) initial.push_back(p.detach().clone());
    }
    for (size_t i = 0; i < parameters.size(); ++i) {
      if (!parameters[i].grad().defined()) ++missing_gradients;
      changed += !torch::equal(parameters[i].detach(), initial[i]);
      parameters[i].mutable_grad().zero_();
    }
  }
  int calls = 0;
  int missing_gradients = 0;
  int changed = 0;
  std::vector<at::Tensor> initial;
};

TEST(Train, ObserversSeeEveryStepAndEpochAndCanStopTheRun) {
  testing::TempDir dir;
  TrainOptions o = quick_options(dir / "run");  // 6 epochs
  RecordingObserver observer(/*stop_epoch=*/2);
  ZeroingGradientHook hook;
  o.optimizer = OptimizerKind::Sgd;
  o.weight_decay = 0;
  const TrainingHooks hooks{.observers = {&observer}, .gradients = &hook};
  const TrainResult result = train_model(o, testing::training_resources(), hooks);
  EXPECT_EQ(observer.starts, 1);
  EXPECT_EQ(observer.ended_after, 2);
  EXPECT_EQ(result.epochs_run, 2);
  EXPECT_TRUE(result.stopped_early);
  ASSERT_EQ(observer.scores.size(), 2u);
  EXPECT_EQ(observer.scores[1], result.history[1].validation.score);
  EXPECT_EQ(observer.steps, 2 * observer.steps_per_epoch);
  EXPECT_EQ(hook.calls, observer.steps);
  EXPECT_EQ(hook.missing_gradients, 0);
  EXPECT_EQ(hook.changed, 0) << "a parameter moved although every gradient was zeroed";
  EXPECT_FALSE(hook.initial.empty());
}

TEST(Train, LaterTrainingsOfAProcessReuseDecodedImagesAndFrozenFeatures) {
  testing::TempDir dir;
  TrainingResources resources(2);
  TrainOptions o = quick_options(dir / "first");
  o.epochs = 1;
  o.transfer = TransferMode::Frozen;
  train_model(o, resources);
  const size_t decoded = resources.images().decoded_count();
  const int64_t computed = resources.features().computed_count();
  EXPECT_GT(decoded, 250u);  // the tiny dataset's 300 rows, less duplicates
  EXPECT_EQ(computed, static_cast<int64_t>(decoded));

  // Another split of the same images (another fold; the same seed initialises the same
  // backbone): nothing decoded or computed again.
  o.out_dir = dir / "second";
  o.validation_fraction = 0.3;
  const TrainResult second = train_model(o, resources);
  EXPECT_EQ(resources.images().decoded_count(), decoded);
  EXPECT_EQ(resources.features().computed_count(), computed);
  EXPECT_GT(second.best_metrics.head("cc3").softmax->count, 0);

  // Other backbone weights (another seed initialises small_cnn differently): new features.
  o.out_dir = dir / "third";
  o.seed = 8;
  train_model(o, resources);
  EXPECT_EQ(resources.images().decoded_count(), decoded);
  EXPECT_EQ(resources.features().computed_count(), 2 * computed);
}

// Ctrl-C before the first step: the run leaves while decoding, or while computing frozen
// features, instead of after the first step; it ends stopped, resumable from epoch 0.
TEST(Train, AStopRequestEndsTheRunWhileDecodingOrCachingFeatures) {
  testing::TempDir dir;
  TrainingResources resources(2);
  std::atomic<bool> stop{true};
  TrainOptions o = quick_options(dir / "frozen");
  o.epochs = 1;
  o.transfer = TransferMode::Frozen;
  const TrainResult stopped_decoding = train_model(o, resources, {.stop_requested = &stop});
  EXPECT_TRUE(stopped_decoding.interrupted);
  EXPECT_EQ(resources.images().decoded_count(), 0u);
  EXPECT_EQ(read_json(o.out_dir / "status.json")["status"], "stopped");

  // Images decoded by another run of the process: the next stop comes while caching features.
  stop = false;
  TrainOptions finetune = quick_options(dir / "decodes");
  finetune.epochs = 1;
  train_model(finetune, resources, {.stop_requested = &stop});
  ASSERT_GT(resources.images().decoded_count(), 0u);
  stop = true;
  TrainOptions other = o;
  other.out_dir = dir / "frozen-too";
  EXPECT_TRUE(train_model(other, resources, {.stop_requested = &stop}).interrupted);
  EXPECT_EQ(resources.features().computed_count(), 0);

  // Resumed from its epoch-0 checkpoint, the first run finishes.
  stop = false;
  o.resume = true;
  const TrainResult resumed = train_model(o, resources, {.stop_requested = &stop});
  EXPECT_FALSE(resumed.interrupted);
  EXPECT_EQ(resumed.epochs_run, 1);
  EXPECT_TRUE(std::filesystem::exists(resumed.model_path));
}

// --validation-fraction 0: every row trains, the last epoch is the model (there is nothing to
// choose by), and the metrics, log and report say so instead of showing validation figures.
TEST(Train, WithoutValidationRowsEveryRowTrainsAndTheLastEpochIsTheModel) {
  testing::TempDir dir;
  TrainOptions o = quick_options(dir / "all-rows");
  o.epochs = 2;
  o.validation_fraction = 0;
  o.report = true;
  const TrainResult result = train_model(o, testing::training_resources());
  EXPECT_EQ(result.best_epoch, 2);
  EXPECT_TRUE(result.best_validation.probabilities.empty());
  const ModelBundle model = load_model_file(result.model_path);
  EXPECT_EQ(model.metadata["validation_rows"], 0);
  EXPECT_GT(model.metadata["training_rows"].get<int>(), 250);  // all of the tiny dataset's rows
  const nlohmann::json history = read_json(o.out_dir / "metrics.json");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_TRUE(history[1]["val"]["heads"].empty()) << history[1].dump();
  const std::string csv = read_file(o.out_dir / "metrics.csv");
  EXPECT_NE(csv.find("\n2,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",,"), std::string::npos) << "the validation columns are empty: " << csv;
  EXPECT_NE(read_file(o.out_dir / "report.html").find("without validation rows"),
            std::string::npos);
  EXPECT_NE(read_file(o.out_dir / "train.log").find("no validation rows"), std::string::npos);
  // A split with validation rows picks the epoch as before (the same rows, 15 % held out).
  TrainOptions held_out = quick_options(dir / "held-out");
  held_out.epochs = 1;
  const ModelBundle split =
      load_model_file(train_model(held_out, testing::training_resources()).model_path);
  EXPECT_EQ(
      split.metadata["training_rows"].get<int>() + split.metadata["validation_rows"].get<int>(),
      model.metadata["training_rows"].get<int>());
}

TEST(Train, PretrainRefusesToCompareTransferModesWithoutValidationRows) {
  testing::TempDir dir;
  const auto result = testing::run_garmentnet(
      "pretrain --data " + testing::tiny_dataset().string() + " --out " + (dir / "pre").string() +
      " --validation-fraction 0 --compare-on " + testing::tiny_dataset().string());
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("--compare-on compares the runs' validation figures"),
            std::string::npos)
      << result.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "pre" / "checkpoint.gnm"));
}

TEST(Train, DefaultTransferTrainsABareArchitectureWholeAndFineTunesPretrainedWeights) {
  TrainOptions o = quick_options("/tmp/unused");
  o.transfer.reset();
  o.backbone = "small_cnn";
  EXPECT_EQ(resolve_options(o).transfer, TransferMode::Scratch);
  o.backbone = "runs/pre/backbone.pt";
  EXPECT_EQ(resolve_options(o).transfer, TransferMode::Finetune);
  o.backbone = "torchscript:resnet18.pt";
  EXPECT_EQ(resolve_options(o).transfer, TransferMode::Finetune);
  o.transfer = TransferMode::Frozen;  // asked for: kept (with a warning for a bare architecture)
  o.backbone = "small_cnn";
  EXPECT_EQ(resolve_options(o).transfer, TransferMode::Frozen);
  EXPECT_EQ(resolve_options(o).augment, AugmentationPreset::Standard);
}

}  // namespace
}  // namespace garmentnet
