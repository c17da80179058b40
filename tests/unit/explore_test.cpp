#include "data/explore.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/table.h"
#include "explore_fixture.h"
#include "test_support.h"

namespace garmentnet {
namespace {

// Every count is checked against an independent SQL query over the same Parquet file.
class ExploreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_explore_fixture(dir.path());
    options.data_dir = dir.path();
    options.threads = 2;
    result = explore_dataset(options);
  }

  // SELECT ... over the distinct rows of data.parquet, returned as one integer.
  int64_t sql_count(const std::string& select, const std::string& where = "true") const {
    const Table table = query_sql("SELECT " + select + " FROM (SELECT DISTINCT * FROM " + source() +
                                  ") WHERE " + where);
    const Value& value = table.columns().front().values.front();
    return is_null(value) ? 0 : std::get<int64_t>(value);
  }
  std::string source() const {
    return "read_parquet(" + sql_string_literal((dir / "data.parquet").string()) + ")";
  }

  testing::TempDir dir;
  ExploreOptions options;
  ExploreResult result;
};

TEST_F(ExploreTest, RowDuplicateAndConflictCountsMatchSql) {
  const TableSummary& s = result.train;
  const int64_t all =
      std::get<int64_t>(query_sql("SELECT count(*) FROM " + source()).columns()[0].values[0]);
  EXPECT_EQ(static_cast<int64_t>(s.rows_read), all);
  EXPECT_EQ(static_cast<int64_t>(s.rows_after_deduplication), sql_count("count(*)"));
  EXPECT_EQ(static_cast<int64_t>(s.exact_duplicate_rows), all - sql_count("count(*)"));
  EXPECT_EQ(s.exact_duplicate_rows, 2u);
  EXPECT_EQ(s.conflicting_ids, std::vector<std::string>{"h"});
  EXPECT_EQ(s.missing_images, std::vector<std::string>{"d"});
  EXPECT_EQ(s.null_ids, 0u);
}

TEST_F(ExploreTest, CategoryCountsMatchSql) {
  const TableSummary& s = result.train;
  ASSERT_EQ(s.category_column, "cc3");
  ASSERT_EQ(s.categories.size(), 5u);
  size_t total = 0;
  for (const auto& category : s.categories) {
    EXPECT_EQ(static_cast<int64_t>(category.count),
              sql_count("count(*)", "cc3 = " + sql_string_literal(category.name)))
        << category.name;
    total += category.count;
  }
  EXPECT_EQ(total, s.rows_after_deduplication);
  EXPECT_EQ(s.categories.front().name, "BLOUSES");
  EXPECT_EQ(s.categories.front().count, 3u);
  EXPECT_TRUE(s.unknown_categories.empty());
}

TEST_F(ExploreTest, TagCountsCooccurrenceAndPerRowMatchSql) {
  const TableSummary& s = result.train;
  ASSERT_EQ(s.tags, (std::vector<std::string>{"polka dot", "floral", "checker"}));
  for (size_t a = 0; a < s.tags.size(); ++a) {
    EXPECT_EQ(static_cast<int64_t>(s.tag_counts[a]),
              sql_count("sum(" + sql_identifier(s.tags[a]) + ")::BIGINT"));
    for (size_t b = 0; b < s.tags.size(); ++b) {
      EXPECT_EQ(static_cast<int64_t>(s.tag_cooccurrence[a][b]),
                sql_count("sum(" + sql_identifier(s.tags[a]) + " * " + sql_identifier(s.tags[b]) +
                          ")::BIGINT"))
          << s.tags[a] << " & " << s.tags[b];
    }
  }
  EXPECT_EQ(s.tag_cooccurrence[0][1], 2u);  // b and d
  ASSERT_EQ(s.tags_per_row.size(), 4u);
  for (size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(static_cast<int64_t>(s.tags_per_row[k]),
              sql_count("count(*)", "\"polka dot\" + floral + checker = " + std::to_string(k)))
        << k << " tags";
  }
  EXPECT_EQ(s.tags_per_row[3], 1u);
  EXPECT_EQ(s.invalid_tag_rows, 0u);
}

TEST_F(ExploreTest, CategoryByTagMatchesSql) {
  const TableSummary& s = result.train;
  for (size_t c = 0; c < s.categories.size(); ++c) {
    for (size_t t = 0; t < s.tags.size(); ++t) {
      EXPECT_EQ(static_cast<int64_t>(s.category_tags[c][t]),
                sql_count("count(*)", "cc3 = " + sql_string_literal(s.categories[c].name) +
                                          " AND " + sql_identifier(s.tags[t]) + " = 1"))
          << s.categories[c].name << " × " << s.tags[t];
    }
  }
}

TEST_F(ExploreTest, ColourDistributionMatchesSqlAndCountsNulls) {
  const auto& other = result.train.other_columns;
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other[0].column, "color1");
  size_t total = 0;
  for (const auto& value : other[0].values) {
    const std::string where =
        value.name == "NULL" ? "color1 IS NULL" : "color1 = " + sql_string_literal(value.name);
    EXPECT_EQ(static_cast<int64_t>(value.count), sql_count("count(*)", where)) << value.name;
    total += value.count;
  }
  EXPECT_EQ(total, result.train.rows_after_deduplication);
  EXPECT_EQ(other[0].values.front().name, "red");  // most frequent first
}

TEST_F(ExploreTest, ImageSizesComeFromTheFiles) {
  const ImageStats& images = result.train.images;
  EXPECT_EQ(images.images_read, 7u);  // a b c e f g h; d has no file
  EXPECT_TRUE(images.unreadable.empty());
  ASSERT_EQ(images.sizes.size(), 3u);
  EXPECT_EQ(images.sizes[0].name, "64x64");
  EXPECT_EQ(images.sizes[0].count, 5u);
  uint64_t total = 0;
  for (const char* id : {"a", "b", "c", "e", "f", "g", "h"}) {
    total += std::filesystem::file_size(dir / "images" / (std::string(id) + ".jpeg"));
  }
  EXPECT_EQ(images.file_bytes_total, total);
  EXPECT_LE(images.file_bytes_min, images.file_bytes_median);
  EXPECT_LE(images.file_bytes_median, images.file_bytes_max);
}

TEST_F(ExploreTest, UnreadableImageIsListedNotFatal) {
  std::filesystem::resize_file(dir / "images" / "b.jpeg", 3);
  const ExploreResult again = explore_dataset(options);
  ASSERT_EQ(again.train.images.unreadable.size(), 1u);
  EXPECT_NE(again.train.images.unreadable[0].find("b.jpeg"), std::string::npos);
  EXPECT_EQ(again.train.images.images_read, 6u);
}

TEST_F(ExploreTest, TestSplitAndLeakage) {
  ASSERT_TRUE(result.test.has_value());
  EXPECT_EQ(result.test->rows_read, 3u);
  EXPECT_EQ(result.test->categories[3].name, "SHIRTS");
  EXPECT_EQ(result.test->categories[3].count, 2u);
  EXPECT_TRUE(result.test->loads_for_training);
  EXPECT_EQ(result.test->training_examples, 3u);
  ASSERT_TRUE(result.test_ids.has_value());
  EXPECT_EQ(*result.test_ids, 2u);
  EXPECT_EQ(result.test_ids_missing_images, std::vector<std::string>{"t3"});
  EXPECT_EQ(result.ids_in_train_and_test, std::vector<std::string>{"a"});
}

TEST_F(ExploreTest, LoaderVerdictExplainsWhyTrainingWouldRefuse) {
  EXPECT_FALSE(result.train.loads_for_training);
  EXPECT_NE(result.train.loader_message.find("different values"), std::string::npos)
      << result.train.loader_message;
}

TEST_F(ExploreTest, SamplesAreDeterministicAndBelongToTheirGroup) {
  ASSERT_EQ(result.category_samples.size(), 5u);
  ASSERT_EQ(result.tag_samples.size(), 3u);
  // BLOUSES: a, d, g; d has no image.
  const SampleGroup& blouses = result.category_samples[0];
  EXPECT_EQ(blouses.name, "BLOUSES");
  ASSERT_EQ(blouses.samples.size(), 2u);
  for (const auto& sample : blouses.samples) {
    EXPECT_TRUE(sample.id == "a" || sample.id == "g") << sample.id;
    EXPECT_TRUE(std::filesystem::exists(sample.image));
    ASSERT_FALSE(sample.caption.empty());
    EXPECT_EQ(sample.caption[0], "BLOUSES");
  }
  const SampleGroup& checker = result.tag_samples[2];
  EXPECT_EQ(checker.name, "checker");
  EXPECT_EQ(checker.samples.size(), 2u);  // e, f (d has no image)
  const ExploreResult again = explore_dataset(options);
  EXPECT_EQ(again.to_json()["category_samples"], result.to_json()["category_samples"]);
  options.samples_per_grid = 1;
  EXPECT_EQ(explore_dataset(options).category_samples[0].samples.size(), 1u);
}

TEST_F(ExploreTest, JsonHoldsTheNumbers) {
  const nlohmann::json json = result.to_json();
  EXPECT_EQ(json["train"]["rows_read"], 11);
  EXPECT_EQ(json["train"]["exact_duplicate_rows"], 2);
  EXPECT_EQ(json["train"]["tag_cooccurrence"][0][1], 2);
  EXPECT_EQ(json["test_labels"]["rows_read"], 3);
  EXPECT_EQ(json["test_ids"]["rows"], 2);
}

TEST(Explore, MissingDataFileIsAClearError) {
  testing::TempDir dir;
  ExploreOptions options;
  options.data_dir = dir.path();
  try {
    explore_dataset(options);
    FAIL() << "expected an InputError";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("data.parquet"), std::string::npos);
  }
}

TEST(Explore, DerivesClassesWhenTheSpecListsNone) {
  testing::TempDir dir;
  testing::write_explore_fixture(dir.path());
  ExploreOptions options;
  options.data_dir = dir.path();
  options.spec.heads[0].classes.clear();
  options.spec.heads[0].column = "color1";  // any text column can be the category
  const ExploreResult result = explore_dataset(options);
  ASSERT_EQ(result.train.categories.size(), 3u);  // blue, green, red; null counted apart
  EXPECT_EQ(result.train.categories[2].name, "red");
  EXPECT_EQ(result.train.categories[2].count, 5u);  // a, c, f and both rows of h
  EXPECT_EQ(result.train.null_categories, 1u);
}

}  // namespace
}  // namespace garmentnet
