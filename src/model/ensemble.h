// Ensemble files for callers that do not need torch (e.g. `tune`, `evaluate`).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

namespace garmentnet {

// The parts of a model file's JSON document that describe each of its models (architecture, tag
// thresholds, metrics, metadata): an ensemble's "members", or the document itself for one model.
std::vector<nlohmann::json> model_documents(const nlohmann::json& file_document);

// Writes the models of these model files as one ensemble file (save_ensemble_file in
// model_file.h), with `metadata` as its own.
void write_ensemble_file(const std::vector<std::filesystem::path>& model_files,
                         nlohmann::json metadata, const std::filesystem::path& out);

}  // namespace garmentnet
