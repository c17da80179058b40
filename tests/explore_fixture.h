// A tiny dataset folder with the problems real files have (exact duplicate rows, a conflicting
// id, a missing image, null colour, several tags per row, images of different sizes), shared by
// the unit and integration tests of `explore`.
#pragma once

#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "data/table.h"

namespace garmentnet::testing {

struct FixtureRow {
  std::string uuid;
  std::string cc3;
  int64_t polka_dot, floral, checker;
  std::string color1;  // empty = null
};

inline Table fixture_table(const std::vector<FixtureRow>& rows) {
  Column uuid{"uuid", ColumnType::String, {}};
  Column cc3{"cc3", ColumnType::String, {}};
  Column color{"color1", ColumnType::String, {}};
  Column polka{"polka dot", ColumnType::Int64, {}};
  Column floral{"floral", ColumnType::Int64, {}};
  Column checker{"checker", ColumnType::Int64, {}};
  for (const auto& row : rows) {
    uuid.values.emplace_back(row.uuid);
    cc3.values.emplace_back(row.cc3);
    color.values.push_back(row.color1.empty() ? Value{} : Value{row.color1});
    polka.values.emplace_back(row.polka_dot);
    floral.values.emplace_back(row.floral);
    checker.values.emplace_back(row.checker);
  }
  Table table;
  for (auto* column : {&uuid, &cc3, &color, &polka, &floral, &checker}) {
    table.add_column(std::move(*column));
  }
  return table;
}

inline void write_fixture_image(const std::filesystem::path& path, int width, int height) {
  std::filesystem::create_directories(path.parent_path());
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(40, 120, 200));
  cv::imwrite(path.string(), image);
}

// Writes data.parquet (11 rows: 2 exact duplicates, id "h" in two different rows, no image for
// "d"), test_labels.parquet (3 rows, "a" also in training), test.parquet (2 ids) and images.
inline void write_explore_fixture(const std::filesystem::path& dir) {
  const std::vector<FixtureRow> train = {
      {"a", "BLOUSES", 1, 0, 0, "red"},    {"a", "BLOUSES", 1, 0, 0, "red"},
      {"b", "SHIRTS", 1, 1, 0, "blue"},    {"c", "MINI_DRESSES", 0, 0, 0, "red"},
      {"d", "BLOUSES", 1, 1, 1, "green"},  {"e", "TANK_TOPS", 0, 1, 1, "blue"},
      {"e", "TANK_TOPS", 0, 1, 1, "blue"}, {"f", "CASUAL_DRESSES", 0, 0, 1, "red"},
      {"g", "BLOUSES", 0, 1, 0, ""},       {"h", "SHIRTS", 0, 0, 0, "red"},
      {"h", "SHIRTS", 1, 0, 0, "red"},
  };
  write_table(fixture_table(train), dir / "data.parquet");
  write_table(fixture_table({{"a", "BLOUSES", 1, 0, 0, "red"},
                             {"t1", "SHIRTS", 0, 0, 1, "blue"},
                             {"t2", "SHIRTS", 0, 1, 0, "red"}}),
              dir / "test_labels.parquet");
  Table test;
  test.add_column({"uuid", ColumnType::String, {std::string("t1"), std::string("t3")}});
  write_table(test, dir / "test.parquet");

  const std::filesystem::path images = dir / "images";
  write_fixture_image(images / "a.jpeg", 40, 30);
  for (const char* id : {"b", "c", "f", "g", "h", "t1", "t2"}) {
    write_fixture_image(images / (std::string(id) + ".jpeg"), 64, 64);
  }
  write_fixture_image(images / "e.jpeg", 50, 80);
}

}  // namespace garmentnet::testing
