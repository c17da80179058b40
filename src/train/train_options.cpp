#include "train/train_options.h"

#include <spdlog/spdlog.h>

#include <algorithm>
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

}  // namespace

void check_options(const TrainOptions& o) {
  if (o.data_dir.empty())
    fail("--data is required: a dataset folder with data.parquet and images/");
  if (o.out_dir.empty()) fail("--out is required: the run directory to write");
  if (o.epochs < 1) fail("--epochs must be at least 1");
  if (o.batch_size < 1) fail("--batch-size must be at least 1");
  if (o.image_size < 16 || o.image_size > 1024) fail("--image-size must be between 16 and 1024");
  if (o.validation.empty() && (o.validation_fraction <= 0 || o.validation_fraction >= 1)) {
    fail("--validation-fraction must be between 0 and 1 (exclusive)");
  }
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
