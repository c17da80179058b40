// A tiny built-in dataset and a model trained on it for one epoch, built once per test process,
// shared by the integration tests of `predict` and `evaluate`.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/fashion_mnist.h"
#include "data/table.h"
#include "test_support.h"
#include "train/trainer.h"

namespace garmentnet::testing {

struct PredictFixture {
  std::filesystem::path data;    // dataset folder: test.parquet, test_labels.parquet, images/ …
  std::filesystem::path images;  // data / "images"
  std::filesystem::path model;   // model.gnm trained on data
};

inline const PredictFixture& predict_fixture() {
  static TempDir dir;
  static const PredictFixture fixture = [] {
    FashionMnistOptions dataset;
    dataset.out_dir = dir / "garments";
    dataset.make_source = false;
    dataset.image_size = 32;
    dataset.train_size = 200;
    dataset.test_size = 60;
    make_fashion_mnist_dataset(dataset);
    TrainOptions train;
    train.data_dir = dataset.out_dir;
    train.out_dir = dir / "run";
    train.image_size = 32;
    train.epochs = 1;
    train.batch_size = 32;
    train.transfer = "scratch";
    train.warmup_epochs = 0;
    train.patience = 0;
    train.report = false;
    const TrainResult result = train_model(train);
    return PredictFixture{dataset.out_dir, dataset.out_dir / "images", result.model_path};
  }();
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
