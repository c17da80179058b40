#include "data/label_scan.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "core/error.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

// Indices of the rows that are not exact copies of an earlier row, in file order.
std::vector<size_t> distinct_rows(const Table& table) {
  std::set<std::vector<Value>> seen;
  std::vector<size_t> rows;
  for (size_t row = 0; row < table.num_rows(); ++row) {
    std::vector<Value> values;
    values.reserve(table.num_columns());
    for (const auto& column : table.columns()) values.push_back(column.values[row]);
    if (seen.insert(std::move(values)).second) rows.push_back(row);
  }
  return rows;
}

size_t column_index(const Table& table, const std::string& name, const std::string& file) {
  const Column& column = table.column(name, file);
  return size_t(&column - table.columns().data());
}

// A category cell: its class index, or kNullLabel / kInvalidLabel.
int64_t category_label(const Value& value, const std::unordered_map<std::string, int64_t>& index) {
  if (is_null(value)) return kNullLabel;
  const auto found = index.find(to_display_string(value));
  return found == index.end() ? kInvalidLabel : found->second;
}

// A tag cell: 0 or 1, or kNullLabel / kInvalidLabel (another number, or text).
int64_t tag_label(const Value& value) {
  if (is_null(value)) return kNullLabel;
  double number = 0;
  if (const auto* integer = std::get_if<int64_t>(&value))
    number = static_cast<double>(*integer);
  else if (const auto* real = std::get_if<double>(&value))
    number = *real;
  else
    return kInvalidLabel;
  if (number == 0.0) return 0;
  if (number == 1.0) return 1;
  return kInvalidLabel;
}

}  // namespace

LabelScan scan_label_table(const fs::path& path, const TaskSpec& spec, bool derive_classes) {
  LabelScan scan{.path = path, .table = read_table(path), .spec = spec};
  const std::string file = path.string();
  const Table& table = scan.table;
  const Column& id_column = table.column(spec.id_column, file);
  scan.rows = distinct_rows(table);

  scan.ids.resize(table.num_rows());
  std::map<std::string, size_t> rows_per_id;
  for (size_t row : scan.rows) {
    if (is_null(id_column.values[row])) continue;
    scan.ids[row] = to_display_string(id_column.values[row]);
    ++rows_per_id[scan.ids[row]];
  }
  for (const auto& [id, count] : rows_per_id)
    if (count > 1) scan.conflicting_ids.push_back(id);

  for (HeadSpec& head : scan.spec.heads) {
    std::vector<size_t>& columns = scan.columns.emplace_back();
    std::vector<int64_t>& labels = scan.labels.emplace_back();
    if (head.kind == HeadKind::Softmax) {
      columns.push_back(column_index(table, head.column, file));
      const Column& column = table.columns()[columns.front()];
      if (head.classes.empty()) {
        if (!derive_classes)
          fail("head '{}' lists no classes: give them in the task spec", head.name);
        std::set<std::string> values;
        for (const auto& value : column.values)
          if (!is_null(value)) values.insert(to_display_string(value));
        head.classes.assign(values.begin(), values.end());
      }
      std::unordered_map<std::string, int64_t> index;
      for (size_t c = 0; c < head.classes.size(); ++c) index[head.classes[c]] = int64_t(c);
      for (const Value& value : column.values) labels.push_back(category_label(value, index));
    } else {
      for (const auto& tag : head.classes) columns.push_back(column_index(table, tag, file));
      labels.resize(table.num_rows() * columns.size());
      for (size_t k = 0; k < columns.size(); ++k) {
        const Column& column = table.columns()[columns[k]];
        for (size_t row = 0; row < table.num_rows(); ++row)
          labels[row * columns.size() + k] = tag_label(column.values[row]);
      }
    }
  }
  return scan;
}

}  // namespace garmentnet
