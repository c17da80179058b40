// The training engine. A run goes through named stages (Trainer's methods, in order):
// open_run_directory → load_data → build_model → decode_images → cache_features → run_epoch /
// validate / select_and_checkpoint per epoch → write_report. Observers and the gradient hook
// (training_observer.h) are called at step and epoch boundaries. A stop request (Ctrl-C) is
// checked in every long loop; the run then ends as stopped at its last epoch checkpoint.
#include "train/trainer.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/stop_signals.h"
#include "core/thread_pool.h"
#include "model/backbone.h"
#include "model/input.h"
#include "model/losses.h"
#include "model/model_file.h"
#include "model/multitask_model.h"
#include "model/traced_model.h"
#include "train/checkpoint.h"
#include "train/feature_cache.h"
#include "train/optimization.h"
#include "train/run_listing.h"
#include "train/tensorboard_observer.h"
#include "train/train_report.h"
#include "train/training_data.h"

namespace garmentnet {
namespace fs = std::filesystem;
using nlohmann::json;

struct TrainingResources::Parts {
  explicit Parts(int threads) : pool(threads) {}
  ThreadPool pool;
  DecodedImageCache images;
  FeatureCache features;
};

TrainingResources::TrainingResources(int threads) : parts_(std::make_unique<Parts>(threads)) {}
TrainingResources::~TrainingResources() = default;
ThreadPool& TrainingResources::pool() { return parts_->pool; }
DecodedImageCache& TrainingResources::images() { return parts_->images; }
FeatureCache& TrainingResources::features() { return parts_->features; }

namespace {

// Label tensors of the examples at `indices`, per head.
HeadTargets targets_for(const LabelledDataset& data, const std::vector<size_t>& indices) {
  HeadTargets targets;
  const auto rows = static_cast<int64_t>(indices.size());
  for (const auto& head : data.spec.heads) {
    const auto& labels = data.labels.at(head.name);
    if (head.kind == HeadKind::Softmax) {
      auto t = torch::empty({rows}, torch::kLong);
      auto* out = t.data_ptr<int64_t>();
      for (size_t i = 0; i < indices.size(); ++i) out[i] = labels[indices[i]];
      targets[head.name] = t;
    } else {
      const auto tags = static_cast<int64_t>(head.num_outputs());
      auto t = torch::empty({rows, tags}, torch::kFloat);
      auto* out = t.data_ptr<float>();
      for (size_t i = 0; i < indices.size(); ++i) {
        for (int64_t k = 0; k < tags; ++k) {
          out[static_cast<int64_t>(i) * tags + k] =
              static_cast<float>(labels[indices[i] * tags + k]);
        }
      }
      targets[head.name] = t;
    }
  }
  return targets;
}

// Per-head probabilities and losses collected over the batches of a split.
struct SplitCollector {
  SplitPredictions predictions;
  LossTotals losses;

  void add(const TaskSpec& spec, const HeadOutputs& logits, const HeadTargets& targets,
           const LossResult& loss) {
    const HeadOutputs probs = head_probabilities(spec, logits);
    const auto batch = targets.begin()->second.size(0);
    for (const auto& head : spec.heads) {
      auto p = probs.at(head.name).detach().contiguous();
      const float* data = p.data_ptr<float>();
      auto& probabilities = predictions.probabilities[head.name];
      probabilities.insert(probabilities.end(), data, data + p.numel());
      auto t = targets.at(head.name).to(torch::kLong).contiguous();
      const int64_t* l = t.data_ptr<int64_t>();
      auto& labels = predictions.labels[head.name];
      labels.insert(labels.end(), l, l + t.numel());
      losses.per_head[head.name] += loss.per_head.at(head.name) * static_cast<double>(batch);
    }
    losses.total += loss.total.item<double>() * static_cast<double>(batch);
    losses.rows += batch;
  }
};

int64_t parameter_count(MultiTaskModel& model) {
  int64_t count = 0;
  for (const auto& p : model->parameters()) count += p.numel();
  return count;
}

// Multiply-accumulates per image of a model at its input size, counted on its traced graph as
// `garmentnet bench` does. Traces `bundle`'s model, which then no longer requires gradients.
int64_t model_macs_per_image(ModelBundle& bundle) {
  constexpr int64_t trace_batch = 2;
  bundle.model->eval();
  return count_macs(trace_model(bundle.model, bundle.preprocessing, trace_batch), trace_batch)
      .macs_per_image;
}

class Trainer {
 public:
  Trainer(const TrainOptions& requested, TrainingResources& resources, const TrainingHooks& hooks)
      : options_(resolve_options(requested)),
        transfer_(*options_.transfer),
        augmentation_(augmentation_of(*options_.augment)),
        resources_(resources),
        hooks_(hooks),
        parallel_(hooks.parallel),
        writes_files_(parallel_ == nullptr || parallel_->rank() == 0),
        out_(options_.out_dir),
        checkpoint_(out_),
        tensorboard_(out_) {
    if (!writes_files_) return;  // the other ranks of a data-parallel run: rank 0 tells them
    observers_ = hooks.observers;
    observers_.push_back(&tensorboard_);
  }

  // The run, with its status.json kept up to date: running, then finished, stopped or failed.
  TrainResult run() {
    open_run_directory();
    set_status(RunStatus::Running);
    try {
      train_and_report();
    } catch (const std::exception& error) {
      set_status(RunStatus::Failed, error.what());
      // Every observer hears of it; one that fails in turn does not hide the run's own error.
      for (TrainingObserver* observer : observers_) {
        try {
          observer->on_run_failed(error.what());
        } catch (const std::exception& failure) {
          spdlog::warn("an observer could not take the run's failure: {}", failure.what());
        }
      }
      throw;
    }
    set_status(result_.interrupted ? RunStatus::Stopped : RunStatus::Finished);
    return result_;
  }

 private:
  // ---- Stages ----

  void train_and_report() {
    try {
      load_data();
      build_model();
      decode_images();
      cache_features();
      start();
      for (int epoch = state_.next_epoch; epoch < options_.epochs; ++epoch) {
        const auto started = std::chrono::steady_clock::now();
        const SplitCollector trained = run_epoch(epoch);
        const double train_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (!select_and_checkpoint(epoch, trained, validate(model_, feature_cache_), started,
                                   train_seconds))
          break;
      }
    } catch (const StopRequested& stop) {
      note_stop(stop);
    }
    result_.best_epoch = state_.best_epoch;
    result_.epochs_run = state_.next_epoch;
    result_.history = state_.history;
    if (state_.best_epoch > 0)
      result_.best_metrics =
          state_.history.at(static_cast<size_t>(state_.best_epoch - 1)).validation;
    if (writes_files_ && options_.report && state_.best_epoch > 0 &&
        (!best_validation_.probabilities.empty() || !result_.interrupted)) {
      try {
        write_report();
      } catch (const StopRequested& stop) {
        note_stop(stop);
      }
    }
    result_.spec = spec_;
    result_.validation_ids = val_set_.data.ids;
    result_.validation_images = val_set_.data.images;
    result_.best_validation = best_validation_;
    // Observers that never heard of the run's start (stopped while decoding) hear nothing.
    if (started_)
      for (TrainingObserver* observer : observers_) observer->on_run_end(result_);
  }

  // A stop request ended the run's work: what was lost and how to go on.
  void note_stop(const StopRequested& stop) {
    spdlog::warn(
        "stopped by signal while {}: the checkpoint of the last finished epoch ({}) is kept; "
        "continue with --resume (it starts at epoch {})",
        stop.what(), state_.next_epoch, state_.next_epoch + 1);
    result_.interrupted = true;
  }

  // Checks the run directory against --resume, writes config.json and starts train.log (rank 0
  // only: the other ranks of a data-parallel run read the checkpoint to resume, nothing else).
  void open_run_directory() {
    if (!writes_files_) {
      if (options_.resume && !checkpoint_.exists())
        fail(
            "rank {} cannot see {}: to resume a data-parallel run, every rank needs the run folder "
            "(a volume all of them mount)",
            parallel_->rank(), checkpoint_.model_path().string());
      return;
    }
    if (!options_.resume && checkpoint_.exists()) {
      fail("{} already holds a training run: pass --resume to continue it or choose another --out",
           out_.string());
    }
    if (options_.resume && !checkpoint_.exists()) {
      fail("nothing to resume: {} has no checkpoint.gnm", out_.string());
    }
    fs::create_directories(out_);
    log_file_.emplace(out_ / "train.log");
    write_file_atomically(out_ / "config.json", to_json(options_).dump(2));
    spdlog::info("training run in {} ({} threads, seed {}, {} augmentation, transfer {})",
                 out_.string(), torch::get_num_threads(), options_.seed,
                 kAugmentationPresets.name_of(*options_.augment),
                 kTransferModes.name_of(transfer_));
  }

  // Reads and splits the labelled table (images are decoded in build_model, once the input
  // size is known).
  void load_data() {
    splits_ = load_training_splits(options_);
    spec_ = splits_.train.spec;
  }

  // The model (fresh from the backbone, or the checkpoint's), which blocks train, the optimiser
  // and, when resuming, its state; a fresh run's epoch-0 checkpoint.
  void build_model() {
    std::optional<Checkpoint::Loaded> resumed;
    if (options_.resume) {
      resumed = checkpoint_.load();
      model_ = resumed->bundle.model;
      pre_ = resumed->bundle.preprocessing;
      if (model_->spec().to_json() != spec_.to_json()) {
        fail("{} was trained on another task (heads or classes differ from {}); start a new run",
             checkpoint_.model_path().string(), options_.data_dir.string());
      }
    } else {
      // Each run's initial weights follow from its own seed, whatever ran before in the process.
      torch::manual_seed(options_.seed);
      Backbone backbone = open_backbone(options_.backbone);
      pre_ = backbone->expected_preprocessing().value_or(Preprocessing{});
      pre_.width = pre_.height = options_.image_size;
      pre_.resize = options_.resize;
      model_ = MultiTaskModel(backbone, spec_, ModelOptions{.dropout = options_.dropout});
    }
    switch (transfer_) {
      case TransferMode::Frozen:
        model_->freeze_backbone();
        break;
      case TransferMode::Finetune:
        model_->unfreeze_last_blocks(static_cast<size_t>(options_.unfreeze_blocks));
        break;
      case TransferMode::Scratch:
        model_->unfreeze_backbone();
        break;
    }
    if (parallel_) {
      // Every rank starts from rank 0's weights (the same seed or checkpoint gives them anyway).
      std::vector<torch::Tensor> tensors = model_->parameters();
      for (const auto& buffer : model_->buffers()) tensors.push_back(buffer);
      parallel_->broadcast_from_first(tensors);
    }

    optimizer_ = make_optimizer(options_, model_);
    if (resumed) {
      state_ = resumed->state;
      checkpoint_.restore_optimizer(*resumed, optimizer_);
      spdlog::info("resuming at epoch {} of {}", state_.next_epoch + 1, options_.epochs);
    } else if (writes_files_) {
      // The epoch-0 checkpoint: a run stopped during its first epoch resumes from here.
      checkpoint_.save(model_, pre_, {}, optimizer_, state_);
    }
  }

  // The images of both splits at the model's input size (decoded, or from an earlier training of
  // the process) and the losses, weighted by the training rows that could be read.
  void decode_images() {
    train_set_ =
        resources_.images().load(std::move(splits_.train), pre_, resources_.pool(),
                                 "loading training images", options_.strict, hooks_.stop_requested);
    val_set_ = resources_.images().load(std::move(splits_.validation), pre_, resources_.pool(),
                                        "loading validation images", options_.strict,
                                        hooks_.stop_requested);
    spdlog::info("{} training and {} validation images at {}x{}; backbone {}, transfer {}",
                 train_set_.data.size(), val_set_.data.size(), pre_.width, pre_.height,
                 options_.backbone, kTransferModes.name_of(transfer_));
    if (!has_validation_rows())
      spdlog::info("no validation rows: every row trains and the model is the last epoch's");
    losses_ = loss_options(options_, train_set_.data);
  }

  // With a frozen backbone every epoch sees the same features: compute them once (or take them
  // from an earlier training of the process).
  void cache_features() {
    feature_cache_ = transfer_ == TransferMode::Frozen && options_.feature_cache;
    if (!feature_cache_) return;
    std::vector<torch::Tensor> views;
    for (int v = 0; v < options_.feature_views; ++v) {
      views.push_back(resources_.features().features(
          model_, train_set_.images, train_set_.data.images, pre_, augmentation_, v, options_.seed,
          fmt::format("caching features (view {}/{})", v + 1, options_.feature_views),
          hooks_.stop_requested));
      for (size_t i = 0; i < train_set_.data.size(); ++i) cached_rows_.push_back(i);
    }
    train_features_ = torch::cat(views);
    if (!has_validation_rows()) return;
    val_features_ = resources_.features().features(
        model_, val_set_.images, val_set_.data.images, pre_, augmentation_, 0, options_.seed,
        "caching validation features", hooks_.stop_requested);
  }

  void start() {
    const size_t rows = rank_rows(feature_cache_ ? cached_rows_.size() : train_set_.data.size());
    steps_per_epoch_ = static_cast<int64_t>((rows + static_cast<size_t>(options_.batch_size) - 1) /
                                            static_cast<size_t>(options_.batch_size));
    result_.model_path = out_ / "model.gnm";
    if (parallel_) {
      parallel_->watch(trained_parameters());
      parallel_->barrier();
      spdlog::info(
          "data-parallel over {} ranks: each trains on {} rows per epoch, {} per step (an "
          "effective batch of {})",
          parallel_->world_size(), rows, options_.batch_size,
          options_.batch_size * parallel_->world_size());
    }
    const RunStart event{.options = options_,
                         .spec = spec_,
                         .training_rows = train_set_.data.size(),
                         .validation_rows = val_set_.data.size(),
                         .first_epoch = state_.next_epoch,
                         .steps_per_epoch = steps_per_epoch_,
                         .history = state_.history};
    for (TrainingObserver* observer : observers_) observer->on_run_start(event);
    started_ = true;
  }

  // Trains one epoch (0-based) over the shuffled training rows: what it predicted and lost.
  // StopRequested after a step when a stop was requested: the epoch's work is dropped.
  SplitCollector run_epoch(int epoch) {
    std::mt19937 rng(static_cast<uint32_t>(options_.seed * 7919 + static_cast<uint64_t>(epoch)));
    torch::manual_seed(options_.seed + static_cast<uint64_t>(epoch));
    std::vector<size_t> order(feature_cache_ ? cached_rows_.size() : train_set_.data.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    if (parallel_) {
      order = rank_share(order);
      // The same shuffle everywhere, but each rank its own augmentation and dropout draws.
      const auto rank = static_cast<uint64_t>(parallel_->rank());
      rng.seed(static_cast<uint32_t>(options_.seed * 7919 + static_cast<uint64_t>(epoch) +
                                     104729 * rank));
      torch::manual_seed(options_.seed + static_cast<uint64_t>(epoch) + 1000003 * rank);
    }
    const size_t rows = order.size();

    model_->train();
    SplitCollector collected;
    Progress progress(fmt::format("epoch {}/{}", epoch + 1, options_.epochs), steps_per_epoch_,
                      "steps");
    const auto batch_size = static_cast<size_t>(options_.batch_size);
    int64_t step = 0;
    for (size_t start = 0; start < rows; start += batch_size, ++step) {
      const double lr_factor =
          schedule_factor(options_, epoch + static_cast<double>(step) / steps_per_epoch_);
      optimizer_.set_factor(lr_factor);
      const std::vector<size_t> batch(
          order.begin() + static_cast<ptrdiff_t>(start),
          order.begin() + static_cast<ptrdiff_t>(std::min(rows, start + batch_size)));
      HeadOutputs logits;
      std::vector<size_t> examples;
      if (feature_cache_) {
        for (size_t r : batch) examples.push_back(cached_rows_[r]);
        auto index = torch::tensor(std::vector<int64_t>(batch.begin(), batch.end()));
        logits = model_->heads_forward(train_features_.index_select(0, index));
      } else {
        examples = batch;
        std::vector<cv::Mat> images;
        for (size_t r : batch) images.push_back(augment(train_set_.images[r], augmentation_, rng));
        logits = model_->forward(make_input_batch(images, pre_));
      }
      const HeadTargets targets = targets_for(train_set_.data, examples);
      const LossResult loss = multitask_loss(spec_, logits, targets, losses_);
      const double loss_value = loss.total.item<double>();
      if (!std::isfinite(loss_value)) {
        fail(
            "the training loss became {} at epoch {} step {}: lower the learning rate (--head-lr, "
            "--backbone-lr). The last good checkpoint is kept in {}",
            loss_value, epoch + 1, step + 1, out_.string());
      }
      optimizer_.optimizer->zero_grad();
      loss.total.backward();
      if (parallel_) parallel_->average_gradients(trained_parameters());
      if (hooks_.gradients) hooks_.gradients->on_gradients(trained_parameters());
      optimizer_.optimizer->step();
      collected.add(spec_, logits, targets, loss);
      progress.set_status(fmt::format(
          "loss {:.4f}", collected.losses.total / static_cast<double>(collected.losses.rows)));
      progress.advance();
      const StepEnd event{.epoch = epoch,
                          .step = step,
                          .steps_per_epoch = steps_per_epoch_,
                          .loss = loss_value,
                          .lr_factor = lr_factor};
      for (TrainingObserver* observer : observers_) observer->on_step_end(event);
      // The ranks of a data-parallel run stop at the same step, so none waits for one that left.
      const bool stop = hooks_.stop_requested != nullptr && *hooks_.stop_requested;
      if (parallel_ ? parallel_->any(stop) : stop)
        throw StopRequested(fmt::format("training epoch {}", epoch + 1));
    }
    progress.finish();
    if (parallel_) sum_losses(collected.losses);
    return collected;
  }

  // Validation predictions and losses of `net` over every validation row; from the cached features
  // when `use_cache` (only for the run's own model, whose frozen backbone computed them). In a
  // data-parallel run each rank predicts its slice of the rows and the slices are gathered, unless
  // `alone` (rank 0 on its own, writing the report).
  SplitCollector validate(MultiTaskModel& net, bool use_cache, bool alone = false) {
    const bool shared = parallel_ != nullptr && !alone;
    const size_t rows = val_set_.data.size();
    const auto rank = static_cast<size_t>(shared ? parallel_->rank() : 0);
    const auto world = static_cast<size_t>(shared ? parallel_->world_size() : 1);
    SplitCollector collected;
    net->eval();
    constexpr size_t batch_size = 256;
    const size_t end = rows * (rank + 1) / world;
    for (size_t start = rows * rank / world; start < end; start += batch_size) {
      stop_if_requested(hooks_.stop_requested, "validating");
      torch::InferenceMode guard;  // not around the gathering: Gloo writes its tensors in place
      std::vector<size_t> examples(std::min(batch_size, end - start));
      std::iota(examples.begin(), examples.end(), start);
      HeadOutputs logits;
      if (use_cache) {
        logits = net->heads_forward(val_features_.narrow(0, static_cast<int64_t>(start),
                                                         static_cast<int64_t>(examples.size())));
      } else {
        std::vector<cv::Mat> images;
        for (size_t i : examples) images.push_back(val_set_.images[i]);
        logits = net->forward(make_input_batch(images, pre_));
      }
      const HeadTargets targets = targets_for(val_set_.data, examples);
      collected.add(spec_, logits, targets, multitask_loss(spec_, logits, targets, losses_));
    }
    if (shared) gather_slices(collected);
    return collected;
  }

  // Scores the epoch, keeps the model when it is the best so far, writes the metrics files and
  // the checkpoint, and tells the observers. False when the run ends here (patience ran out or
  // an observer asked).
  bool select_and_checkpoint(int epoch, const SplitCollector& trained,
                             const SplitCollector& validated,
                             std::chrono::steady_clock::time_point started, double train_seconds) {
    std::map<std::string, std::vector<double>> thresholds;
    std::map<std::string, std::vector<double>> default_thresholds;
    EpochRecord record{.epoch = epoch + 1,
                       .lr_factor = schedule_factor(options_, epoch + 1.0 - 1e-9),
                       .train = score_split(spec_, trained.predictions, trained.losses,
                                            default_thresholds, /*tune=*/false)};
    // Without validation rows the record has no validation figures and every epoch is the best.
    if (has_validation_rows())
      record.validation =
          score_split(spec_, validated.predictions, validated.losses, thresholds, /*tune=*/true);
    record.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    record.train_seconds = train_seconds;
    state_.history.push_back(record);

    const double value =
        options_.monitor == Monitor::Score ? record.validation.score : -record.validation.loss;
    const bool improved =
        !has_validation_rows() || state_.best_epoch == 0 || value > state_.best_value;
    spdlog::info("{}{}", epoch_summary(spec_, record, options_.epochs),
                 improved && has_validation_rows() ? " (best so far)" : "");
    if (improved) {
      state_.best_epoch = epoch + 1;
      state_.best_value = value;
      state_.epochs_without_improvement = 0;
      ModelBundle best{.model = model_, .preprocessing = pre_, .tag_thresholds = thresholds};
      best.metrics = {{"epoch", epoch + 1},
                      {"validation", record.validation.to_json()},
                      {"train", record.train.to_json()}};
      best.metadata = {{"dataset", options_.data_dir.string()},
                       {"training_rows", train_set_.data.size()},
                       {"validation_rows", val_set_.data.size()},
                       {"config", to_json(options_)}};
      if (writes_files_) save_model_file(best, result_.model_path);
      best_validation_ = validated.predictions;
      best_thresholds_ = thresholds;
    } else {
      ++state_.epochs_without_improvement;
    }
    state_.next_epoch = epoch + 1;
    if (writes_files_) {
      write_metrics_files(out_, spec_, state_.history);
      checkpoint_.save(model_, pre_, thresholds, optimizer_, state_);
    }

    const EpochEnd event{
        .record = state_.history.back(), .improved = improved, .best_epoch = state_.best_epoch};
    bool observer_stop = false;
    for (TrainingObserver* observer : observers_) {
      observer->on_epoch_end(event);
      observer_stop = observer->stop_after(event) || observer_stop;
    }
    // Only rank 0 has observers, which may end the run: every rank ends it with rank 0.
    if (parallel_) observer_stop = parallel_->any(observer_stop);
    if (observer_stop) {
      spdlog::info("stopped after epoch {} at an observer's request", epoch + 1);
      result_.stopped_early = true;
      return false;
    }
    if (options_.patience > 0 && state_.epochs_without_improvement >= options_.patience) {
      spdlog::info("no improvement for {} epochs: stopping early", options_.patience);
      result_.stopped_early = true;
      return false;
    }
    return true;
  }

  // report.html and model_card.md for the best epoch.
  void write_report() {
    ModelBundle best = load_model_file(result_.model_path);
    if (best_validation_.probabilities.empty() && has_validation_rows()) {
      // The best epoch ran before a resume: predict the validation data again with its model.
      spdlog::info("predicting the validation data with the best epoch's model for the report");
      best_validation_ = validate(best.model, false, /*alone=*/true).predictions;
      best_thresholds_ = best.tag_thresholds;
    }
    const int64_t macs = model_macs_per_image(best);
    std::error_code ignored;
    write_train_report(
        {.out_dir = out_,
         .model_path = result_.model_path,
         .spec = spec_,
         .history = state_.history,
         .best_validation = best_validation_,
         .validation_images = val_set_.data.images,
         .thresholds = best_thresholds_,
         .summary = {{"data", options_.data_dir.string()},
                     {"backbone", options_.backbone},
                     {"transfer", kTransferModes.name_of(transfer_)},
                     {"input size", fmt::format("{}x{}", pre_.width, pre_.height)},
                     {"FLOPs per image",
                      fmt::format("{:.1f} M ({}: 2 × the multiply-accumulates of convolutions and "
                                  "linear layers)",
                                  2e-6 * static_cast<double>(macs), 2 * macs)},
                     {"multiply-accumulates per image", macs},
                     {"parameters", parameter_count(model_)},
                     {"model file", result_.model_path.string()},
                     {"model file size (bytes)", fs::file_size(result_.model_path, ignored)},
                     {"training rows", train_set_.data.size()},
                     {"validation rows", val_set_.data.size()},
                     {"best epoch", state_.best_epoch},
                     {"epochs run", state_.next_epoch}}});
    spdlog::info("report: {}", (out_ / "report.html").string());
  }

  // ---- Helpers ----

  // Whether the run has validation rows (--validation-fraction 0 has none).
  bool has_validation_rows() const { return val_set_.data.size() > 0; }

  void set_status(RunStatus status, const std::string& error = "") const {
    if (writes_files_) write_run_status(out_, status, error);
  }

  // The rows this rank trains on of an epoch of `rows`: all of them, or in a data-parallel run
  // its share, rounded up (as DistributedSampler does).
  size_t rank_rows(size_t rows) const {
    if (!parallel_) return rows;
    const auto world = static_cast<size_t>(parallel_->world_size());
    return (rows + world - 1) / world;
  }

  // This rank's share of an epoch's shuffled `order` (the same on every rank): positions rank,
  // rank + world, ... of it, wrapping round to its start up to a multiple of the world size, so
  // every rank runs the same number of steps and the ranks' k-th batches together are the k-th
  // batch of world × batch size rows of one process.
  std::vector<size_t> rank_share(const std::vector<size_t>& order) const {
    const auto world = static_cast<size_t>(parallel_->world_size());
    const auto rank = static_cast<size_t>(parallel_->rank());
    const size_t padded = rank_rows(order.size()) * world;
    std::vector<size_t> share;
    for (size_t i = rank; i < padded; i += world) share.push_back(order[i % order.size()]);
    return share;
  }

  // Every rank's validation slice (predictions in rank order, losses summed): what one process
  // validating every row collects.
  void gather_slices(SplitCollector& collected) {
    sum_losses(collected.losses);
    for (const auto& head : spec_.heads) {
      std::vector<float>& probabilities = collected.predictions.probabilities[head.name];
      const std::vector<double> all_probabilities =
          parallel_->gather({probabilities.begin(), probabilities.end()});
      probabilities.assign(all_probabilities.begin(), all_probabilities.end());
      std::vector<int64_t>& labels = collected.predictions.labels[head.name];
      const std::vector<double> all_labels = parallel_->gather({labels.begin(), labels.end()});
      labels.clear();
      for (double label : all_labels) labels.push_back(static_cast<int64_t>(label));
    }
  }

  // The epoch's training losses over every rank's rows (its predictions stay this rank's).
  void sum_losses(LossTotals& losses) {
    std::vector<double> values{losses.total, static_cast<double>(losses.rows)};
    for (const auto& head : spec_.heads) values.push_back(losses.per_head[head.name]);
    parallel_->sum(values);
    losses.total = values[0];
    losses.rows = static_cast<int64_t>(values[1]);
    size_t i = 2;
    for (const auto& head : spec_.heads) losses.per_head[head.name] = values[i++];
  }

  std::vector<torch::Tensor> trained_parameters() {
    std::vector<torch::Tensor> trained;
    for (const auto& p : model_->parameters()) {
      if (p.requires_grad()) trained.push_back(p);
    }
    return trained;
  }

  const TrainOptions options_;  // resolved
  const TransferMode transfer_;
  const Augmentation augmentation_;
  TrainingResources& resources_;
  const TrainingHooks& hooks_;
  DataParallel* const parallel_;  // null: this process trains alone
  const bool writes_files_;       // false on the ranks but 0 of a data-parallel run
  const fs::path out_;
  const Checkpoint checkpoint_;
  std::optional<LogFile> log_file_;
  TensorBoardObserver tensorboard_;           // the run folder's tensorboard/
  std::vector<TrainingObserver*> observers_;  // the caller's, then tensorboard_ (rank 0 only)

  TrainingSplits splits_;  // until build_model decodes their images
  TaskSpec spec_;
  ImageSet train_set_, val_set_;
  MultiTaskModel model_{nullptr};
  Preprocessing pre_;
  LossOptions losses_;
  Optimizer optimizer_;
  TrainingState state_;
  int64_t steps_per_epoch_ = 0;
  bool started_ = false;  // the observers heard of the run's start

  bool feature_cache_ = false;
  torch::Tensor train_features_, val_features_;
  std::vector<size_t> cached_rows_;  // training example of each cached feature row

  SplitPredictions best_validation_;  // of the best epoch of this process, for the report
  std::map<std::string, std::vector<double>> best_thresholds_;
  TrainResult result_;
};

}  // namespace

TrainResult train_model(const TrainOptions& options, TrainingResources& resources,
                        const TrainingHooks& hooks) {
  return Trainer(options, resources, hooks).run();
}

TrainResult pretrain_backbone(TrainOptions options, TrainingResources& resources,
                              const TrainingHooks& hooks) {
  if (options.transfer && *options.transfer != TransferMode::Scratch)
    spdlog::info("pretraining trains the backbone from scratch (--transfer scratch)");
  options.transfer = TransferMode::Scratch;
  TrainResult result = train_model(options, resources, hooks);
  if (result.interrupted || (hooks.parallel && hooks.parallel->rank() != 0)) return result;
  ModelBundle best = load_model_file(result.model_path);
  const fs::path backbone_path = options.out_dir / "backbone.pt";
  const json metadata = {{"pretrained_on", options.data_dir.string()},
                         {"validation", result.best_metrics.to_json()},
                         {"image_size", options.image_size}};
  save_backbone_file(best.model->backbone(), backbone_path, metadata);
  spdlog::info("backbone saved to {} (use: garmentnet train --backbone {})", backbone_path.string(),
               backbone_path.string());
  return result;
}

}  // namespace garmentnet
