// A labelled dataset: a table of labels checked against a task spec, plus the image folder.
// Loading validates everything and reports problems by file, row and value.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/task_spec.h"

namespace garmentnet {

struct DatasetOptions {
  bool strict = false;          // missing images and null labels are errors instead of warnings
  bool check_images = true;     // check that every image file exists
  bool derive_classes = false;  // softmax heads with no classes take the sorted values in the data
};

// What loading found; every list names ids or "row N" (1-based data row of the file).
struct DatasetReport {
  size_t rows_read = 0;
  size_t exact_duplicates_dropped = 0;
  std::vector<std::string> missing_images;  // ids whose image file does not exist
  std::vector<std::string> null_labels;     // "row N: column 'x' is null"
  std::vector<std::string> warnings;        // everything above, as printable lines
};

struct LabelledDataset {
  TaskSpec spec;  // classes filled in
  std::filesystem::path table_path;
  std::filesystem::path images_dir;
  std::vector<std::string> ids;               // one per example, duplicates removed
  std::vector<std::filesystem::path> images;  // image file per example
  // Per head name. Softmax: one class index per example, -1 where the label is missing.
  // MultiLabel: examples × tags, row-major, values 0/1, -1 where missing.
  std::map<std::string, std::vector<int64_t>> labels;

  size_t size() const { return ids.size(); }
  // Keeps only the examples at `indices`, in that order (for splits).
  LabelledDataset subset(const std::vector<size_t>& indices) const;
};

// Reads `table` (Parquet/CSV) and validates it against `spec`:
//  - missing columns, null ids: error;
//  - exact duplicate rows: dropped, counted, warned;
//  - the same id with different labels: error listing the ids;
//  - unknown category values, tag values other than 0/1: error naming row, column and value;
//  - null labels: warned and masked (error with strict);
//  - missing image files: warned and the rows skipped (error with strict).
LabelledDataset load_labelled_dataset(const std::filesystem::path& table,
                                      const std::filesystem::path& images_dir, const TaskSpec& spec,
                                      const DatasetOptions& options = {},
                                      DatasetReport* report = nullptr);

// The same, from a table already scanned (one read of the file for `explore`'s counts and the
// loader's verdict); the scan decided whether classes are derived, options.derive_classes is not
// read.
struct LabelScan;
LabelledDataset load_labelled_dataset(const LabelScan& scan,
                                      const std::filesystem::path& images_dir,
                                      const DatasetOptions& options = {},
                                      DatasetReport* report = nullptr);

// Reads the ids to predict (the spec's id column) from a table; errors on nulls and a missing
// column, naming the file.
std::vector<std::string> read_ids(const std::filesystem::path& table, const TaskSpec& spec);

}  // namespace garmentnet
