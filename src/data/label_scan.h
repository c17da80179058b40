// One pass over a label table against a task spec: each distinct row's id and labels decoded, and
// what is wrong with them, counted rather than refused. The training loader (dataset.h) decides
// what fails; explore (explore.h) counts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/table.h"
#include "data/task_spec.h"

namespace garmentnet {

// A decoded label: a class index, or 0/1 for a tag, or one of these.
constexpr int64_t kNullLabel = -1;     // the cell is null
constexpr int64_t kInvalidLabel = -2;  // a category not among the classes, a tag not 0 or 1

struct LabelScan {
  std::filesystem::path path;
  Table table;
  TaskSpec spec;  // softmax heads' classes derived from the data where the spec lists none
  // Rows that are not exact copies (every column equal) of an earlier row, 0-based, in file order;
  // every figure below is about these rows.
  std::vector<size_t> rows;
  std::vector<std::string> ids;              // per table row: its id, "" where null
  std::vector<std::string> conflicting_ids;  // ids on more than one distinct row, sorted
  // Per head (spec order), the indices in `table` of the columns its labels come from: the
  // category column, or one per tag.
  std::vector<std::vector<size_t>> columns;
  // labels[h][row * columns[h].size() + k]: per head, per table row, per column.
  std::vector<std::vector<int64_t>> labels;

  size_t exact_duplicates() const { return table.num_rows() - rows.size(); }
  bool id_is_null(size_t row) const { return is_null(table.column(spec.id_column).values[row]); }
  const Column& column(size_t head, size_t k = 0) const {
    return table.columns()[columns[head][k]];
  }
  int64_t label(size_t head, size_t row, size_t k = 0) const {
    return labels[head][row * columns[head].size() + k];
  }
};

// Reads `path` (Parquet/CSV) and decodes it against `spec`. InputError naming the file for an
// unreadable table or a missing id, category or tag column. With `derive_classes`, a softmax head
// that lists no classes takes the sorted distinct values of its column; without, it is an error.
LabelScan scan_label_table(const std::filesystem::path& path, const TaskSpec& spec,
                           bool derive_classes);

}  // namespace garmentnet
