// The tiny dataset and model of test_support.h, and helpers shared by the integration tests of
// `predict` and `evaluate`.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/table.h"
#include "test_support.h"

namespace garmentnet::testing {

struct PredictFixture {
  std::filesystem::path data;    // dataset folder: test.parquet, test_labels.parquet, images/ …
  std::filesystem::path images;  // data / "images"
  std::filesystem::path model;   // model.gnm trained on data
};

inline const PredictFixture& predict_fixture() {
  static const PredictFixture fixture{tiny_dataset(), tiny_dataset() / "images", tiny_model()};
  return fixture;
}

// The path as a single-quoted shell word.
inline std::string shell_quote(const std::filesystem::path& path) {
  std::string quoted = "'";
  for (char c : path.string()) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// The path as a SQL string literal for read_parquet(...).
inline std::string sql_path(const std::filesystem::path& path) {
  return sql_string_literal(path.string());
}

// A column's cells rendered as text ("NULL" for null), for comparing whole columns.
inline std::vector<std::string> column_text(const Table& table, const std::string& name) {
  std::vector<std::string> cells;
  for (const Value& value : table.column(name).values) cells.push_back(to_display_string(value));
  return cells;
}

}  // namespace garmentnet::testing
