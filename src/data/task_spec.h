// What a model learns: which column identifies an item, where its image is, and the heads.
// Defaults reproduce the garment layout of DESIGN.md §2. Stored inside every model file and, for
// a dataset folder, optionally as task.json beside data.parquet.
#pragma once

#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace garmentnet {

enum class HeadKind {
  Softmax,     // one class out of `classes`, read from one string column
  MultiLabel,  // independent 0/1 tags, one int column per tag
};

struct HeadSpec {
  std::string name;  // key of this head in outputs and reports, e.g. "cc3", "tags"
  HeadKind kind = HeadKind::Softmax;
  std::string column;                // Softmax: the label column; unused for MultiLabel
  std::vector<std::string> classes;  // Softmax: class names in label order (sorted alphabetically);
                                     // MultiLabel: the tag column names, in output order
  double loss_weight = 1.0;          // weight of this head in the total loss

  size_t num_outputs() const { return classes.size(); }
};

struct TaskSpec {
  std::string id_column = "uuid";           // column that identifies an item
  std::string image_pattern = "{id}.jpeg";  // image file name inside the images folder
  std::vector<HeadSpec> heads;

  // The garment task: cc3 (5 categories) + tags (polka dot, floral, checker).
  static TaskSpec garments();
  // Reads a task.json file; errors name the file and field.
  static TaskSpec load(const std::filesystem::path& path);

  nlohmann::json to_json() const;
  static TaskSpec from_json(const nlohmann::json& json, const std::string& source = "task spec");

  std::filesystem::path image_path(const std::filesystem::path& images_dir,
                                   const std::string& id) const;
  const HeadSpec& head(const std::string& name) const;  // InputError if absent
  const HeadSpec* find_head(const std::string& name) const;
  // The first softmax head (the "category" head of predictions), or nullptr.
  const HeadSpec* category_head() const;
  // The first multi-label head (the "tags" head of predictions), or nullptr.
  const HeadSpec* tag_head() const;
};

}  // namespace garmentnet
