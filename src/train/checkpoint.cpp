#include "train/checkpoint.h"

#include <spdlog/spdlog.h>
#include <torch/serialize.h>

#include <cstdlib>
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
    : run_dir_(run_dir), model_path_(run_dir / "checkpoint.gnm") {}

// checkpoint.optim.<tag>.pt; with no tag, checkpoint.optim.pt, where versions before per-save tags
// kept it.
fs::path Checkpoint::optimizer_path(const std::string& tag) const {
  return run_dir_ / (tag.empty() ? "checkpoint.optim.pt" : "checkpoint.optim." + tag + ".pt");
}

bool Checkpoint::exists() const { return fs::exists(model_path_); }

void Checkpoint::save(MultiTaskModel& model, const Preprocessing& pre,
                      const std::map<std::string, std::vector<double>>& thresholds,
                      const Optimizer& optimizer, const TrainingState& state) const {
  const std::string tag = random_tag();
  torch::serialize::OutputArchive archive;
  optimizer.optimizer->save(archive);
  archive.write("checkpoint_tag", c10::IValue(tag));
  const fs::path optimizer_file = optimizer_path(tag);
  write_atomically(optimizer_file, [&](const fs::path& temp) { archive.save_to(temp.string()); });
  // Fault injection for the tests: the process ends here, as a kill -9 between the two writes
  // would end it, when saving after epoch GARMENTNET_TEST_CRASH_BETWEEN_CHECKPOINT_WRITES.
  if (const char* crash = std::getenv("GARMENTNET_TEST_CRASH_BETWEEN_CHECKPOINT_WRITES");
      crash != nullptr && std::atoi(crash) == state.next_epoch)
    std::_Exit(137);
  ModelBundle bundle{.model = model, .preprocessing = pre, .tag_thresholds = thresholds};
  bundle.metadata = {{"training_state", state.to_json()}, {"checkpoint_tag", tag}};
  save_model_file(bundle, model_path_);
  // Only now is the previous pair's optimiser file no longer needed.
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(run_dir_, error)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("checkpoint.optim.") && name.ends_with(".pt") &&
        entry.path() != optimizer_file)
      fs::remove(entry.path(), error);
  }
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
  // The tagged file of this checkpoint, or the one file of runs of older versions.
  fs::path file = optimizer_path(loaded.tag);
  if (!fs::exists(file)) file = optimizer_path("");
  torch::serialize::InputArchive archive;
  c10::IValue saved_tag;
  try {
    archive.load_from(file.string());
    archive.read("checkpoint_tag", saved_tag);
  } catch (const c10::Error&) {
    saved_tag = c10::IValue(std::string());
  }
  if (saved_tag.isString() && !loaded.tag.empty() && saved_tag.toStringRef() == loaded.tag) {
    optimizer.optimizer->load(archive);
  } else {
    spdlog::warn("{} holds no optimizer state of this checkpoint; continuing with a fresh one",
                 run_dir_.string());
  }
}

}  // namespace garmentnet
