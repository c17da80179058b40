#include "data/task_spec.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"

namespace garmentnet {
namespace {

std::string_view kind_name(HeadKind kind) {
  return kind == HeadKind::Softmax ? "softmax" : "multilabel";
}

template <typename T>
T field(const nlohmann::json& object, const char* name, const std::string& where, T fallback) {
  if (!object.contains(name)) return fallback;
  try {
    return object.at(name).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: field '{}' has the wrong type ({})", where, name, object.at(name).dump());
  }
}

}  // namespace

TaskSpec TaskSpec::garments() {
  TaskSpec spec;
  spec.heads.push_back(HeadSpec{
      .name = "cc3",
      .kind = HeadKind::Softmax,
      .column = "cc3",
      .classes = {"BLOUSES", "CASUAL_DRESSES", "MINI_DRESSES", "SHIRTS", "TANK_TOPS"},
  });
  spec.heads.push_back(HeadSpec{
      .name = "tags",
      .kind = HeadKind::MultiLabel,
      .column = "",
      .classes = {"polka dot", "floral", "checker"},
  });
  return spec;
}

nlohmann::json TaskSpec::to_json() const {
  nlohmann::json heads_json = nlohmann::json::array();
  for (const auto& head : heads) {
    nlohmann::json h = {
        {"name", head.name}, {"kind", kind_name(head.kind)}, {"loss_weight", head.loss_weight}};
    if (head.kind == HeadKind::Softmax) {
      h["column"] = head.column;
      h["classes"] = head.classes;
    } else {
      h["tags"] = head.classes;
    }
    heads_json.push_back(std::move(h));
  }
  return {{"id_column", id_column}, {"image_pattern", image_pattern}, {"heads", heads_json}};
}

TaskSpec TaskSpec::from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) fail("{}: expected a JSON object", source);
  TaskSpec spec;
  spec.id_column = field<std::string>(json, "id_column", source, spec.id_column);
  spec.image_pattern = field<std::string>(json, "image_pattern", source, spec.image_pattern);
  if (spec.image_pattern.find("{id}") == std::string::npos) {
    fail("{}: image_pattern '{}' must contain {{id}}", source, spec.image_pattern);
  }
  if (!json.contains("heads") || !json.at("heads").is_array() || json.at("heads").empty()) {
    fail("{}: 'heads' must be a non-empty array", source);
  }
  std::set<std::string> names;
  for (size_t i = 0; i < json.at("heads").size(); ++i) {
    const auto& h = json.at("heads").at(i);
    const std::string where = fmt::format("{}: heads[{}]", source, i);
    if (!h.is_object()) fail("{}: expected an object", where);
    HeadSpec head;
    head.name = field<std::string>(h, "name", where, "");
    if (head.name.empty()) fail("{}: 'name' is required", where);
    if (!names.insert(head.name).second) fail("{}: duplicate head name '{}'", where, head.name);
    const auto kind = field<std::string>(h, "kind", where, "softmax");
    head.loss_weight = field<double>(h, "loss_weight", where, 1.0);
    if (kind == "softmax") {
      head.kind = HeadKind::Softmax;
      head.column = field<std::string>(h, "column", where, head.name);
      head.classes = field<std::vector<std::string>>(h, "classes", where, {});
    } else if (kind == "multilabel") {
      head.kind = HeadKind::MultiLabel;
      head.classes = field<std::vector<std::string>>(h, "tags", where, {});
      if (head.classes.empty()) fail("{}: a multilabel head needs a non-empty 'tags' list", where);
    } else {
      fail("{}: unknown kind '{}' (use softmax or multilabel)", where, kind);
    }
    std::set<std::string> unique(head.classes.begin(), head.classes.end());
    if (unique.size() != head.classes.size()) fail("{}: names listed twice", where);
    spec.heads.push_back(std::move(head));
  }
  return spec;
}

TaskSpec TaskSpec::load(const std::filesystem::path& path) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& error) {
    fail("{}: not valid JSON ({})", path.string(), error.what());
  }
  return from_json(json, path.string());
}

std::filesystem::path TaskSpec::image_path(const std::filesystem::path& images_dir,
                                           const std::string& id) const {
  std::string name = image_pattern;
  for (size_t at = name.find("{id}"); at != std::string::npos;
       at = name.find("{id}", at + id.size())) {
    name.replace(at, 4, id);
  }
  return images_dir / name;
}

const HeadSpec* TaskSpec::find_head(const std::string& name) const {
  auto it = std::find_if(heads.begin(), heads.end(), [&](const auto& h) { return h.name == name; });
  return it == heads.end() ? nullptr : &*it;
}

const HeadSpec& TaskSpec::head(const std::string& name) const {
  if (const HeadSpec* found = find_head(name)) return *found;
  fail("the task has no head '{}'", name);
}

const HeadSpec* TaskSpec::category_head() const {
  auto it = std::find_if(heads.begin(), heads.end(),
                         [](const auto& h) { return h.kind == HeadKind::Softmax; });
  return it == heads.end() ? nullptr : &*it;
}

const HeadSpec* TaskSpec::tag_head() const {
  auto it = std::find_if(heads.begin(), heads.end(),
                         [](const auto& h) { return h.kind == HeadKind::MultiLabel; });
  return it == heads.end() ? nullptr : &*it;
}

}  // namespace garmentnet
