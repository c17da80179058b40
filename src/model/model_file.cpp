#include "model/model_file.h"

#include <fmt/chrono.h>
#include <torch/serialize.h>
#include <torch/version.h>

#include <chrono>
#include <sstream>

#include "core/error.h"
#include "core/version.h"
#include "model/file_container.h"
#include "model/quantized_backbone.h"

namespace garmentnet {
namespace {

constexpr ContainerKind kModelFile{
    .magic = "GARMENTNET-MODEL",
    .version = kModelFormatVersion,
    .description = "garmentnet model file",
    .remedy = "pass a .gnm file written by `garmentnet train`",
};

std::string utc_now() {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                     std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
}

const HeadSpec& multilabel_head(const TaskSpec& spec, const std::string& name,
                                const std::string& source) {
  const HeadSpec* head = spec.find_head(name);
  if (!head || head->kind != HeadKind::MultiLabel)
    fail("{}: tag thresholds are given for '{}', which is not a multi-label head of the task",
         source, name);
  return *head;
}

nlohmann::json thresholds_to_json(const ModelBundle& bundle, const std::string& source) {
  nlohmann::json json = nlohmann::json::object();
  for (const auto& [name, values] : bundle.tag_thresholds) {
    const HeadSpec& head = multilabel_head(bundle.model->spec(), name, source);
    if (values.size() != head.num_outputs())
      fail("{}: head '{}' has {} tags but {} thresholds", source, name, head.num_outputs(),
           values.size());
    for (size_t i = 0; i < values.size(); ++i) json[name][head.classes[i]] = values[i];
  }
  return json;
}

std::map<std::string, std::vector<double>> thresholds_from_json(const nlohmann::json& json,
                                                                const TaskSpec& spec,
                                                                const std::string& source) {
  std::map<std::string, std::vector<double>> thresholds;
  for (const auto& [name, per_tag] : json.items()) {
    const HeadSpec& head = multilabel_head(spec, name, source);
    std::vector<double>& values = thresholds[name];
    for (const auto& tag : head.classes) {
      if (!per_tag.contains(tag) || !per_tag[tag].is_number())
        fail("{}: no threshold for tag '{}' of head '{}'; write the model anew", source, tag, name);
      values.push_back(per_tag[tag].get<double>());
    }
  }
  return thresholds;
}

}  // namespace

std::vector<double> ModelBundle::thresholds(const std::string& head) const {
  if (const auto found = tag_thresholds.find(head); found != tag_thresholds.end())
    return found->second;
  return std::vector<double>(model->spec().head(head).num_outputs(), 0.5);
}

void save_model_file(const ModelBundle& bundle, const std::filesystem::path& path) {
  const std::string source = path.string();
  nlohmann::json metadata =
      bundle.metadata.is_object() ? bundle.metadata : nlohmann::json::object();
  metadata["created_at"] = utc_now();
  metadata["garmentnet_version"] = kGarmentnetVersion;
  metadata["torch_version"] = TORCH_VERSION;
  nlohmann::json document{{"format", "garmentnet-model"},
                          {"precision", is_quantized(bundle.model->backbone()) ? "int8" : "fp32"},
                          {"architecture", bundle.model->architecture()},
                          {"task_spec", bundle.model->spec().to_json()},
                          {"preprocessing", bundle.preprocessing.to_json()},
                          {"tag_thresholds", thresholds_to_json(bundle, source)},
                          {"metrics", bundle.metrics},
                          {"metadata", metadata}};
  std::ostringstream weights;
  torch::save(bundle.model, weights);
  std::vector<std::pair<std::string, std::string>> sections{{"weights", weights.str()}};
  if (std::string scripted = torchscript_bytes(bundle.model->backbone()); !scripted.empty())
    sections.emplace_back("torchscript_backbone", std::move(scripted));
  write_container(path, kModelFile, std::move(document), sections);
}

ModelBundle load_model_file(const std::filesystem::path& path) {
  ContainerContents contents = read_container(path, kModelFile);
  const std::string source = path.string();
  const nlohmann::json& document = contents.document;
  for (const char* field : {"architecture", "task_spec", "preprocessing"})
    if (!document.contains(field))
      fail("{} is a corrupt garmentnet model file (no '{}'); write the model anew", source, field);
  const nlohmann::json& architecture = document["architecture"];
  ModelBundle bundle;
  TaskSpec spec = TaskSpec::from_json(document["task_spec"], source + " task_spec");
  Backbone backbone = backbone_from_architecture(architecture.value("backbone", nlohmann::json()),
                                                 contents.sections["torchscript_backbone"], source);
  bundle.model = MultiTaskModel(
      std::move(backbone), std::move(spec),
      ModelOptions::from_json(architecture.value("options", nlohmann::json::object())));
  std::istringstream weights(contents.sections["weights"]);
  try {
    torch::load(bundle.model, weights);
  } catch (const c10::Error& error) {
    fail("{}: its weights do not fit its architecture ({}); write the model anew", source,
         error.what_without_backtrace());
  }
  bundle.model->eval();
  bundle.preprocessing = Preprocessing::from_json(document["preprocessing"]);
  bundle.tag_thresholds = thresholds_from_json(
      document.value("tag_thresholds", nlohmann::json::object()), bundle.model->spec(), source);
  bundle.metrics = document.value("metrics", nlohmann::json::object());
  bundle.metadata = document.value("metadata", nlohmann::json::object());
  return bundle;
}

nlohmann::json read_model_file_document(const std::filesystem::path& path) {
  return read_container_document(path, kModelFile);
}

}  // namespace garmentnet
