#include "data/table.h"

#include <duckdb.h>

#include <memory>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

// RAII owners of DuckDB's C handles.
struct DatabaseCloser {
  void operator()(duckdb_database db) const { duckdb_close(&db); }
};
struct ConnectionCloser {
  void operator()(duckdb_connection connection) const { duckdb_disconnect(&connection); }
};
using DatabaseHandle = std::unique_ptr<std::remove_pointer_t<duckdb_database>, DatabaseCloser>;
using ConnectionHandle =
    std::unique_ptr<std::remove_pointer_t<duckdb_connection>, ConnectionCloser>;

class Result {
 public:
  Result() = default;
  ~Result() { duckdb_destroy_result(&result_); }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  duckdb_result* get() { return &result_; }

 private:
  duckdb_result result_{};
};

struct ChunkDeleter {
  void operator()(duckdb_data_chunk chunk) const { duckdb_destroy_data_chunk(&chunk); }
};
using Chunk = std::unique_ptr<std::remove_pointer_t<duckdb_data_chunk>, ChunkDeleter>;

struct AppenderDeleter {
  void operator()(duckdb_appender appender) const { duckdb_appender_destroy(&appender); }
};
using Appender = std::unique_ptr<std::remove_pointer_t<duckdb_appender>, AppenderDeleter>;

// An in-memory DuckDB database with one connection.
class Database {
 public:
  Database() {
    duckdb_database db = nullptr;
    if (duckdb_open(nullptr, &db) == DuckDBError) fail("cannot start DuckDB");
    db_.reset(db);
    duckdb_connection connection = nullptr;
    if (duckdb_connect(db_.get(), &connection) == DuckDBError) fail("cannot connect to DuckDB");
    connection_.reset(connection);
  }

  // Runs `sql`; `context` starts the error message ("cannot read data.parquet").
  void run(const std::string& sql, Result& result, std::string_view context) {
    if (duckdb_query(connection_.get(), sql.c_str(), result.get()) == DuckDBError) {
      const char* message = duckdb_result_error(result.get());
      fail("{}: {}", context, message != nullptr ? message : "unknown DuckDB error");
    }
  }
  void run(const std::string& sql, std::string_view context) {
    Result result;
    run(sql, result, context);
  }

  Table fetch(const std::string& sql, std::string_view context) {
    Result result;
    run(sql, result, context);
    return to_table(result);
  }

  duckdb_connection connection() const { return connection_.get(); }

 private:
  static Table to_table(Result& result) {
    const idx_t column_count = duckdb_column_count(result.get());
    std::vector<Column> columns(column_count);
    for (idx_t c = 0; c < column_count; ++c) {
      columns[c].name = duckdb_column_name(result.get(), c);
      switch (duckdb_column_type(result.get(), c)) {
        case DUCKDB_TYPE_BIGINT:
          columns[c].type = ColumnType::Int64;
          break;
        case DUCKDB_TYPE_DOUBLE:
          columns[c].type = ColumnType::Double;
          break;
        case DUCKDB_TYPE_VARCHAR:
          columns[c].type = ColumnType::String;
          break;
        default:
          fail_internal("column '{}' was not cast to BIGINT, DOUBLE or VARCHAR", columns[c].name);
      }
    }
    for (;;) {
      Chunk chunk(duckdb_fetch_chunk(*result.get()));
      if (!chunk) break;
      const idx_t rows = duckdb_data_chunk_get_size(chunk.get());
      if (rows == 0) break;
      for (idx_t c = 0; c < column_count; ++c) {
        duckdb_vector vector = duckdb_data_chunk_get_vector(chunk.get(), c);
        void* data = duckdb_vector_get_data(vector);
        uint64_t* validity = duckdb_vector_get_validity(vector);
        auto& values = columns[c].values;
        for (idx_t r = 0; r < rows; ++r) {
          if (validity != nullptr && !duckdb_validity_row_is_valid(validity, r)) {
            values.emplace_back(std::monostate{});
            continue;
          }
          switch (columns[c].type) {
            case ColumnType::Int64:
              values.emplace_back(static_cast<int64_t*>(data)[r]);
              break;
            case ColumnType::Double:
              values.emplace_back(static_cast<double*>(data)[r]);
              break;
            case ColumnType::String: {
              auto* text = static_cast<duckdb_string_t*>(data) + r;
              values.emplace_back(
                  std::string(duckdb_string_t_data(text), duckdb_string_t_length(*text)));
              break;
            }
          }
        }
      }
    }
    Table table;
    for (auto& column : columns) table.add_column(std::move(column));
    return table;
  }

  DatabaseHandle db_;
  ConnectionHandle connection_;
};

enum class FileFormat { Parquet, Csv };

FileFormat format_of(const fs::path& path) {
  const std::string extension = path.extension().string();
  if (extension == ".parquet") return FileFormat::Parquet;
  if (extension == ".csv") return FileFormat::Csv;
  fail("{}: unknown table format '{}': use a .parquet or .csv file", path.string(), extension);
}

// Integers and booleans → BIGINT, floats and decimals → DOUBLE, everything else → VARCHAR.
std::string_view target_sql_type(duckdb_type type) {
  switch (type) {
    case DUCKDB_TYPE_BOOLEAN:
    case DUCKDB_TYPE_TINYINT:
    case DUCKDB_TYPE_SMALLINT:
    case DUCKDB_TYPE_INTEGER:
    case DUCKDB_TYPE_BIGINT:
    case DUCKDB_TYPE_UTINYINT:
    case DUCKDB_TYPE_USMALLINT:
    case DUCKDB_TYPE_UINTEGER:
    case DUCKDB_TYPE_UBIGINT:
      return "BIGINT";
    case DUCKDB_TYPE_FLOAT:
    case DUCKDB_TYPE_DOUBLE:
    case DUCKDB_TYPE_DECIMAL:
      return "DOUBLE";
    default:
      return "VARCHAR";
  }
}

std::string_view sql_type(ColumnType type) {
  switch (type) {
    case ColumnType::Int64:
      return "BIGINT";
    case ColumnType::Double:
      return "DOUBLE";
    case ColumnType::String:
      return "VARCHAR";
  }
  return "VARCHAR";
}

// Runs `query` with every column cast to one of our three types (first learning the types).
Table fetch_as_table(Database& db, const std::string& query, const std::string& context) {
  Result probe;
  db.run("SELECT * FROM (" + query + ") LIMIT 0", probe, context);
  std::string select;
  for (idx_t c = 0; c < duckdb_column_count(probe.get()); ++c) {
    const std::string name = sql_identifier(duckdb_column_name(probe.get(), c));
    select += fmt::format("{}CAST({} AS {}) AS {}", select.empty() ? "" : ", ", name,
                          target_sql_type(duckdb_column_type(probe.get(), c)), name);
  }
  if (select.empty()) fail("{}: no columns", context);
  return db.fetch("SELECT " + select + " FROM (" + query + ")", context);
}

}  // namespace

std::string_view to_string(ColumnType type) {
  switch (type) {
    case ColumnType::Int64:
      return "int64";
    case ColumnType::Double:
      return "double";
    case ColumnType::String:
      return "string";
  }
  return "?";
}

std::string to_display_string(const Value& value) {
  struct Visitor {
    std::string operator()(std::monostate) const { return "NULL"; }
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return fmt::format("{}", v); }
    std::string operator()(const std::string& v) const { return v; }
  };
  return std::visit(Visitor{}, value);
}

const Column* Table::find(std::string_view name) const {
  for (const auto& column : columns_) {
    if (column.name == name) return &column;
  }
  return nullptr;
}

const Column& Table::column(std::string_view name, std::string_view source) const {
  if (const Column* found = find(name)) return *found;
  std::string names;
  for (const auto& column : columns_) names += (names.empty() ? "'" : ", '") + column.name + "'";
  fail("{} has no column '{}' (its columns: {})", source, name, names.empty() ? "none" : names);
}

void Table::add_column(Column column) {
  if (!columns_.empty() && column.values.size() != num_rows()) {
    fail_internal("column '{}' has {} rows, the table {}", column.name, column.values.size(),
                  num_rows());
  }
  if (find(column.name) != nullptr) fail_internal("duplicate column '{}'", column.name);
  columns_.push_back(std::move(column));
}

std::string sql_string_literal(std::string_view text) {
  std::string quoted = "'";
  for (char c : text) {
    quoted += c;
    if (c == '\'') quoted += '\'';
  }
  return quoted + "'";
}

std::string sql_identifier(std::string_view name) {
  std::string quoted = "\"";
  for (char c : name) {
    quoted += c;
    if (c == '"') quoted += '"';
  }
  return quoted + "\"";
}

namespace {

// The table function reading `path` in SQL; an InputError if there is no such file.
std::string scan_of(const fs::path& path) {
  const FileFormat format = format_of(path);
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    fail("{}: no such file (check the path)", path.string());
  }
  return format == FileFormat::Parquet
             ? "read_parquet(" + sql_string_literal(path.string()) + ")"
             : "read_csv(" + sql_string_literal(path.string()) + ", header = true)";
}

// COPY's options for writing `path`'s format.
std::string copy_options(const fs::path& path) {
  return format_of(path) == FileFormat::Parquet ? "FORMAT parquet, COMPRESSION snappy"
                                                : "FORMAT csv, HEADER";
}

// Column names (and, for Parquet, types) of `path` as one comparable string.
std::string schema_of(Database& db, const fs::path& path) {
  Result probe;
  db.run("SELECT * FROM " + scan_of(path) + " LIMIT 0", probe, "cannot read " + path.string());
  std::string schema;
  for (idx_t c = 0; c < duckdb_column_count(probe.get()); ++c) {
    schema += fmt::format("{}{}", c ? ", " : "", duckdb_column_name(probe.get(), c));
    if (format_of(path) == FileFormat::Parquet)
      schema += fmt::format(" {}", int(duckdb_column_type(probe.get(), c)));
  }
  return schema;
}

// Loads the rows of `files` into DuckDB table `output`, in order, checking their columns agree.
void load_concatenation(Database& db, const std::vector<fs::path>& files) {
  if (files.empty()) fail_internal("concatenating no files");
  const std::string schema = schema_of(db, files.front());
  db.run("CREATE TABLE output AS SELECT * FROM " + scan_of(files.front()),
         "cannot read " + files.front().string());
  for (size_t i = 1; i < files.size(); ++i) {
    if (schema_of(db, files[i]) != schema)
      fail(
          "{} does not have the columns of {} ({}); all parts must come from one model run with "
          "the same options",
          files[i].string(), files.front().string(), schema);
    db.run("INSERT INTO output SELECT * FROM " + scan_of(files[i]),
           "cannot read " + files[i].string());
  }
}

}  // namespace

Table read_table(const fs::path& path) {
  const std::string source = scan_of(path);
  Database db;
  return fetch_as_table(db, "SELECT * FROM " + source, "cannot read " + path.string());
}

Table read_tables(const std::vector<fs::path>& files) {
  Database db;
  load_concatenation(db, files);
  return fetch_as_table(db, "SELECT * FROM output", "cannot read " + files.front().string());
}

void concatenate_tables(const std::vector<fs::path>& files, const fs::path& output) {
  const std::string options = copy_options(output);
  Database db;
  load_concatenation(db, files);
  write_atomically(output, [&](const fs::path& temp) {
    db.run("COPY output TO " + sql_string_literal(temp.string()) + " (" + options + ")",
           "cannot write " + output.string());
  });
}

void write_table(const Table& table, const fs::path& path) {
  if (table.num_columns() == 0) fail_internal("writing a table with no columns");
  Database db;
  std::string definition;
  for (const auto& column : table.columns()) {
    definition += fmt::format("{}{} {}", definition.empty() ? "" : ", ",
                              sql_identifier(column.name), sql_type(column.type));
  }
  const std::string context = "cannot write " + path.string();
  db.run("CREATE TABLE output (" + definition + ")", context);
  {
    duckdb_appender raw = nullptr;
    if (duckdb_appender_create(db.connection(), nullptr, "output", &raw) == DuckDBError) {
      fail("{}: cannot create a DuckDB appender", context);
    }
    Appender appender(raw);
    auto check = [&](duckdb_state state) {
      if (state == DuckDBError) fail("{}: {}", context, duckdb_appender_error(appender.get()));
    };
    for (size_t r = 0; r < table.num_rows(); ++r) {
      for (const auto& column : table.columns()) {
        const Value& value = column.values[r];
        if (is_null(value)) {
          check(duckdb_append_null(appender.get()));
        } else if (column.type == ColumnType::Int64) {
          check(duckdb_append_int64(appender.get(), std::get<int64_t>(value)));
        } else if (column.type == ColumnType::Double) {
          check(duckdb_append_double(appender.get(), std::get<double>(value)));
        } else {
          const auto& text = std::get<std::string>(value);
          check(duckdb_append_varchar_length(appender.get(), text.data(), text.size()));
        }
      }
      check(duckdb_appender_end_row(appender.get()));
    }
    check(duckdb_appender_close(appender.get()));
  }
  const std::string options = copy_options(path);
  write_atomically(path, [&](const fs::path& temp) {
    db.run("COPY output TO " + sql_string_literal(temp.string()) + " (" + options + ")", context);
  });
}

Table query_sql(const std::string& sql) {
  Database db;
  return fetch_as_table(db, sql, "query failed");
}

void execute_sql(const std::string& sql) {
  Database db;
  db.run(sql, "SQL failed");
}

}  // namespace garmentnet
