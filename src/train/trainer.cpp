#include "train/trainer.h"

#include <spdlog/spdlog.h>
#include <torch/serialize.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <numeric>
#include <optional>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "data/augmentation_presets.h"
#include "data/dataset.h"
#include "data/image_loader.h"
#include "model/backbone.h"
#include "model/input.h"
#include "model/losses.h"
#include "model/model_file.h"
#include "model/multitask_model.h"
#include "model/traced_model.h"
#include "eval/metrics.h"
#include "train/train_report.h"

namespace garmentnet {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Set by SIGINT/SIGTERM while a run is training; checked after every batch.
std::atomic<bool> stop_requested{false};

extern "C" void request_stop(int) { stop_requested = true; }

// Installs the stop handlers for the lifetime of a run and restores the previous ones after.
class StopSignals {
 public:
  StopSignals() {
    stop_requested = false;
    previous_int_ = std::signal(SIGINT, request_stop);
    previous_term_ = std::signal(SIGTERM, request_stop);
  }
  ~StopSignals() {
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  void (*previous_int_)(int) = nullptr;
  void (*previous_term_)(int) = nullptr;
};

bool is_augmentation_preset(const std::string& name) {
  const auto& presets = augmentation_preset_names();
  return std::find(presets.begin(), presets.end(), name) != presets.end();
}

void check_options(const TrainOptions& o) {
  if (o.data_dir.empty())
    fail("--data is required: a dataset folder with data.parquet and images/");
  if (o.out_dir.empty()) fail("--out is required: the run directory to write");
  if (o.transfer != "frozen" && o.transfer != "finetune" && o.transfer != "scratch") {
    fail("--transfer '{}' is unknown: use frozen, finetune or scratch", o.transfer);
  }
  if (o.optimizer != "adamw" && o.optimizer != "sgd") {
    fail("--optimizer '{}' is unknown: use adamw or sgd", o.optimizer);
  }
  if (o.schedule != "cosine" && o.schedule != "step" && o.schedule != "constant") {
    fail("--schedule '{}' is unknown: use cosine, step or constant", o.schedule);
  }
  if (o.monitor != "score" && o.monitor != "loss")
    fail("--monitor '{}': use score or loss", o.monitor);
  if (o.epochs < 1) fail("--epochs must be at least 1");
  if (o.batch_size < 1) fail("--batch-size must be at least 1");
  if (o.image_size < 16 || o.image_size > 1024) fail("--image-size must be between 16 and 1024");
  if (o.validation.empty() && (o.validation_fraction <= 0 || o.validation_fraction >= 1)) {
    fail("--validation-fraction must be between 0 and 1 (exclusive)");
  }
  if (o.feature_views < 1) fail("--feature-views must be at least 1");
  if (!o.augment.empty() && !is_augmentation_preset(o.augment))
    fail("--augment '{}' is unknown: use {}", o.augment,
         fmt::join(augmentation_preset_names(), ", "));
}

// The augmentation preset a run uses: the one asked for; when resuming without one, the preset the
// run was started with (config.json; older runs stored a true/false `augment`); else standard.
std::string resolved_augmentation_preset(const TrainOptions& o) {
  if (!o.augment.empty()) return o.augment;
  const fs::path config_path = o.out_dir / "config.json";
  if (!o.resume || !fs::exists(config_path)) return "standard";
  const json config = json::parse(read_file(config_path), nullptr, /*allow_exceptions=*/false);
  const json stored = config.is_object() ? config.value("augment", json()) : json();
  if (stored.is_string() && is_augmentation_preset(stored.get<std::string>()))
    return stored.get<std::string>();
  if (stored.is_boolean()) return stored.get<bool>() ? "standard" : "none";
  spdlog::warn("{} does not say which augmentation the run used; resuming with standard",
               config_path.string());
  return "standard";
}

json options_to_json(const TrainOptions& o) {
  return {{"data", o.data_dir.string()},
          {"out", o.out_dir.string()},
          {"validation", o.validation.string()},
          {"backbone", o.backbone},
          {"transfer", o.transfer},
          {"unfreeze_blocks", o.unfreeze_blocks},
          {"epochs", o.epochs},
          {"batch_size", o.batch_size},
          {"head_lr", o.head_lr},
          {"backbone_lr", o.backbone_lr},
          {"weight_decay", o.weight_decay},
          {"optimizer", o.optimizer},
          {"schedule", o.schedule},
          {"warmup_epochs", o.warmup_epochs},
          {"label_smoothing", o.label_smoothing},
          {"balance_tags", o.balance_tags},
          {"dropout", o.dropout},
          {"validation_fraction", o.validation_fraction},
          {"monitor", o.monitor},
          {"patience", o.patience},
          {"image_size", o.image_size},
          {"resize", name_of(o.resize)},
          {"augment", o.augment},
          {"augmentation", augmentation_preset(o.augment).to_json()},
          {"feature_cache", o.feature_cache},
          {"feature_views", o.feature_views},
          {"seed", o.seed},
          {"threads", o.threads},
          {"strict", o.strict}};
}

TaskSpec dataset_task(const fs::path& data_dir) {
  const fs::path task_file = data_dir / "task.json";
  return fs::exists(task_file) ? TaskSpec::load(task_file) : TaskSpec::garments();
}

// Stratified by the category head (rows without a category form their own stratum).
std::pair<std::vector<size_t>, std::vector<size_t>> stratified_split(const LabelledDataset& data,
                                                                     double fraction,
                                                                     uint64_t seed) {
  std::map<int64_t, std::vector<size_t>> strata;
  const HeadSpec* category = data.spec.category_head();
  for (size_t i = 0; i < data.size(); ++i) {
    strata[category ? data.labels.at(category->name)[i] : 0].push_back(i);
  }
  std::mt19937_64 rng(seed);
  std::vector<size_t> train, validation;
  for (auto& [label, members] : strata) {
    std::shuffle(members.begin(), members.end(), rng);
    const auto held_out =
        static_cast<size_t>(std::llround(fraction * static_cast<double>(members.size())));
    validation.insert(validation.end(), members.begin(),
                      members.begin() + static_cast<ptrdiff_t>(held_out));
    train.insert(train.end(), members.begin() + static_cast<ptrdiff_t>(held_out), members.end());
  }
  std::sort(train.begin(), train.end());
  std::sort(validation.begin(), validation.end());
  if (train.empty() || validation.empty()) {
    fail("the dataset has too few rows ({}) to hold out a validation split", data.size());
  }
  return {train, validation};
}

// A dataset with its images decoded and resized to the model input, failures dropped.
struct ImageSet {
  LabelledDataset data;
  std::vector<cv::Mat> images;
};

ImageSet load_images(LabelledDataset data, const Preprocessing& pre, ThreadPool& pool,
                     const std::string& label, bool strict) {
  LoadedImages loaded = load_resized_images(data.images, pre, ImageLimits{}, pool, label);
  if (!loaded.failed.empty()) {
    std::string listed;
    for (size_t i = 0; i < std::min<size_t>(loaded.errors.size(), 5); ++i)
      listed += "\n  " + loaded.errors[i];
    if (strict) fail("{} image(s) could not be read:{}", loaded.failed.size(), listed);
    spdlog::warn("{} image(s) could not be read and are skipped:{}", loaded.failed.size(), listed);
    std::vector<size_t> keep;
    std::vector<cv::Mat> kept_images;
    for (size_t i = 0, f = 0; i < data.size(); ++i) {
      if (f < loaded.failed.size() && loaded.failed[f] == i) {
        ++f;
        continue;
      }
      keep.push_back(i);
      kept_images.push_back(std::move(loaded.images[i]));
    }
    data = data.subset(keep);
    loaded.images = std::move(kept_images);
  }
  return {std::move(data), std::move(loaded.images)};
}

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

LossOptions loss_options(const TrainOptions& o, const LabelledDataset& train) {
  LossOptions options;
  for (const auto& head : train.spec.heads) {
    HeadLossOptions& h = options[head.name];
    if (head.kind == HeadKind::Softmax) {
      h.label_smoothing = o.label_smoothing;
    } else if (o.balance_tags) {
      // Rare tags get a larger weight on their positives (negatives / positives, at most 10).
      const size_t tags = head.num_outputs();
      const auto& labels = train.labels.at(head.name);
      std::vector<float> weights(tags, 1.0f);
      for (size_t k = 0; k < tags; ++k) {
        double positives = 0, negatives = 0;
        for (size_t i = k; i < labels.size(); i += tags) {
          positives += labels[i] == 1;
          negatives += labels[i] == 0;
        }
        if (positives > 0)
          weights[k] = static_cast<float>(std::clamp(negatives / positives, 1.0, 10.0));
      }
      h.pos_weight = torch::tensor(weights);
    }
  }
  return options;
}

// Peak learning-rate multiplier at a (fractional) epoch.
double schedule_factor(const TrainOptions& o, double epoch) {
  if (o.warmup_epochs > 0 && epoch < o.warmup_epochs) return (epoch + 1e-3) / o.warmup_epochs;
  const double span = std::max(1.0, static_cast<double>(o.epochs - o.warmup_epochs));
  const double progress = std::clamp((epoch - o.warmup_epochs) / span, 0.0, 1.0);
  if (o.schedule == "cosine")
    return 0.02 + 0.98 * 0.5 * (1 + std::cos(std::numbers::pi * progress));
  if (o.schedule == "step") return progress < 2.0 / 3.0 ? 1.0 : 0.1;
  return 1.0;
}

struct Optimizer {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<double> peak_lr;  // per parameter group

  void set_factor(double factor) {
    auto& groups = optimizer->param_groups();
    for (size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(peak_lr[g] * factor);
  }
};

Optimizer make_optimizer(const TrainOptions& o, MultiTaskModel& model) {
  ParameterGroups params = model->parameter_groups();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  Optimizer result;
  auto add = [&](std::vector<torch::Tensor> tensors, double lr) {
    if (tensors.empty()) return;
    if (o.optimizer == "adamw") {
      groups.emplace_back(std::move(tensors),
                          std::make_unique<torch::optim::AdamWOptions>(
                              torch::optim::AdamWOptions(lr).weight_decay(o.weight_decay)));
    } else {
      groups.emplace_back(
          std::move(tensors),
          std::make_unique<torch::optim::SGDOptions>(
              torch::optim::SGDOptions(lr).momentum(0.9).nesterov(true).weight_decay(
                  o.weight_decay)));
    }
    result.peak_lr.push_back(lr);
  };
  add(params.heads, o.head_lr);
  add(params.backbone, o.backbone_lr);
  if (o.optimizer == "adamw") {
    result.optimizer = std::make_unique<torch::optim::AdamW>(std::move(groups));
  } else {
    result.optimizer =
        std::make_unique<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(o.head_lr));
  }
  return result;
}

// Per-head probabilities collected over an epoch, and the matching labels.
struct Collected {
  SplitPredictions predictions;
  std::map<std::string, double> loss_sum;
  double total_loss_sum = 0;
  int64_t rows = 0;

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
      loss_sum[head.name] += loss.per_head.at(head.name) * static_cast<double>(batch);
    }
    total_loss_sum += loss.total.item<double>() * static_cast<double>(batch);
    rows += batch;
  }
};

// Metrics of one split from what was collected; `thresholds` per multi-label head (tuned when
// empty, and then returned through it).
json split_metrics(const TaskSpec& spec, const Collected& c,
                   std::map<std::string, std::vector<double>>* thresholds, bool tune,
                   double* score) {
  json out;
  out["loss"] = c.rows ? c.total_loss_sum / static_cast<double>(c.rows) : 0.0;
  double score_sum = 0;
  for (const auto& head : spec.heads) {
    json h;
    h["loss"] = c.rows ? c.loss_sum.at(head.name) / static_cast<double>(c.rows) : 0.0;
    const auto& probs = c.predictions.probabilities.at(head.name);
    const auto& labels = c.predictions.labels.at(head.name);
    if (head.kind == HeadKind::Softmax) {
      SoftmaxMetrics m = softmax_metrics(probs, labels, head.classes);
      h.update(m.to_json());
      score_sum += m.top1_accuracy;
    } else {
      std::vector<double> t(head.num_outputs(), kDefaultTagThreshold);
      if (tune) {
        t.clear();
        for (const auto& tuned : tune_tag_thresholds(probs, labels, head.classes))
          t.push_back(tuned.threshold);
        (*thresholds)[head.name] = t;
      } else if (thresholds && thresholds->count(head.name)) {
        t = thresholds->at(head.name);
      }
      MultiLabelMetrics m = multilabel_metrics(probs, labels, head.classes, t);
      h.update(m.to_json());
      score_sum += m.mean_average_precision;
    }
    out["heads"][head.name] = h;
  }
  *score = score_sum / static_cast<double>(spec.heads.size());
  out["score"] = *score;
  return out;
}

// What a checkpoint carries besides the model: where training stands.
struct TrainingState {
  int next_epoch = 0;  // 0-based epoch to run next
  int best_epoch = 0;  // 1-based; 0 = none yet
  double best_value = 0;
  int epochs_without_improvement = 0;
  json history = json::array();

  json to_json() const {
    return {{"next_epoch", next_epoch},
            {"best_epoch", best_epoch},
            {"best_value", best_value},
            {"epochs_without_improvement", epochs_without_improvement},
            {"history", history}};
  }
  static TrainingState from_json(const json& j) {
    TrainingState s;
    s.next_epoch = j.at("next_epoch").get<int>();
    s.best_epoch = j.at("best_epoch").get<int>();
    s.best_value = j.at("best_value").get<double>();
    s.epochs_without_improvement = j.at("epochs_without_improvement").get<int>();
    s.history = j.at("history");
    return s;
  }
};

void write_metrics_files(const fs::path& out, const TaskSpec& spec, const json& history) {
  write_file_atomically(out / "metrics.json", history.dump(2));
  std::string csv = "epoch,seconds,lr_factor,train_loss,val_loss,val_score";
  for (const auto& head : spec.heads) {
    if (head.kind == HeadKind::Softmax) {
      csv += fmt::format(",train_{0}_top1,val_{0}_top1,val_{0}_top2,val_{0}_macro_f1", head.name);
    } else {
      csv += fmt::format(",train_{0}_map,val_{0}_map,val_{0}_macro_f1", head.name);
    }
  }
  csv += '\n';
  for (const auto& e : history) {
    csv += fmt::format("{},{:.1f},{:.4f},{:.5f},{:.5f},{:.5f}", e["epoch"].get<int>(),
                       e["seconds"].get<double>(), e["lr_factor"].get<double>(),
                       e["train"]["loss"].get<double>(), e["val"]["loss"].get<double>(),
                       e["val"]["score"].get<double>());
    for (const auto& head : spec.heads) {
      const json& t = e["train"]["heads"][head.name];
      const json& v = e["val"]["heads"][head.name];
      if (head.kind == HeadKind::Softmax) {
        csv += fmt::format(",{:.5f},{:.5f},{:.5f},{:.5f}", t["top1_accuracy"].get<double>(),
                           v["top1_accuracy"].get<double>(), v["top2_accuracy"].get<double>(),
                           v["macro_f1"].get<double>());
      } else {
        csv += fmt::format(",{:.5f},{:.5f},{:.5f}", t["mean_average_precision"].get<double>(),
                           v["mean_average_precision"].get<double>(), v["macro_f1"].get<double>());
      }
    }
    csv += '\n';
  }
  write_file_atomically(out / "metrics.csv", csv);
}

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

std::string random_tag() {
  std::random_device random;
  return fmt::format("{:08x}{:08x}", random(), random());
}

}  // namespace

TrainResult train_model(const TrainOptions& requested) {
  check_options(requested);
  TrainOptions options = requested;
  options.augment = resolved_augmentation_preset(requested);
  const Augmentation augmentation = augmentation_preset(options.augment);
  const int threads = options.threads > 0 ? options.threads : default_thread_count();
  torch::set_num_threads(threads);
  torch::manual_seed(options.seed);
  const fs::path out = options.out_dir;
  const fs::path checkpoint_path = out / "checkpoint.gnm";
  const fs::path optimizer_path = out / "checkpoint.optim.pt";
  if (!options.resume && fs::exists(checkpoint_path)) {
    fail("{} already holds a training run: pass --resume to continue it or choose another --out",
         out.string());
  }
  if (options.resume && !fs::exists(checkpoint_path)) {
    fail("nothing to resume: {} has no checkpoint.gnm", out.string());
  }
  fs::create_directories(out);
  const LogFile log_file(out / "train.log");
  write_file_atomically(out / "config.json", options_to_json(options).dump(2));
  spdlog::info("training run in {} ({} threads, seed {}, {} augmentation)", out.string(), threads,
               options.seed, options.augment);

  // Data.
  const TaskSpec task = dataset_task(options.data_dir);
  DatasetOptions data_options{.strict = options.strict, .derive_classes = true};
  LabelledDataset all = load_labelled_dataset(options.data_dir / "data.parquet",
                                              options.data_dir / "images", task, data_options);
  LabelledDataset train_data, val_data;
  if (options.validation.empty()) {
    auto [train_rows, val_rows] = stratified_split(all, options.validation_fraction, options.seed);
    train_data = all.subset(train_rows);
    val_data = all.subset(val_rows);
  } else {
    train_data = std::move(all);
    TaskSpec resolved = train_data.spec;  // the validation file must use the training classes
    val_data = load_labelled_dataset(options.validation, options.data_dir / "images", resolved,
                                     data_options);
  }
  const TaskSpec spec = train_data.spec;  // a copy: train_data is moved below

  // Model: fresh from the backbone, or the checkpoint's when resuming.
  MultiTaskModel model{nullptr};
  Preprocessing pre;
  std::optional<ModelBundle> checkpoint;
  if (options.resume) {
    checkpoint = load_model_file(checkpoint_path);
    model = checkpoint->model;
    pre = checkpoint->preprocessing;
    if (model->spec().to_json() != spec.to_json()) {
      fail("{} was trained on another task (heads or classes differ from {}); start a new run",
           checkpoint_path.string(), options.data_dir.string());
    }
  } else {
    const auto& natives = native_backbone_names();
    if (options.transfer == "scratch" &&
        std::find(natives.begin(), natives.end(), options.backbone) == natives.end()) {
      fail(
          "--transfer scratch trains a native architecture from random weights: pass one of {} "
          "as --backbone, not '{}'",
          fmt::join(natives, ", "), options.backbone);
    }
    Backbone backbone = open_backbone(options.backbone);
    pre = backbone->expected_preprocessing().value_or(Preprocessing{});
    pre.width = pre.height = options.image_size;
    pre.resize = options.resize;
    model = MultiTaskModel(backbone, spec, ModelOptions{.dropout = options.dropout});
  }
  if (options.transfer == "frozen") model->freeze_backbone();
  if (options.transfer == "finetune")
    model->unfreeze_last_blocks(static_cast<size_t>(options.unfreeze_blocks));
  if (options.transfer == "scratch") model->unfreeze_backbone();

  ThreadPool pool(threads);
  ImageSet train_set =
      load_images(std::move(train_data), pre, pool, "loading training images", options.strict);
  ImageSet val_set =
      load_images(std::move(val_data), pre, pool, "loading validation images", options.strict);
  spdlog::info("{} training and {} validation images at {}x{}; backbone {}, transfer {}",
               train_set.data.size(), val_set.data.size(), pre.width, pre.height, options.backbone,
               options.transfer);

  const LossOptions losses = loss_options(options, train_set.data);
  Optimizer optimizer = make_optimizer(options, model);
  TrainingState state;
  if (checkpoint) {
    state = TrainingState::from_json(checkpoint->metadata.at("training_state"));
    torch::serialize::InputArchive archive;
    c10::IValue saved_tag;
    try {
      archive.load_from(optimizer_path.string());
      archive.read("checkpoint_tag", saved_tag);
    } catch (const c10::Error&) {
      saved_tag = c10::IValue(std::string());
    }
    if (saved_tag.isString() &&
        saved_tag.toStringRef() == checkpoint->metadata.value("checkpoint_tag", "")) {
      optimizer.optimizer->load(archive);
    } else {
      spdlog::warn("{} does not match the checkpoint; continuing with a fresh optimizer state",
                   optimizer_path.string());
    }
    spdlog::info("resuming at epoch {} of {}", state.next_epoch + 1, options.epochs);
  }

  // With a frozen backbone every epoch sees the same features: compute them once.
  const bool feature_cache = options.transfer == "frozen" && options.feature_cache;
  torch::Tensor train_features, val_features;
  std::vector<size_t> cached_rows;  // training example of each cached feature row
  auto features_of = [&](const std::vector<cv::Mat>& images, bool augmented, uint64_t seed,
                         const std::string& label) {
    torch::InferenceMode guard;
    model->eval();
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::vector<torch::Tensor> parts;
    Progress progress(label, static_cast<int64_t>(images.size()), "img");
    for (size_t start = 0; start < images.size(); start += 256) {
      std::vector<cv::Mat> batch(
          images.begin() + static_cast<ptrdiff_t>(start),
          images.begin() + static_cast<ptrdiff_t>(std::min(images.size(), start + 256)));
      if (augmented) {
        for (auto& image : batch) image = augment(image, augmentation, rng);
      }
      parts.push_back(model->features(make_input_batch(batch, pre)));
      progress.advance(static_cast<int64_t>(batch.size()));
    }
    return torch::cat(parts).clone();
  };
  if (feature_cache) {
    std::vector<torch::Tensor> views;
    for (int v = 0; v < options.feature_views; ++v) {
      views.push_back(
          features_of(train_set.images, v > 0, options.seed + v,
                      fmt::format("caching features (view {}/{})", v + 1, options.feature_views)));
      for (size_t i = 0; i < train_set.data.size(); ++i) cached_rows.push_back(i);
    }
    train_features = torch::cat(views);
    val_features = features_of(val_set.images, false, 0, "caching validation features");
  }

  // Validation predictions and losses of `net`; from the cached features when `use_cache` (only
  // for the run's own model, whose frozen backbone computed them).
  auto validate = [&](MultiTaskModel& net, bool use_cache) {
    Collected collected;
    torch::InferenceMode guard;
    net->eval();
    for (size_t start = 0; start < val_set.data.size(); start += 256) {
      std::vector<size_t> examples(std::min<size_t>(256, val_set.data.size() - start));
      std::iota(examples.begin(), examples.end(), start);
      HeadOutputs logits;
      if (use_cache) {
        logits = net->heads_forward(val_features.narrow(0, static_cast<int64_t>(start),
                                                        static_cast<int64_t>(examples.size())));
      } else {
        std::vector<cv::Mat> images;
        for (size_t i : examples) images.push_back(val_set.images[i]);
        logits = net->forward(make_input_batch(images, pre));
      }
      const HeadTargets targets = targets_for(val_set.data, examples);
      collected.add(spec, logits, targets, multitask_loss(spec, logits, targets, losses));
    }
    return collected;
  };

  StopSignals signals;
  TrainResult result;
  SplitPredictions best_validation;  // for the report
  std::map<std::string, std::vector<double>> best_thresholds;
  result.model_path = out / "model.gnm";
  const auto steps_per_epoch =
      static_cast<int64_t>((feature_cache ? cached_rows.size() : train_set.data.size()) +
                           options.batch_size - 1) /
      options.batch_size;
  const std::string tag = random_tag();

  auto save_checkpoint = [&](const std::map<std::string, std::vector<double>>& thresholds) {
    torch::serialize::OutputArchive archive;
    optimizer.optimizer->save(archive);
    archive.write("checkpoint_tag", c10::IValue(tag));
    write_atomically(optimizer_path, [&](const fs::path& temp) { archive.save_to(temp.string()); });
    ModelBundle bundle{.model = model, .preprocessing = pre, .tag_thresholds = thresholds};
    bundle.metadata = {{"training_state", state.to_json()}, {"checkpoint_tag", tag}};
    save_model_file(bundle, checkpoint_path);
  };

  for (int epoch = state.next_epoch; epoch < options.epochs; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    std::mt19937 rng(static_cast<uint32_t>(options.seed * 7919 + static_cast<uint64_t>(epoch)));
    torch::manual_seed(options.seed + static_cast<uint64_t>(epoch));
    const size_t rows = feature_cache ? cached_rows.size() : train_set.data.size();
    std::vector<size_t> order(rows);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);

    model->train();
    Collected train_collected;
    Progress progress(fmt::format("epoch {}/{}", epoch + 1, options.epochs), steps_per_epoch,
                      "steps");
    int64_t step = 0;
    for (size_t start = 0; start < rows; start += static_cast<size_t>(options.batch_size), ++step) {
      optimizer.set_factor(
          schedule_factor(options, epoch + static_cast<double>(step) / steps_per_epoch));
      std::vector<size_t> batch(
          order.begin() + static_cast<ptrdiff_t>(start),
          order.begin() + static_cast<ptrdiff_t>(std::min(rows, start + options.batch_size)));
      HeadOutputs logits;
      std::vector<size_t> examples;
      if (feature_cache) {
        for (size_t r : batch) examples.push_back(cached_rows[r]);
        auto index = torch::tensor(std::vector<int64_t>(batch.begin(), batch.end()));
        logits = model->heads_forward(train_features.index_select(0, index));
      } else {
        examples = batch;
        std::vector<cv::Mat> images;
        for (size_t r : batch) {
          images.push_back(augment(train_set.images[r], augmentation, rng));
        }
        logits = model->forward(make_input_batch(images, pre));
      }
      const HeadTargets targets = targets_for(train_set.data, examples);
      LossResult loss = multitask_loss(spec, logits, targets, losses);
      if (!std::isfinite(loss.total.item<double>())) {
        fail(
            "the training loss became {} at epoch {} step {}: lower the learning rate (--head-lr, "
            "--backbone-lr). The last good checkpoint is kept in {}",
            loss.total.item<double>(), epoch + 1, step + 1, out.string());
      }
      optimizer.optimizer->zero_grad();
      loss.total.backward();
      optimizer.optimizer->step();
      train_collected.add(spec, logits, targets, loss);
      progress.set_status(
          fmt::format("loss {:.4f}", train_collected.total_loss_sum / train_collected.rows));
      progress.advance();
      if (stop_requested) break;
    }
    progress.finish();
    if (stop_requested) {
      // Resume restarts this epoch from the weights reached so far.
      state.next_epoch = epoch;
      save_checkpoint({});
      spdlog::warn("stopped by signal during epoch {}; checkpoint saved. Continue with --resume",
                   epoch + 1);
      result.interrupted = true;
      break;
    }

    Collected val_collected = validate(model, feature_cache);
    std::map<std::string, std::vector<double>> thresholds;
    double train_score = 0, val_score = 0;
    json entry;
    entry["epoch"] = epoch + 1;
    entry["lr_factor"] = schedule_factor(options, epoch + 1.0 - 1e-9);
    entry["train"] = split_metrics(spec, train_collected, nullptr, false, &train_score);
    entry["val"] = split_metrics(spec, val_collected, &thresholds, true, &val_score);
    entry["seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    state.history.push_back(entry);

    const double value =
        options.monitor == "score" ? val_score : -entry["val"]["loss"].get<double>();
    const bool improved = state.best_epoch == 0 || value > state.best_value;
    std::string summary =
        fmt::format("epoch {}/{}: train loss {:.4f}, val loss {:.4f}, val score {:.4f}", epoch + 1,
                    options.epochs, entry["train"]["loss"].get<double>(),
                    entry["val"]["loss"].get<double>(), val_score);
    for (const auto& head : spec.heads) {
      const json& v = entry["val"]["heads"][head.name];
      summary +=
          head.kind == HeadKind::Softmax
              ? fmt::format(", {} top1 {:.3f} top2 {:.3f}", head.name,
                            v["top1_accuracy"].get<double>(), v["top2_accuracy"].get<double>())
              : fmt::format(", {} mAP {:.3f} F1 {:.3f}", head.name,
                            v["mean_average_precision"].get<double>(), v["macro_f1"].get<double>());
    }
    spdlog::info("{}{}", summary, improved ? " (best so far)" : "");
    if (improved) {
      state.best_epoch = epoch + 1;
      state.best_value = value;
      state.epochs_without_improvement = 0;
      ModelBundle best{.model = model, .preprocessing = pre, .tag_thresholds = thresholds};
      best.metrics = {
          {"epoch", epoch + 1}, {"validation", entry["val"]}, {"train", entry["train"]}};
      best.metadata = {{"dataset", options.data_dir.string()},
                       {"training_rows", train_set.data.size()},
                       {"validation_rows", val_set.data.size()},
                       {"config", options_to_json(options)}};
      save_model_file(best, result.model_path);
      best_validation = val_collected.predictions;
      best_thresholds = thresholds;
    } else {
      ++state.epochs_without_improvement;
    }
    state.next_epoch = epoch + 1;
    write_metrics_files(out, spec, state.history);
    save_checkpoint(thresholds);
    if (options.patience > 0 && state.epochs_without_improvement >= options.patience) {
      spdlog::info("no improvement for {} epochs: stopping early", options.patience);
      result.stopped_early = true;
      break;
    }
  }

  result.best_epoch = state.best_epoch;
  result.epochs_run = state.next_epoch;
  if (state.best_epoch > 0)
    result.best_metrics = state.history.at(static_cast<size_t>(state.best_epoch - 1))["val"];
  if (options.report && state.best_epoch > 0 &&
      (!best_validation.probabilities.empty() || !result.interrupted)) {
    ModelBundle best = load_model_file(result.model_path);
    if (best_validation.probabilities.empty()) {
      // The best epoch ran before a resume: predict the validation data again with its model.
      spdlog::info("predicting the validation data with the best epoch's model for the report");
      best_validation = validate(best.model, false).predictions;
      best_thresholds = best.tag_thresholds;
    }
    const int64_t macs = model_macs_per_image(best);
    std::error_code ignored;
    write_train_report(
        {.out_dir = out,
         .model_path = result.model_path,
         .spec = spec,
         .history = &state.history,
         .best_validation = best_validation,
         .validation_images = val_set.data.images,
         .thresholds = best_thresholds,
         .summary = {{"data", options.data_dir.string()},
                     {"backbone", options.backbone},
                     {"transfer", options.transfer},
                     {"input size", fmt::format("{}x{}", pre.width, pre.height)},
                     {"FLOPs per image",
                      fmt::format("{:.1f} M ({}: 2 × the multiply-accumulates of convolutions and "
                                  "linear layers)",
                                  2e-6 * static_cast<double>(macs), 2 * macs)},
                     {"multiply-accumulates per image", macs},
                     {"parameters", parameter_count(model)},
                     {"model file", result.model_path.string()},
                     {"model file size (bytes)", fs::file_size(result.model_path, ignored)},
                     {"training rows", train_set.data.size()},
                     {"validation rows", val_set.data.size()},
                     {"best epoch", state.best_epoch},
                     {"epochs run", state.next_epoch}}});
    spdlog::info("report: {}", (out / "report.html").string());
  }
  return result;
}

TrainResult pretrain_backbone(TrainOptions options) {
  if (options.transfer != "scratch") {
    spdlog::info("pretraining trains the backbone from scratch (--transfer scratch)");
    options.transfer = "scratch";
  }
  TrainResult result = train_model(options);
  if (result.interrupted) return result;
  ModelBundle best = load_model_file(result.model_path);
  const fs::path backbone_path = options.out_dir / "backbone.pt";
  const json metadata = {{"pretrained_on", options.data_dir.string()},
                         {"validation", result.best_metrics},
                         {"image_size", options.image_size}};
  save_backbone_file(best.model->backbone(), backbone_path, metadata);
  spdlog::info("backbone saved to {} (use: garmentnet train --backbone {})", backbone_path.string(),
               backbone_path.string());
  return result;
}

}  // namespace garmentnet
