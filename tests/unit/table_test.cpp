#include "data/table.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_support.h"

namespace garmentnet {
namespace {

Table sample_table() {
  Table table;
  table.add_column(
      {"uuid", ColumnType::String, {std::string("a"), std::string("it's"), std::monostate{}}});
  table.add_column({"polka dot", ColumnType::Int64, {int64_t{1}, int64_t{0}, int64_t{-7}}});
  table.add_column({"weird \"name\"", ColumnType::Double, {0.5, std::monostate{}, 1e-9}});
  return table;
}

void expect_same(const Table& a, const Table& b) {
  ASSERT_EQ(a.num_columns(), b.num_columns());
  ASSERT_EQ(a.num_rows(), b.num_rows());
  for (size_t c = 0; c < a.num_columns(); ++c) {
    EXPECT_EQ(a.columns()[c].name, b.columns()[c].name);
    EXPECT_EQ(a.columns()[c].type, b.columns()[c].type);
    EXPECT_EQ(a.columns()[c].values, b.columns()[c].values) << a.columns()[c].name;
  }
}

TEST(Table, ParquetRoundTripKeepsNamesTypesAndNulls) {
  testing::TempDir dir;
  write_table(sample_table(), dir / "t.parquet");
  expect_same(read_table(dir / "t.parquet"), sample_table());
  // An independent reader sees BIGINT for int64 columns and the exact names.
  const Table types =
      query_sql("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(" +
                sql_string_literal((dir / "t.parquet").string()) + "))");
  EXPECT_EQ(types.column("column_name").values[1], Value(std::string("polka dot")));
  EXPECT_EQ(types.column("column_type").values[1], Value(std::string("BIGINT")));
}

TEST(Table, CsvRoundTrip) {
  testing::TempDir dir;
  write_table(sample_table(), dir / "t.csv");
  expect_same(read_table(dir / "t.csv"), sample_table());
}

TEST(Table, ReadsPandasStyleParquet) {
  // What pandas/pyarrow writes: snappy, dictionary-encoded strings, a 'pandas' metadata entry,
  // an index column and small integer types.
  testing::TempDir dir;
  const std::string path = (dir / "pandas.parquet").string();
  execute_sql(
      "COPY (SELECT 'id' || i::VARCHAR AS uuid, "
      "CASE WHEN i % 2 = 0 THEN 'BLOUSES' ELSE 'SHIRTS' END AS cc3, (i % 2)::TINYINT AS \"polka "
      "dot\", "
      "i::BIGINT AS __index_level_0__ FROM range(100) t(i)) TO " +
      sql_string_literal(path) +
      " (FORMAT parquet, COMPRESSION snappy, KV_METADATA {pandas: '{\"index_columns\": "
      "[\"__index_level_0__\"]}'})");
  const Table metadata = query_sql("SELECT decode(key) AS key FROM parquet_kv_metadata(" +
                                   sql_string_literal(path) + ")");
  ASSERT_EQ(metadata.num_rows(), 1u);
  EXPECT_EQ(metadata.column("key").values[0], Value(std::string("pandas")));
  const Table encodings =
      query_sql("SELECT DISTINCT compression, encodings FROM parquet_metadata(" +
                sql_string_literal(path) + ") WHERE path_in_schema = 'cc3'");
  EXPECT_EQ(encodings.column("compression").values[0], Value(std::string("SNAPPY")));
  EXPECT_NE(std::get<std::string>(encodings.column("encodings").values[0]).find("DICTIONARY"),
            std::string::npos);

  const Table table = read_table(path);
  EXPECT_EQ(table.num_rows(), 100u);
  EXPECT_EQ(table.column("polka dot").type, ColumnType::Int64);
  EXPECT_EQ(table.column("polka dot").values[3], Value(int64_t{1}));
  EXPECT_EQ(table.column("cc3").values[2], Value(std::string("BLOUSES")));
}

TEST(Table, ErrorsNameTheFile) {
  testing::TempDir dir;
  const auto missing = dir / "missing.parquet";
  try {
    read_table(missing);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos);
  }
  const auto garbage = dir / "garbage.parquet";
  write_table(sample_table(), dir / "t.csv");
  std::filesystem::copy_file(dir / "t.csv", garbage);
  try {
    read_table(garbage);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(garbage.string()), std::string::npos);
  }
  EXPECT_THROW(read_table(dir / "t.xlsx"), InputError);
  try {
    sample_table().column("nope", "data.parquet");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'polka dot'"), std::string::npos) << e.what();
  }
}

TEST(Table, ConcatenatesFilesInOrderAndRefusesOtherColumns) {
  testing::TempDir dir;
  Table first = sample_table(), second;
  second.add_column({"uuid", ColumnType::String, {std::string("z")}});
  second.add_column({"polka dot", ColumnType::Int64, {int64_t{5}}});
  second.add_column({"weird \"name\"", ColumnType::Double, {2.5}});
  write_table(first, dir / "a.parquet");
  write_table(second, dir / "b.parquet");

  Table expected;
  for (size_t c = 0; c < first.num_columns(); ++c) {
    Column column = first.columns()[c];
    column.values.push_back(second.columns()[c].values.front());
    expected.add_column(std::move(column));
  }
  expect_same(read_tables({dir / "a.parquet", dir / "b.parquet"}), expected);
  concatenate_tables({dir / "a.parquet", dir / "b.parquet"}, dir / "all.parquet");
  expect_same(read_table(dir / "all.parquet"), expected);
  concatenate_tables({dir / "b.parquet", dir / "a.parquet"}, dir / "all.csv");
  EXPECT_EQ(read_table(dir / "all.csv").column("uuid").values.front(), Value(std::string("z")));

  Table other;
  other.add_column({"uuid", ColumnType::String, {std::string("y")}});
  write_table(other, dir / "other.parquet");
  const std::string error = testing::error_of([&] {
    concatenate_tables({dir / "a.parquet", dir / "other.parquet"}, dir / "x.parquet");
  });
  EXPECT_NE(error.find("other.parquet does not have the columns of"), std::string::npos) << error;
  EXPECT_FALSE(std::filesystem::exists(dir / "x.parquet"));
}

TEST(Table, QuotingSurvivesHostileText) {
  EXPECT_EQ(sql_string_literal("a'b"), "'a''b'");
  EXPECT_EQ(sql_identifier("a\"b"), "\"a\"\"b\"");
  const Table t = query_sql("SELECT " + sql_string_literal("x'); DROP TABLE y; --") + " AS " +
                            sql_identifier("odd \" name"));
  EXPECT_EQ(t.column("odd \" name").values[0], Value(std::string("x'); DROP TABLE y; --")));
}

}  // namespace
}  // namespace garmentnet
