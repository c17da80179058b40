#include "model/model_file.h"

#include <fmt/chrono.h>
#include <torch/serialize.h>
#include <torch/version.h>

#include <chrono>
#include <sstream>

#include "core/error.h"
#include "core/version.h"
#include "model/ensemble.h"
#include "model/file_container.h"
#include "model/quantized_backbone.h"

namespace garmentnet {
namespace {

// Reads every version; writes plain models at kModelFormatVersion (kPlainModelFile).
constexpr ContainerKind kModelFile{
    .magic = "GARMENTNET-MODEL",
    .version = kEnsembleFormatVersion,
    .description = "garmentnet model file",
    .remedy = "pass a .gnm file written by `garmentnet train`",
};
constexpr ContainerKind kPlainModelFile{.magic = kModelFile.magic,
                                        .version = kModelFormatVersion,
                                        .description = kModelFile.description,
                                        .remedy = kModelFile.remedy};

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

namespace {

// What a model file says of one model beyond the task and preprocessing it shares with the other
// members of an ensemble.
nlohmann::json member_document(const ModelBundle& bundle, const std::string& source) {
  return {{"architecture", bundle.model->architecture()},
          {"tag_thresholds", thresholds_to_json(bundle, source)},
          {"metrics", bundle.metrics},
          {"metadata", bundle.metadata}};
}

// One model's sections, their names after `prefix`.
void append_member_sections(const ModelBundle& bundle, const std::string& prefix,
                            std::vector<std::pair<std::string, std::string>>& sections) {
  std::ostringstream weights;
  torch::save(bundle.model, weights);
  sections.emplace_back(prefix + "weights", weights.str());
  if (std::string scripted = torchscript_bytes(bundle.model->backbone()); !scripted.empty())
    sections.emplace_back(prefix + "torchscript_backbone", std::move(scripted));
}

// The model that `member` (its architecture, thresholds, metrics, metadata) and the sections named
// after `prefix` describe, of the file's task and preprocessing.
ModelBundle load_member(const nlohmann::json& document, const nlohmann::json& member,
                        ContainerContents& contents, const std::string& prefix,
                        const std::string& source) {
  for (const char* field : {"task_spec", "preprocessing"})
    if (!document.contains(field))
      fail("{} is a corrupt garmentnet model file (no '{}'); write the model anew", source, field);
  if (!member.contains("architecture"))
    fail("{} is a corrupt garmentnet model file (no 'architecture'); write the model anew", source);
  const nlohmann::json& architecture = member["architecture"];
  ModelBundle bundle;
  TaskSpec spec = TaskSpec::from_json(document["task_spec"], source + " task_spec");
  Backbone backbone =
      backbone_from_architecture(architecture.value("backbone", nlohmann::json()),
                                 contents.sections[prefix + "torchscript_backbone"], source);
  bundle.model = MultiTaskModel(
      std::move(backbone), std::move(spec),
      ModelOptions::from_json(architecture.value("options", nlohmann::json::object())));
  std::istringstream weights(contents.sections[prefix + "weights"]);
  try {
    torch::load(bundle.model, weights);
  } catch (const c10::Error& error) {
    fail("{}: its weights do not fit its architecture ({}); write the model anew", source,
         error.what_without_backtrace());
  }
  if (is_quantized(bundle.model->backbone())) prepare_int8_backbone(bundle.model->backbone());
  bundle.model->eval();
  bundle.preprocessing = Preprocessing::from_json(document["preprocessing"]);
  bundle.tag_thresholds = thresholds_from_json(
      member.value("tag_thresholds", nlohmann::json::object()), bundle.model->spec(), source);
  bundle.metrics = member.value("metrics", nlohmann::json::object());
  bundle.metadata = member.value("metadata", nlohmann::json::object());
  return bundle;
}

// The file's own metadata: `metadata` with when and by what it was written.
nlohmann::json stamped(nlohmann::json metadata) {
  if (!metadata.is_object()) metadata = nlohmann::json::object();
  metadata["created_at"] = utc_now();
  metadata["garmentnet_version"] = kGarmentnetVersion;
  metadata["torch_version"] = TORCH_VERSION;
  return metadata;
}

std::string precision_of(const ModelBundle& bundle) {
  return is_quantized(bundle.model->backbone()) ? "int8" : "fp32";
}

}  // namespace

void save_model_file(const ModelBundle& bundle, const std::filesystem::path& path) {
  nlohmann::json document = member_document(bundle, path.string());
  document["format"] = "garmentnet-model";
  document["precision"] = precision_of(bundle);
  document["task_spec"] = bundle.model->spec().to_json();
  document["preprocessing"] = bundle.preprocessing.to_json();
  document["metadata"] = stamped(bundle.metadata);
  std::vector<std::pair<std::string, std::string>> sections;
  append_member_sections(bundle, "", sections);
  write_container(path, kPlainModelFile, std::move(document), sections);
}

void save_ensemble_file(const std::vector<ModelBundle>& members, nlohmann::json metadata,
                        const std::filesystem::path& path) {
  const std::string source = path.string();
  if (members.size() < 2) fail("{}: an ensemble needs at least two models", source);
  const ModelBundle& first = members.front();
  nlohmann::json member_documents = nlohmann::json::array();
  std::vector<std::pair<std::string, std::string>> sections;
  for (size_t i = 0; i < members.size(); ++i) {
    const ModelBundle& member = members[i];
    if (member.model->spec().to_json() != first.model->spec().to_json() ||
        member.preprocessing.to_json() != first.preprocessing.to_json())
      fail("{}: its models must share one task and preprocessing; model {} differs from model 1",
           source, i + 1);
    member_documents.push_back(member_document(member, source));
    append_member_sections(member, fmt::format("member-{}/", i + 1), sections);
  }
  // Informative: Predictor takes the same mean from the members.
  ModelBundle averaged{.model = first.model};
  for (const auto& head : first.model->spec().heads)
    if (head.kind == HeadKind::MultiLabel)
      averaged.tag_thresholds[head.name] = mean_thresholds(members, head.name);
  nlohmann::json document{{"format", "garmentnet-model"},
                          {"precision", precision_of(first)},
                          {"task_spec", first.model->spec().to_json()},
                          {"preprocessing", first.preprocessing.to_json()},
                          {"tag_thresholds", thresholds_to_json(averaged, source)},
                          {"metrics", nlohmann::json::object()},
                          {"metadata", stamped(std::move(metadata))},
                          {"members", std::move(member_documents)}};
  write_container(path, kModelFile, std::move(document), sections);
}

std::vector<double> mean_thresholds(const std::vector<ModelBundle>& models,
                                    const std::string& head) {
  std::vector<double> mean;
  for (const ModelBundle& model : models) {
    const std::vector<double> own = model.thresholds(head);
    mean.resize(own.size(), 0.0);
    for (size_t t = 0; t < own.size(); ++t) mean[t] += own[t] / double(models.size());
  }
  return mean;
}

std::vector<ModelBundle> load_model_members(const std::filesystem::path& path) {
  ContainerContents contents = read_container(path, kModelFile);
  const std::vector<nlohmann::json> documents = model_documents(contents.document);
  if (documents.size() == 1)
    return {load_member(contents.document, documents.front(), contents, "", path.string())};
  std::vector<ModelBundle> members;
  for (size_t i = 0; i < documents.size(); ++i)
    members.push_back(load_member(contents.document, documents[i], contents,
                                  fmt::format("member-{}/", i + 1), path.string()));
  return members;
}

ModelBundle load_model_file(const std::filesystem::path& path) {
  ContainerContents contents = read_container(path, kModelFile);
  const nlohmann::json& document = contents.document;
  if (document.contains("members"))
    fail(
        "{} is an ensemble of {} models, and this takes one model: give it one of the models the "
        "ensemble was made from",
        path.string(), document["members"].size());
  return load_member(document, document, contents, "", path.string());
}

nlohmann::json read_model_file_document(const std::filesystem::path& path) {
  return read_container_document(path, kModelFile);
}

}  // namespace garmentnet
