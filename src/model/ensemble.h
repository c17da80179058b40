// Ensemble files from model files, for callers that do not need torch (e.g. `tune`).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

namespace garmentnet {

// Writes the models of these model files as one ensemble file (save_ensemble_file in
// model_file.h), with `metadata` as its own.
void write_ensemble_file(const std::vector<std::filesystem::path>& model_files,
                         nlohmann::json metadata, const std::filesystem::path& out);

}  // namespace garmentnet
