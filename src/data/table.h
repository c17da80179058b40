// In-memory columnar tables read from and written to Parquet or CSV through DuckDB.
// Tables here are small (tens of thousands of rows of labels), so a simple value-per-cell layout
// is enough; images never live in tables.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace garmentnet {

enum class ColumnType { String, Int64, Double };

std::string_view to_string(ColumnType type);

// A cell: null (monostate), an integer, a float or a string, matching its column's type.
using Value = std::variant<std::monostate, int64_t, double, std::string>;

inline bool is_null(const Value& value) { return std::holds_alternative<std::monostate>(value); }

// Renders a cell for messages and terminal tables ("NULL" for null).
std::string to_display_string(const Value& value);

struct Column {
  std::string name;
  ColumnType type = ColumnType::String;
  std::vector<Value> values;
};

class Table {
 public:
  size_t num_rows() const { return columns_.empty() ? 0 : columns_.front().values.size(); }
  size_t num_columns() const { return columns_.size(); }
  const std::vector<Column>& columns() const { return columns_; }

  // The column called `name`; an InputError lists the columns there are if it is absent.
  // `source` names the file in that message.
  const Column& column(std::string_view name, std::string_view source = "table") const;
  const Column* find(std::string_view name) const;

  // Appends a column; it must have as many rows as the table (any count for the first column).
  void add_column(Column column);

 private:
  std::vector<Column> columns_;
};

// Reads a .parquet or .csv file (chosen by extension). Integer and boolean columns become Int64,
// floating point and decimal columns Double, text columns String. Errors name the file.
Table read_table(const std::filesystem::path& path);

// Writes a .parquet (snappy) or .csv file (chosen by extension) atomically, keeping column names
// exactly (spaces included) and types (Int64 is written as BIGINT).
void write_table(const Table& table, const std::filesystem::path& path);

// The rows of `files` (.parquet or .csv), one file after another in this order, as one table, or
// written to `output` atomically (streamed through DuckDB, never all in our memory). Every file
// must have the first one's columns (names, and types for Parquet); an InputError names the first
// file that differs.
Table read_tables(const std::vector<std::filesystem::path>& files);
void concatenate_tables(const std::vector<std::filesystem::path>& files,
                        const std::filesystem::path& output);

// Runs one SQL query in a fresh in-memory DuckDB database and returns its result, e.g. to
// compute counts over Parquet files with read_parquet('...'). For tests and reports.
Table query_sql(const std::string& sql);

// Runs SQL statements that return no table (e.g. COPY ... TO) in a fresh in-memory database.
void execute_sql(const std::string& sql);

// `text` as a SQL string literal ('it''s') and as a quoted identifier ("polka dot").
std::string sql_string_literal(std::string_view text);
std::string sql_identifier(std::string_view name);

}  // namespace garmentnet
