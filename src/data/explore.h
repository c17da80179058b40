// Data exploration: what a labelled dataset folder holds, counted from the raw table (so that
// problems such as duplicates and conflicting ids are reported rather than refused), plus the
// verdict of the training loader on the same files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/task_spec.h"

namespace garmentnet {

struct ExploreOptions {
  std::filesystem::path data_dir;        // dataset folder (data.parquet, images/, ...)
  std::filesystem::path images_dir;      // images folder; empty means data_dir/images
  TaskSpec spec = TaskSpec::garments();  // which columns are the category and the tags
  size_t max_distinct_values = 40;  // other text columns with at most this many values get counted
  int threads = 0;                  // threads for reading image headers; 0 = all cores
  size_t samples_per_grid = 8;      // sample images shown per category and per tag
  uint32_t seed = 42;               // chooses the sample images
};

// A name and how many rows have it.
struct NamedCount {
  std::string name;
  size_t count = 0;
};

// Counts of one text column's values, most frequent first.
struct ValueDistribution {
  std::string column;
  std::vector<NamedCount> values;  // null shown as "NULL"
};

// Image files: sizes read from the headers only, file sizes in bytes.
struct ImageStats {
  size_t images_read = 0;               // images whose header was read
  std::vector<std::string> unreadable;  // "file: reason" for images whose header is bad
  std::vector<NamedCount> sizes;        // "W×H" → count, most frequent first
  std::vector<int> widths, heights;     // one per image read (for histograms)
  uint64_t file_bytes_total = 0;
  uint64_t file_bytes_min = 0;
  uint64_t file_bytes_max = 0;
  double file_bytes_mean = 0;
  uint64_t file_bytes_median = 0;
};

// Everything counted over one labelled table (data.parquet or test_labels.parquet).
struct TableSummary {
  std::filesystem::path table_path;
  size_t rows_read = 0;
  size_t exact_duplicate_rows = 0;           // rows equal in every column to an earlier row
  size_t rows_after_deduplication = 0;       // all statistics below count these rows
  size_t null_ids = 0;                       // rows without an id
  std::vector<std::string> conflicting_ids;  // ids found in rows with different values
  std::vector<std::string> missing_images;   // ids whose image file does not exist

  std::string category_column;                 // empty if the spec has no softmax head
  std::vector<NamedCount> categories;          // in class order (spec order, or sorted if derived)
  size_t null_categories = 0;                  // rows with a null category
  std::vector<NamedCount> unknown_categories;  // values not in the spec's classes

  std::vector<std::string> tags;   // tag column names (the spec's multi-label head)
  std::vector<size_t> tag_counts;  // rows with tag t = 1
  // tag_cooccurrence[a][b]: rows with tags a and b both 1 (diagonal = tag_counts).
  std::vector<std::vector<size_t>> tag_cooccurrence;
  // tags_per_row[k]: rows with exactly k tags set (k = 0 … number of tags); rows with a null or
  // invalid tag value are left out and counted in invalid_tag_rows.
  std::vector<size_t> tags_per_row;
  size_t invalid_tag_rows = 0;  // rows with a tag value that is null or not 0/1
  // category_tags[c][t]: rows of category c with tag t = 1 (categories as in `categories`).
  std::vector<std::vector<size_t>> category_tags;

  std::vector<ValueDistribution> other_columns;  // e.g. color1

  ImageStats images;

  // What `train` would make of this table: usable examples, or why it would refuse it.
  bool loads_for_training = false;
  size_t training_examples = 0;
  std::string loader_message;  // the loader's error, or its warnings joined
};

// One sample image with the lines shown under its thumbnail (category, tags, colour).
struct Sample {
  std::string id;
  std::filesystem::path image;
  std::vector<std::string> caption;
};

// Sample images of one category or one tag.
struct SampleGroup {
  std::string name;
  std::vector<Sample> samples;
};

struct ExploreResult {
  std::filesystem::path data_dir;
  std::filesystem::path images_dir;
  TaskSpec spec;
  TableSummary train;                         // data.parquet
  std::vector<SampleGroup> category_samples;  // from data.parquet, one group per category
  std::vector<SampleGroup> tag_samples;       // from data.parquet, one group per tag
  std::optional<TableSummary> test;           // test_labels.parquet, if present
  // test.parquet (ids to predict), if present.
  std::optional<size_t> test_ids;
  std::vector<std::string> test_ids_missing_images;
  // Ids found both in data.parquet and in test_labels.parquet / test.parquet (leakage).
  std::vector<std::string> ids_in_train_and_test;

  nlohmann::json to_json() const;
};

// Summarises one scanned label table; never refuses data that the loader would refuse, it counts
// the problems instead, and records the loader's verdict on the same scan. When given,
// `category_samples` / `tag_samples` receive sample images per category / per tag
// (options.samples_per_grid each, chosen with options.seed).
struct LabelScan;
TableSummary summarize_labelled_table(const LabelScan& scan,
                                      const std::filesystem::path& images_dir,
                                      const ExploreOptions& options,
                                      std::vector<SampleGroup>* category_samples = nullptr,
                                      std::vector<SampleGroup>* tag_samples = nullptr);

// Explores a dataset folder: data.parquet (required), test_labels.parquet and test.parquet
// (optional).
ExploreResult explore_dataset(const ExploreOptions& options);

}  // namespace garmentnet
