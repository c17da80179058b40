#include "train/checkpoint.h"

#include <spdlog/spdlog.h>
#include <torch/serialize.h>

#include <nlohmann/json.hpp>
#include <random>

#include "core/atomic_file.h"

namespace garmentnet {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string random_tag() {
  std::random_device random;
  return fmt::format("{:08x}{:08x}", random(), random());
}

}  // namespace

json TrainingState::to_json() const {
  return {{"next_epoch", next_epoch},
          {"best_epoch", best_epoch},
          {"best_value", best_value},
          {"epochs_without_improvement", epochs_without_improvement},
          {"history", history_to_json(history)}};
}

TrainingState TrainingState::from_json(const json& j) {
  TrainingState s;
  s.next_epoch = j.at("next_epoch").get<int>();
  s.best_epoch = j.at("best_epoch").get<int>();
  s.best_value = j.at("best_value").get<double>();
  s.epochs_without_improvement = j.at("epochs_without_improvement").get<int>();
  s.history = history_from_json(j.at("history"));
  return s;
}

Checkpoint::Checkpoint(const fs::path& run_dir)
    : model_path_(run_dir / "checkpoint.gnm"),
      optimizer_path_(run_dir / "checkpoint.optim.pt"),
      tag_(random_tag()) {}

bool Checkpoint::exists() const { return fs::exists(model_path_); }

void Checkpoint::save(MultiTaskModel& model, const Preprocessing& pre,
                      const std::map<std::string, std::vector<double>>& thresholds,
                      const Optimizer& optimizer, const TrainingState& state) const {
  torch::serialize::OutputArchive archive;
  optimizer.optimizer->save(archive);
  archive.write("checkpoint_tag", c10::IValue(tag_));
  write_atomically(optimizer_path_, [&](const fs::path& temp) { archive.save_to(temp.string()); });
  ModelBundle bundle{.model = model, .preprocessing = pre, .tag_thresholds = thresholds};
  bundle.metadata = {{"training_state", state.to_json()}, {"checkpoint_tag", tag_}};
  save_model_file(bundle, model_path_);
}

Checkpoint::Loaded Checkpoint::load() const {
  Loaded loaded;
  loaded.bundle = load_model_file(model_path_);
  try {
    loaded.state = TrainingState::from_json(loaded.bundle.metadata.at("training_state"));
  } catch (const json::exception& e) {
    fail("{} holds no readable training state ({}); start a new run", model_path_.string(),
         e.what());
  }
  loaded.tag = loaded.bundle.metadata.value("checkpoint_tag", "");
  return loaded;
}

void Checkpoint::restore_optimizer(const Loaded& loaded, Optimizer& optimizer) const {
  torch::serialize::InputArchive archive;
  c10::IValue saved_tag;
  try {
    archive.load_from(optimizer_path_.string());
    archive.read("checkpoint_tag", saved_tag);
  } catch (const c10::Error&) {
    saved_tag = c10::IValue(std::string());
  }
  if (saved_tag.isString() && !loaded.tag.empty() && saved_tag.toStringRef() == loaded.tag) {
    optimizer.optimizer->load(archive);
  } else {
    spdlog::warn("{} does not match the checkpoint; continuing with a fresh optimizer state",
                 optimizer_path_.string());
  }
}

}  // namespace garmentnet
