// `garmentnet predict` as a user runs it: the predictions file's exact layout, row order, image
// failures and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "data/dataset.h"
#include "data/table.h"
#include "infer/predictor.h"
#include "predict_fixture.h"

namespace garmentnet {
namespace {
namespace fs = std::filesystem;
using testing::predict_fixture;
using testing::shell_quote;
using testing::sql_path;

testing::CommandResult predict(const fs::path& input, const fs::path& images,
                               const fs::path& output, const std::string& extra = "") {
  return testing::run_garmentnet(
      "predict --model " + shell_quote(predict_fixture().model) + " --input " + shell_quote(input) +
      " --images " + shell_quote(images) + " --output " + shell_quote(output) + " " + extra);
}

// (name, type) of every column of a Parquet file, as DuckDB reads it back.
std::vector<std::pair<std::string, std::string>> describe(const fs::path& parquet) {
  const Table described =
      query_sql("DESCRIBE SELECT * FROM read_parquet(" + sql_path(parquet) + ")");
  std::vector<std::pair<std::string, std::string>> columns;
  for (size_t row = 0; row < described.num_rows(); ++row) {
    columns.emplace_back(to_display_string(described.column("column_name").values[row]),
                         to_display_string(described.column("column_type").values[row]));
  }
  return columns;
}

void write_ids(const std::vector<std::string>& ids, const fs::path& path) {
  Column column{"uuid", ColumnType::String, {}};
  for (const auto& id : ids) column.values.emplace_back(id);
  Table table;
  table.add_column(std::move(column));
  write_table(table, path);
}

TEST(Predict, WritesExactlyTheRequiredColumnsTypesAndRows) {
  const auto& fx = predict_fixture();
  testing::TempDir dir;
  const auto output = dir / "predictions.parquet";
  const auto run = predict(fx.data / "test.parquet", fx.images, output);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("images/s"), std::string::npos) << run.output;

  const std::vector<std::pair<std::string, std::string>> expected = {
      {"uuid", "VARCHAR"},
      {"category1", "BIGINT"},
      {"category2", "BIGINT"},
      {"polka dot", "BIGINT"},
      {"floral", "BIGINT"},
      {"checker", "BIGINT"},
      {"category1_name", "VARCHAR"},
      {"category2_name", "VARCHAR"},
      {"category1_probability", "DOUBLE"},
      {"category2_probability", "DOUBLE"},
      {"polka dot_probability", "DOUBLE"},
      {"floral_probability", "DOUBLE"},
      {"checker_probability", "DOUBLE"}};
  EXPECT_EQ(describe(output), expected);
  // The first six are those of the built-in example of the predictions format.
  const auto example = describe(fx.data / "example_predictions.parquet");
  ASSERT_GE(example.size(), 6u);
  EXPECT_EQ(std::vector(expected.begin(), expected.begin() + 6),
            std::vector(example.begin(), example.begin() + 6));

  // Same rows in the same order as the input.
  const Table input = read_table(fx.data / "test.parquet");
  const Table predictions = read_table(output);
  EXPECT_EQ(testing::column_text(predictions, "uuid"), testing::column_text(input, "uuid"));

  // Values are what the model says: alphabetical class indices, names matching them, tags at the
  // model's tuned thresholds.
  const Predictor predictor(fx.model);
  const auto& classes = predictor.spec().category_head()->classes;
  ASSERT_TRUE(std::is_sorted(classes.begin(), classes.end()));
  const auto& thresholds = predictor.thresholds("tags");
  const std::vector<std::string> tags = {"polka dot", "floral", "checker"};
  for (size_t row = 0; row < predictions.num_rows(); ++row) {
    const auto cell = [&](const std::string& name) { return predictions.column(name).values[row]; };
    const int64_t first = std::get<int64_t>(cell("category1"));
    const int64_t second = std::get<int64_t>(cell("category2"));
    ASSERT_TRUE(first >= 0 && first < 5 && second >= 0 && second < 5 && first != second) << row;
    EXPECT_EQ(std::get<std::string>(cell("category1_name")), classes[size_t(first)]);
    EXPECT_EQ(std::get<std::string>(cell("category2_name")), classes[size_t(second)]);
    EXPECT_GE(std::get<double>(cell("category1_probability")),
              std::get<double>(cell("category2_probability")));
    for (size_t t = 0; t < tags.size(); ++t) {
      const double probability = std::get<double>(cell(tags[t] + "_probability"));
      EXPECT_EQ(std::get<int64_t>(cell(tags[t])), probability >= thresholds[t] ? 1 : 0)
          << row << " " << tags[t];
    }
  }
}

TEST(Predict, MinimalColumnsAndCsvOutput) {
  const auto& fx = predict_fixture();
  testing::TempDir dir;
  ASSERT_EQ(
      predict(fx.data / "test.parquet", fx.images, dir / "minimal.parquet", "--columns minimal")
          .exit_code,
      0);
  const auto example = describe(fx.data / "example_predictions.parquet");
  EXPECT_EQ(describe(dir / "minimal.parquet"), std::vector(example.begin(), example.begin() + 6));

  const auto run =
      predict(fx.data / "test.parquet", fx.images, dir / "predictions.csv", "--batch-size 7");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const Table csv = read_table(dir / "predictions.csv");
  const Table parquet = read_table(dir / "minimal.parquet");
  EXPECT_EQ(csv.num_columns(), 13u);
  for (const auto& column : parquet.columns()) {
    EXPECT_EQ(testing::column_text(csv, column.name), testing::column_text(parquet, column.name))
        << column.name;
  }
}

TEST(Predict, KeepsShuffledAndDuplicateRowsAsGiven) {
  const auto& fx = predict_fixture();
  testing::TempDir dir;
  ASSERT_EQ(predict(fx.data / "test.parquet", fx.images, dir / "straight.parquet").exit_code, 0);
  const Table straight = read_table(dir / "straight.parquet");

  std::vector<std::string> ids = read_ids(fx.data / "test.parquet", TaskSpec::garments());
  std::reverse(ids.begin(), ids.end());
  std::rotate(ids.begin(), ids.begin() + 7, ids.end());
  ids.insert(ids.begin() + 3, ids[10]);
  ids.push_back(ids[0]);
  ids.push_back(ids[0]);
  write_ids(ids, dir / "shuffled.parquet");
  ASSERT_EQ(
      predict(dir / "shuffled.parquet", fx.images, dir / "shuffled_out.parquet", "--batch-size 5")
          .exit_code,
      0);
  const Table shuffled = read_table(dir / "shuffled_out.parquet");
  ASSERT_EQ(testing::column_text(shuffled, "uuid"), ids);

  // Every row holds its own image's prediction, whatever its position and batch.
  std::map<std::string, size_t> straight_row;
  const auto straight_ids = testing::column_text(straight, "uuid");
  for (size_t row = 0; row < straight_ids.size(); ++row) straight_row[straight_ids[row]] = row;
  for (size_t row = 0; row < ids.size(); ++row) {
    const size_t reference = straight_row.at(ids[row]);
    for (const char* name : {"category1", "category2", "polka dot", "floral", "checker"}) {
      EXPECT_EQ(shuffled.column(name).values[row], straight.column(name).values[reference])
          << ids[row] << name;
    }
    EXPECT_NEAR(std::get<double>(shuffled.column("category1_probability").values[row]),
                std::get<double>(straight.column("category1_probability").values[reference]), 1e-5);
  }
}

// A folder with the first `count` test images, one id without an image and one corrupt JPEG.
struct BrokenImages {
  std::vector<std::string>
      ids;  // input order: good ids with "missing-item" at 2, "corrupt-item" at 5
  fs::path images;
  fs::path input;
};

BrokenImages broken_images(const testing::TempDir& dir, size_t count) {
  const auto& fx = predict_fixture();
  BrokenImages broken;
  broken.images = dir / "images";
  fs::create_directories(broken.images);
  const auto all = read_ids(fx.data / "test.parquet", TaskSpec::garments());
  for (size_t i = 0; i < count; ++i) {
    broken.ids.push_back(all[i]);
    fs::copy_file(fx.images / (all[i] + ".jpeg"), broken.images / (all[i] + ".jpeg"));
  }
  broken.ids.insert(broken.ids.begin() + 2, "missing-item");
  broken.ids.insert(broken.ids.begin() + 5, "corrupt-item");
  write_file_atomically(broken.images / "corrupt-item.jpeg",
                        std::string("\xFF\xD8\xFF\xE0 this is not a JPEG"));
  broken.input = dir / "input.parquet";
  write_ids(broken.ids, broken.input);
  return broken;
}

TEST(Predict, UnreadableImagesGiveNullRowsListedFailuresAndExitCode3) {
  testing::TempDir dir;
  const BrokenImages broken = broken_images(dir, 8);
  const auto output = dir / "out.parquet";
  const auto run = predict(broken.input, broken.images, output);
  EXPECT_EQ(run.exit_code, 3) << run.output;
  EXPECT_NE(run.output.find("2 image(s) could not be read"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("row 3 (uuid 'missing-item')"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("row 6 (uuid 'corrupt-item')"), std::string::npos) << run.output;

  const Table table = read_table(output);
  ASSERT_EQ(testing::column_text(table, "uuid"), broken.ids);
  for (size_t row = 0; row < table.num_rows(); ++row) {
    const bool failed = row == 2 || row == 5;
    for (const auto& column : table.columns()) {
      if (column.name == "uuid") continue;
      EXPECT_EQ(is_null(column.values[row]), failed) << "row " << row << " column " << column.name;
    }
  }
  const Table failures = read_table(dir / "out.failures.csv");
  EXPECT_EQ(testing::column_text(failures, "uuid"),
            (std::vector<std::string>{"missing-item", "corrupt-item"}));
  EXPECT_EQ(testing::column_text(failures, "row"), (std::vector<std::string>{"3", "6"}));

  const auto allowed =
      predict(broken.input, broken.images, dir / "allowed.parquet", "--allow-missing");
  EXPECT_EQ(allowed.exit_code, 0) << allowed.output;
  EXPECT_EQ(testing::column_text(read_table(dir / "allowed.parquet"), "category1"),
            testing::column_text(table, "category1"));
}

TEST(Predict, StrictStopsAtTheFirstFailureAndWritesNothing) {
  testing::TempDir dir;
  const BrokenImages broken = broken_images(dir, 4);
  const auto output = dir / "out.parquet";
  write_file_atomically(output, "previous predictions");
  const auto run = predict(broken.input, broken.images, output, "--strict --batch-size 2");
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("row 3 (uuid 'missing-item')"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("--strict"), std::string::npos) << run.output;
  EXPECT_EQ(read_file(output), "previous predictions");
  EXPECT_FALSE(fs::exists(dir / "out.failures.csv"));
}

TEST(Predict, ShardsMergeIntoExactlyTheUnshardedOutputAndEvaluateReadsTheParts) {
  const auto& fx = predict_fixture();
  testing::TempDir dir;
  const auto whole = dir / "whole.parquet";
  ASSERT_EQ(predict(fx.data / "test.parquet", fx.images, whole, "--batch-size 4").exit_code, 0);
  fs::create_directories(dir / "parts");
  for (int i = 0; i < 3; ++i) {
    const auto run = predict(fx.data / "test.parquet", fx.images, dir / "parts" / "p.parquet",
                             "--batch-size 4 --shard " + std::to_string(i) + "/3");
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_NE(run.output.find("p.part-0000" + std::to_string(i) + "-of-00003.parquet"),
              std::string::npos)
        << run.output;
  }
  EXPECT_FALSE(fs::exists(dir / "parts" / "p.parquet"));
  const auto merged = dir / "merged.parquet";
  const auto merge =
      testing::run_garmentnet("merge-predictions --parts " + shell_quote(dir / "parts") +
                              " --output " + shell_quote(merged));
  ASSERT_EQ(merge.exit_code, 0) << merge.output;
  EXPECT_EQ(describe(merged), describe(whole));
  const Table expected = read_table(whole), actual = read_table(merged);
  ASSERT_EQ(actual.num_rows(), expected.num_rows());
  for (const auto& column : expected.columns())
    EXPECT_EQ(actual.column(column.name).values, column.values) << column.name;

  // evaluate scores the folder of parts as the merged file.
  const auto evaluate = [&](const fs::path& predictions, const fs::path& out) {
    const auto run =
        testing::run_garmentnet("evaluate --predictions " + shell_quote(predictions) +
                                " --labels " + shell_quote(fx.data / "test_labels.parquet") +
                                " --out " + shell_quote(out) + " --no-report");
    EXPECT_EQ(run.exit_code, 0) << run.output;
    return read_file(out / "evaluation.json");
  };
  const std::string from_parts = evaluate(dir / "parts" / "p.part-*", dir / "e1");
  const std::string from_whole = evaluate(whole, dir / "e2");
  EXPECT_EQ(nlohmann::json::parse(from_parts)["summary"],
            nlohmann::json::parse(from_whole)["summary"]);

  // A missing part is named, and nothing is written.
  fs::remove(dir / "parts" / "p.part-00001-of-00003.parquet");
  const auto incomplete =
      testing::run_garmentnet("merge-predictions --parts " + shell_quote(dir / "parts") +
                              " --output " + shell_quote(dir / "incomplete.parquet"));
  EXPECT_EQ(incomplete.exit_code, 1) << incomplete.output;
  EXPECT_NE(incomplete.output.find("part(s) 1 of 3 are missing"), std::string::npos)
      << incomplete.output;
  EXPECT_FALSE(fs::exists(dir / "incomplete.parquet"));

  // A shard's failures name rows of the whole input. Shards are whole batches: at 4 images
  // a batch, shard 1 of 2 holds the second half, with the corrupt row 6.
  const BrokenImages broken = broken_images(dir, 8);
  const auto run =
      predict(broken.input, broken.images, dir / "b.parquet", "--batch-size 4 --shard 1/2");
  EXPECT_EQ(run.exit_code, 3) << run.output;
  EXPECT_NE(run.output.find("row 6 (uuid 'corrupt-item')"), std::string::npos) << run.output;
  EXPECT_EQ(testing::column_text(read_table(dir / "b.part-00001-of-00002.failures.csv"), "row"),
            std::vector<std::string>{"6"});
  EXPECT_NE(predict(broken.input, broken.images, dir / "b.parquet", "--shard 2/2")
                .output.find("is not of the form I/N"),
            std::string::npos);
}

TEST(Predict, ThePredictionsAndTheFailureListAreWrittenTogetherOrNotAtAll) {
  testing::TempDir dir;
  const BrokenImages broken = broken_images(dir, 4);
  const auto output = dir / "out.parquet";
  const auto list = dir / "out.failures.csv";
  write_file_atomically(output, "previous predictions");
  // The failure list cannot be written (here a folder stands in its way): neither output is.
  fs::create_directories(list / "inside");
  const auto blocked = predict(broken.input, broken.images, output);
  EXPECT_EQ(blocked.exit_code, 1) << blocked.output;
  EXPECT_NE(blocked.output.find("out.failures.csv"), std::string::npos) << blocked.output;
  EXPECT_EQ(read_file(output), "previous predictions");
  fs::remove_all(list);
  EXPECT_EQ(predict(broken.input, broken.images, output).exit_code, 3);
  EXPECT_EQ(read_table(output).num_rows(), broken.ids.size());
  EXPECT_EQ(read_table(list).num_rows(), 2u);
  // A later run without failures does not leave the earlier run's list beside its output.
  std::vector<std::string> good;
  for (const std::string& id : broken.ids) {
    if (!id.ends_with("-item")) good.push_back(id);
  }
  write_ids(good, dir / "good.parquet");
  EXPECT_EQ(predict(dir / "good.parquet", broken.images, output).exit_code, 0);
  EXPECT_EQ(read_table(output).num_rows(), good.size());
  EXPECT_FALSE(fs::exists(list));
}

TEST(Predict, BadInputIsAOneLineErrorAndKeepsTheExistingOutput) {
  const auto& fx = predict_fixture();
  testing::TempDir dir;
  const auto output = dir / "out.parquet";
  write_file_atomically(output, "previous predictions");

  execute_sql("COPY (SELECT 'a' AS id, 1 AS n) TO " + sql_path(dir / "no_uuid.parquet") +
              " (FORMAT parquet)");
  execute_sql("COPY (SELECT 'a'::VARCHAR AS uuid WHERE false) TO " +
              sql_path(dir / "empty.parquet") + " (FORMAT parquet)");
  write_file_atomically(dir / "not_a_model.gnm", "this is a text file, not a model");

  struct Case {
    std::string arguments;
    std::string message;
  };
  const std::string rest =
      " --images " + shell_quote(fx.images) + " --output " + shell_quote(output);
  const std::string model = " --model " + shell_quote(fx.model);
  const std::vector<Case> cases = {
      {"predict" + model + " --input " + shell_quote(dir / "no_uuid.parquet") + rest,
       "no_uuid.parquet has no column 'uuid' (its columns: 'id', 'n')"},
      {"predict" + model + " --input " + shell_quote(dir / "empty.parquet") + rest,
       "empty.parquet has no rows: nothing to predict"},
      {"predict --model " + shell_quote(dir / "not_a_model.gnm") + " --input " +
           shell_quote(fx.data / "test.parquet") + rest,
       "is not a garmentnet model file"},
      {"predict" + model + " --input " + shell_quote(dir / "absent.parquet") + rest,
       "absent.parquet"},
  };
  for (const Case& c : cases) {
    const auto run = testing::run_garmentnet(c.arguments);
    EXPECT_EQ(run.exit_code, 1) << run.output;
    EXPECT_EQ(run.output.rfind("error: ", 0), 0u) << run.output;
    EXPECT_EQ(std::count(run.output.begin(), run.output.end(), '\n'), 1) << run.output;
    EXPECT_NE(run.output.find(c.message), std::string::npos) << run.output;
    EXPECT_EQ(read_file(output), "previous predictions") << c.arguments;
  }
}

}  // namespace
}  // namespace garmentnet
