#include "data/dataset.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/table.h"
#include "test_support.h"

namespace garmentnet {
namespace {

struct Row {
  std::string uuid;
  Value cc3;
  Value polka, floral, checker;
};

// Writes data.parquet with the garment columns and creates an (empty) image file per uuid
// unless listed in `without_image`.
std::filesystem::path write_dataset(const testing::TempDir& dir, const std::vector<Row>& rows,
                                    const std::set<std::string>& without_image = {}) {
  Table table;
  Column uuid{"uuid", ColumnType::String, {}}, cc3{"cc3", ColumnType::String, {}},
      color{"color1", ColumnType::String, {}}, polka{"polka dot", ColumnType::Int64, {}},
      floral{"floral", ColumnType::Int64, {}}, checker{"checker", ColumnType::Int64, {}};
  std::filesystem::create_directories(dir / "images");
  for (const auto& row : rows) {
    uuid.values.emplace_back(row.uuid);
    cc3.values.push_back(row.cc3);
    color.values.emplace_back(std::string("RED"));
    polka.values.push_back(row.polka);
    floral.values.push_back(row.floral);
    checker.values.push_back(row.checker);
    if (!without_image.count(row.uuid)) std::ofstream(dir / "images" / (row.uuid + ".jpeg")) << "x";
  }
  for (auto* column : {&uuid, &cc3, &color, &polka, &floral, &checker}) table.add_column(*column);
  write_table(table, dir / "data.parquet");
  return dir / "data.parquet";
}

const Value one = int64_t{1}, zero = int64_t{0};
Value text(const char* s) { return std::string(s); }

std::string load_error(const testing::TempDir& dir, const DatasetOptions& options = {}) {
  try {
    load_labelled_dataset(dir / "data.parquet", dir / "images", TaskSpec::garments(), options);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Dataset, LoadsLabelsInClassOrderAndDropsExactDuplicates) {
  testing::TempDir dir;
  write_dataset(dir, {{"a", text("SHIRTS"), one, zero, one},
                      {"b", text("BLOUSES"), zero, zero, zero},
                      {"a", text("SHIRTS"), one, zero, one},
                      {"c", text("TANK_TOPS"), zero, one, zero}});
  DatasetReport report;
  auto data = load_labelled_dataset(dir / "data.parquet", dir / "images", TaskSpec::garments(), {},
                                    &report);
  EXPECT_EQ(report.rows_read, 4u);
  EXPECT_EQ(report.exact_duplicates_dropped, 1u);
  ASSERT_EQ(data.ids, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(data.labels.at("cc3"), (std::vector<int64_t>{3, 0, 4}));
  EXPECT_EQ(data.labels.at("tags"), (std::vector<int64_t>{1, 0, 1, 0, 0, 0, 0, 1, 0}));
  EXPECT_EQ(data.images[1], dir / "images" / "b.jpeg");

  auto subset = data.subset({2, 0});
  EXPECT_EQ(subset.ids, (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(subset.labels.at("tags"), (std::vector<int64_t>{0, 1, 0, 1, 0, 1}));
}

TEST(Dataset, ConflictingDuplicatesAreAnErrorListingTheIds) {
  testing::TempDir dir;
  write_dataset(dir,
                {{"a", text("SHIRTS"), one, zero, one}, {"a", text("BLOUSES"), one, zero, one}});
  const std::string error = load_error(dir);
  EXPECT_NE(error.find("1 id(s) appear in rows with different values: a"), std::string::npos)
      << error;
}

TEST(Dataset, UnknownCategoryNamesRowColumnAndValue) {
  testing::TempDir dir;
  write_dataset(dir,
                {{"a", text("SHIRTS"), one, zero, one}, {"b", text("JEANS"), zero, zero, zero}});
  const std::string error = load_error(dir);
  EXPECT_NE(error.find("row 2: column 'cc3' has unknown value 'JEANS'"), std::string::npos)
      << error;
  EXPECT_NE(error.find("data.parquet"), std::string::npos);
  EXPECT_NE(error.find("BLOUSES, CASUAL_DRESSES"), std::string::npos);
}

TEST(Dataset, TagValuesMustBeZeroOrOne) {
  testing::TempDir dir;
  write_dataset(dir, {{"a", text("SHIRTS"), int64_t{2}, zero, one}});
  const std::string error = load_error(dir);
  EXPECT_NE(error.find("row 1: column 'polka dot' has value 2"), std::string::npos) << error;
  // Only the tag is wrong: the category's list of known values would point at the wrong column.
  EXPECT_EQ(error.find("Known 'cc3' values"), std::string::npos) << error;
}

TEST(Dataset, NullLabelsAreMaskedOrRefusedInStrictMode) {
  testing::TempDir dir;
  write_dataset(dir, {{"a", std::monostate{}, one, std::monostate{}, one},
                      {"b", text("SHIRTS"), zero, zero, zero}});
  DatasetReport report;
  auto data = load_labelled_dataset(dir / "data.parquet", dir / "images", TaskSpec::garments(), {},
                                    &report);
  EXPECT_EQ(data.labels.at("cc3"), (std::vector<int64_t>{-1, 3}));
  EXPECT_EQ(data.labels.at("tags"), (std::vector<int64_t>{1, -1, 1, 0, 0, 0}));
  EXPECT_EQ(report.null_labels.size(), 2u);
  EXPECT_NE(load_error(dir, {.strict = true}).find("null label"), std::string::npos);
}

TEST(Dataset, MissingImagesAreSkippedOrRefusedInStrictMode) {
  testing::TempDir dir;
  write_dataset(dir,
                {{"a", text("SHIRTS"), one, zero, one}, {"b", text("BLOUSES"), zero, zero, zero}},
                {"b"});
  DatasetReport report;
  auto data = load_labelled_dataset(dir / "data.parquet", dir / "images", TaskSpec::garments(), {},
                                    &report);
  EXPECT_EQ(data.ids, std::vector<std::string>{"a"});
  EXPECT_EQ(data.labels.at("tags"), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(report.missing_images, std::vector<std::string>{"b"});
  const std::string error = load_error(dir, {.strict = true});
  EXPECT_NE(error.find("1 of 2 image(s) missing"), std::string::npos) << error;
  EXPECT_NE(error.find("b.jpeg"), std::string::npos) << error;
}

TEST(Dataset, MissingColumnsAndBadIdsAreErrors) {
  testing::TempDir dir;
  Table table;
  table.add_column({"uuid", ColumnType::String, {std::string("../etc/passwd")}});
  table.add_column({"cc3", ColumnType::String, {std::string("SHIRTS")}});
  write_table(table, dir / "data.parquet");
  std::string error = load_error(dir);
  EXPECT_NE(error.find("has no column 'polka dot'"), std::string::npos) << error;
  EXPECT_THROW(read_ids(dir / "data.parquet", TaskSpec::garments()), InputError);
}

TEST(TaskSpec, JsonRoundTripAndValidation) {
  TaskSpec spec = TaskSpec::garments();
  spec.heads.push_back({.name = "color1",
                        .kind = HeadKind::Softmax,
                        .column = "color1",
                        .classes = {"BLUE", "RED"},
                        .loss_weight = 0.5});
  const TaskSpec back = TaskSpec::from_json(spec.to_json());
  EXPECT_EQ(back.to_json(), spec.to_json());
  EXPECT_EQ(back.head("tags").classes,
            (std::vector<std::string>{"polka dot", "floral", "checker"}));
  EXPECT_EQ(back.category_head()->name, "cc3");
  EXPECT_EQ(back.image_path("imgs", "x1"), std::filesystem::path("imgs/x1.jpeg"));

  auto json = spec.to_json();
  json["heads"][1]["kind"] = "regression";
  try {
    TaskSpec::from_json(json, "task.json");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("task.json: heads[1]: unknown kind 'regression'"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace garmentnet
