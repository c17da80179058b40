// The model file (.gnm): one self-describing, versioned file with everything needed to use a
// trained model and no other flags: architecture, weights, task spec, preprocessing, tuned tag
// thresholds, training metrics and free metadata. Layout: docs/model-format.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/image.h"
#include "model/multitask_model.h"

namespace garmentnet {

// The format version this build writes model files in; it also reads version 1
// (docs/model-format.md).
inline constexpr uint32_t kModelFormatVersion = 2;
// The format version of ensemble files, several models in one file (the newest this build reads).
// Plain model files stay at kModelFormatVersion, so that older builds still read them.
inline constexpr uint32_t kEnsembleFormatVersion = 3;

struct ModelBundle {
  MultiTaskModel model{nullptr};  // layers and weights; its spec() is the task spec
  Preprocessing preprocessing;    // how images become inputs
  // Multi-label head name → probability threshold per tag, in output order; heads not listed use
  // 0.5 for every tag.
  std::map<std::string, std::vector<double>> tag_thresholds;
  nlohmann::json metrics = nlohmann::json::object();   // training metrics (free-form)
  nlohmann::json metadata = nlohmann::json::object();  // free-form (dataset info, …); saving adds
                                                       // created_at and garmentnet_version

  // Thresholds of one multi-label head (0.5 each when none were tuned).
  std::vector<double> thresholds(const std::string& head) const;
};

// Writes the bundle atomically. InputError if thresholds do not match the heads.
void save_model_file(const ModelBundle& bundle, const std::filesystem::path& path);

// Reads a model file onto the CPU, in eval mode. InputError naming the file for a missing,
// truncated, corrupt, foreign or other-version file, and for an ensemble file (the commands that
// take one model: train's resume, export, quantize, bench).
ModelBundle load_model_file(const std::filesystem::path& path);

// Writes models of one task and preprocessing (e.g. a study's fold models) as one ensemble file,
// atomically: Predictor (predict, evaluate, serve) averages the members' probabilities, and
// decides tags at the mean of the members' thresholds. `metadata` is the ensemble's own. InputError
// if the members' tasks or preprocessing differ.
void save_ensemble_file(const std::vector<ModelBundle>& members, nlohmann::json metadata,
                        const std::filesystem::path& path);

// The thresholds of multi-label head `head` for models of one task used together: the mean of
// theirs (for one model, its own).
std::vector<double> mean_thresholds(const std::vector<ModelBundle>& models,
                                    const std::string& head);

// The models of a model file: the one of a plain file, each member of an ensemble file, onto the
// CPU, in eval mode; errors as load_model_file's.
std::vector<ModelBundle> load_model_members(const std::filesystem::path& path);

// Only the file's JSON document (task spec, preprocessing, thresholds, metrics, metadata,
// architecture), without reading the weights or needing torch to build the model.
nlohmann::json read_model_file_document(const std::filesystem::path& path);

}  // namespace garmentnet
