#include "model/ensemble.h"

#include "model/model_file.h"

namespace garmentnet {

std::vector<nlohmann::json> model_documents(const nlohmann::json& file_document) {
  if (!file_document.contains("members")) return {file_document};
  return file_document["members"].get<std::vector<nlohmann::json>>();
}

void write_ensemble_file(const std::vector<std::filesystem::path>& model_files,
                         nlohmann::json metadata, const std::filesystem::path& out) {
  std::vector<ModelBundle> members;
  for (const auto& file : model_files) members.push_back(load_model_file(file));
  save_ensemble_file(members, std::move(metadata), out);
}

}  // namespace garmentnet
