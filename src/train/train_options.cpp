#include "train/train_options.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/backbone.h"

namespace garmentnet {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool is_native_architecture(const std::string& backbone) {
  const auto natives = native_backbone_names();
  return std::find(natives.begin(), natives.end(), backbone) != natives.end();
}

// The run's config.json when resuming (an empty object otherwise or when unreadable).
json resumed_config(const TrainOptions& o) {
  const fs::path path = o.out_dir / "config.json";
  if (!o.resume || !fs::exists(path)) return json::object();
  json config = json::parse(read_file(path), nullptr, /*allow_exceptions=*/false);
  return config.is_object() ? config : json::object();
}

// The augmentation preset of a run: the one asked for; when resuming without one, the preset the
// run was started with (older runs stored a true/false `augment`); else standard.
AugmentationPreset resolve_augmentation(const TrainOptions& o, const json& config) {
  if (o.augment) return *o.augment;
  if (!o.resume) return AugmentationPreset::Standard;
  const json stored = config.value("augment", json());
  if (stored.is_string()) {
    if (const auto preset = kAugmentationPresets.find(stored.get<std::string>())) return *preset;
  }
  if (stored.is_boolean())
    return stored.get<bool>() ? AugmentationPreset::Standard : AugmentationPreset::None;
  spdlog::warn("{} does not say which augmentation the run used; resuming with standard",
               (o.out_dir / "config.json").string());
  return AugmentationPreset::Standard;
}

// The transfer mode: the one asked for; when resuming without one, the run's own; else scratch
// for a bare architecture (its weights are random: fine-tuning only its last blocks would leave
// the first ones random) and finetune for pretrained weights.
TransferMode resolve_transfer(const TrainOptions& o, const json& config) {
  const bool native = is_native_architecture(o.backbone);
  if (o.transfer) {
    if (native && *o.transfer != TransferMode::Scratch && !o.resume) {
      spdlog::warn(
          "--backbone {} has random weights: with --transfer {} its {} stay random. For transfer "
          "learning pass a backbone file from `garmentnet pretrain` or torchscript:FILE; to train "
          "the architecture, leave --transfer out (scratch)",
          o.backbone, kTransferModes.name_of(*o.transfer),
          *o.transfer == TransferMode::Frozen ? "weights all" : "first blocks");
    }
    return *o.transfer;
  }
  if (o.resume && config.contains("transfer") && config["transfer"].is_string()) {
    if (const auto mode = kTransferModes.find(config["transfer"].get<std::string>())) return *mode;
  }
  return native ? TransferMode::Scratch : TransferMode::Finetune;
}

using OptionSetter = std::function<void(TrainOptions&, const json&)>;

// A setter of a plain field; the JSON value must be of the field's kind.
template <typename T>
OptionSetter field_setter(T TrainOptions::*field) {
  return [field](TrainOptions& o, const json& value) {
    bool fits = value.is_number();
    if constexpr (std::is_same_v<T, bool>) fits = value.is_boolean();
    if constexpr (std::is_same_v<T, std::string>) fits = value.is_string();
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)
      fits = value.is_number_integer() && (std::is_signed_v<T> || value.get<int64_t>() >= 0);
    if (!fits) fail("a value of the wrong kind: {}", value.dump());
    o.*field = value.get<T>();
  };
}

// A setter of a choice: the value is one of `names`' names.
template <typename Field, typename Names>
OptionSetter choice_setter(Field TrainOptions::*field, const Names& names) {
  return [field, &names](TrainOptions& o, const json& value) {
    if (!value.is_string())
      fail("a value of the wrong kind: {} (use {})", value.dump(), names.listed());
    o.*field = names.parse(value.get<std::string>(), "choice");
  };
}

const std::map<std::string, OptionSetter>& option_setters() {
  static const std::map<std::string, OptionSetter> setters = {
      {"backbone", field_setter(&TrainOptions::backbone)},
      {"transfer", choice_setter(&TrainOptions::transfer, kTransferModes)},
      {"unfreeze_blocks", field_setter(&TrainOptions::unfreeze_blocks)},
      {"epochs", field_setter(&TrainOptions::epochs)},
      {"batch_size", field_setter(&TrainOptions::batch_size)},
      {"head_lr", field_setter(&TrainOptions::head_lr)},
      {"backbone_lr", field_setter(&TrainOptions::backbone_lr)},
      {"weight_decay", field_setter(&TrainOptions::weight_decay)},
      {"optimizer", choice_setter(&TrainOptions::optimizer, kOptimizerKinds)},
      {"schedule", choice_setter(&TrainOptions::schedule, kLrSchedules)},
      {"warmup_epochs", field_setter(&TrainOptions::warmup_epochs)},
      {"label_smoothing", field_setter(&TrainOptions::label_smoothing)},
      {"balance_tags", field_setter(&TrainOptions::balance_tags)},
      {"dropout", field_setter(&TrainOptions::dropout)},
      {"validation_fraction", field_setter(&TrainOptions::validation_fraction)},
      {"monitor", choice_setter(&TrainOptions::monitor, kMonitors)},
      {"patience", field_setter(&TrainOptions::patience)},
      {"image_size", field_setter(&TrainOptions::image_size)},
      {"resize", choice_setter(&TrainOptions::resize, kResizeModes)},
      {"augment", choice_setter(&TrainOptions::augment, kAugmentationPresets)},
      {"feature_cache", field_setter(&TrainOptions::feature_cache)},
      {"feature_views", field_setter(&TrainOptions::feature_views)},
      {"seed", field_setter(&TrainOptions::seed)},
      {"strict", field_setter(&TrainOptions::strict)}};
  return setters;
}

}  // namespace

void set_option(TrainOptions& options, const std::string& name, const json& value) {
  const auto found = option_setters().find(name);
  if (found == option_setters().end()) {
    fail("option '{}' is unknown: use one of {}", name, fmt::join(settable_option_names(), ", "));
  }
  try {
    found->second(options, value);
  } catch (const InputError& error) {
    fail("option '{}': {}", name, error.what());
  }
}

std::vector<std::string> settable_option_names() {
  std::vector<std::string> names;
  for (const auto& [name, setter] : option_setters()) names.push_back(name);
  return names;
}

void check_options(const TrainOptions& o) {
  if (o.data_dir.empty())
    fail("--data is required: a dataset folder with data.parquet and images/");
  if (o.out_dir.empty()) fail("--out is required: the run directory to write");
  if (o.epochs < 1) fail("--epochs must be at least 1");
  if (o.batch_size < 1) fail("--batch-size must be at least 1");
  if (o.image_size < 16 || o.image_size > 1024) fail("--image-size must be between 16 and 1024");
  if (o.validation.empty() && (o.validation_fraction < 0 || o.validation_fraction >= 1)) {
    fail("--validation-fraction must be at least 0 (no validation) and below 1");
  }
  if (o.folds != 0 && (o.folds < 2 || o.fold < 0 || o.fold >= o.folds)) {
    fail("--folds must be at least 2 and --fold between 0 and {} (given --folds {} --fold {})",
         std::max(o.folds - 1, 0), o.folds, o.fold);
  }
  if (o.folds != 0 && !o.validation.empty())
    fail("--folds and --validation both choose the validation rows: give one of them");
  if (o.feature_views < 1) fail("--feature-views must be at least 1");
  if (o.unfreeze_blocks < 0) fail("--unfreeze-blocks must be at least 0");
  if (o.transfer == TransferMode::Scratch && !is_native_architecture(o.backbone)) {
    fail(
        "--transfer scratch trains a native architecture from random weights: pass one of {} as "
        "--backbone, not '{}'",
        fmt::join(native_backbone_names(), ", "), o.backbone);
  }
}

TrainOptions resolve_options(const TrainOptions& requested) {
  check_options(requested);
  TrainOptions o = requested;
  const json config = resumed_config(requested);
  o.augment = resolve_augmentation(requested, config);
  o.transfer = resolve_transfer(requested, config);
  return o;
}

json to_json(const TrainOptions& o) {
  const AugmentationPreset augment = o.augment.value_or(AugmentationPreset::Standard);
  return {{"data", o.data_dir.string()},
          {"out", o.out_dir.string()},
          {"validation", o.validation.string()},
          {"backbone", o.backbone},
          {"transfer", o.transfer ? kTransferModes.name_of(*o.transfer) : ""},
          {"unfreeze_blocks", o.unfreeze_blocks},
          {"epochs", o.epochs},
          {"batch_size", o.batch_size},
          {"head_lr", o.head_lr},
          {"backbone_lr", o.backbone_lr},
          {"weight_decay", o.weight_decay},
          {"optimizer", kOptimizerKinds.name_of(o.optimizer)},
          {"schedule", kLrSchedules.name_of(o.schedule)},
          {"warmup_epochs", o.warmup_epochs},
          {"label_smoothing", o.label_smoothing},
          {"balance_tags", o.balance_tags},
          {"dropout", o.dropout},
          {"validation_fraction", o.validation_fraction},
          {"folds", o.folds},
          {"fold", o.fold},
          {"monitor", kMonitors.name_of(o.monitor)},
          {"patience", o.patience},
          {"image_size", o.image_size},
          {"resize", name_of(o.resize)},
          {"augment", kAugmentationPresets.name_of(augment)},
          {"augmentation", augmentation_of(augment).to_json()},
          {"feature_cache", o.feature_cache},
          {"feature_views", o.feature_views},
          {"seed", o.seed},
          {"strict", o.strict}};
}

}  // namespace garmentnet
