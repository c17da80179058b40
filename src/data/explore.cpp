#include "data/explore.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/table.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

std::vector<Value> row_values(const Table& table, size_t row) {
  std::vector<Value> values;
  values.reserve(table.num_columns());
  for (const auto& column : table.columns()) values.push_back(column.values[row]);
  return values;
}

// Indices of the rows that are not exact copies of an earlier row, in file order.
std::vector<size_t> distinct_rows(const Table& table) {
  std::set<std::vector<Value>> seen;
  std::vector<size_t> rows;
  for (size_t row = 0; row < table.num_rows(); ++row) {
    if (seen.insert(row_values(table, row)).second) rows.push_back(row);
  }
  return rows;
}

// Most frequent first, ties by name, so reports read the same on every run.
std::vector<NamedCount> sorted_by_count(const std::map<std::string, size_t>& counts) {
  std::vector<NamedCount> out;
  for (const auto& [name, count] : counts) out.push_back({name, count});
  std::stable_sort(out.begin(), out.end(),
                   [](const NamedCount& a, const NamedCount& b) { return a.count > b.count; });
  return out;
}

// A tag cell as 0/1, or -1 when it is null or another value.
int tag_value(const Value& value) {
  double number = 0;
  if (const auto* integer = std::get_if<int64_t>(&value)) {
    number = static_cast<double>(*integer);
  } else if (const auto* real = std::get_if<double>(&value)) {
    number = *real;
  } else {
    return -1;
  }
  if (number == 0.0) return 0;
  if (number == 1.0) return 1;
  return -1;
}

ImageStats read_image_stats(const std::vector<fs::path>& files, int threads) {
  struct Probe {
    uint64_t bytes = 0;
    ImageSize size;
    std::string error;
  };
  std::vector<Probe> probes(files.size());
  ThreadPool pool(threads > 0 ? threads : default_thread_count());
  pool.parallel_for(files.size(), [&](size_t i) {
    try {
      const std::string bytes = read_file(files[i]);
      probes[i].bytes = bytes.size();
      probes[i].size = probe_image_size(bytes, files[i].string());
    } catch (const InputError& error) {
      probes[i].error = error.what();
    }
  });

  ImageStats stats;
  std::map<std::string, size_t> sizes;
  std::vector<uint64_t> bytes;
  for (size_t i = 0; i < files.size(); ++i) {
    if (!probes[i].error.empty()) {
      stats.unreadable.push_back(probes[i].error);
      continue;
    }
    ++stats.images_read;
    stats.widths.push_back(probes[i].size.width);
    stats.heights.push_back(probes[i].size.height);
    ++sizes[fmt::format("{}x{}", probes[i].size.width, probes[i].size.height)];
    bytes.push_back(probes[i].bytes);
  }
  stats.sizes = sorted_by_count(sizes);
  if (!bytes.empty()) {
    std::sort(bytes.begin(), bytes.end());
    stats.file_bytes_total = std::accumulate(bytes.begin(), bytes.end(), uint64_t{0});
    stats.file_bytes_min = bytes.front();
    stats.file_bytes_max = bytes.back();
    stats.file_bytes_mean =
        static_cast<double>(stats.file_bytes_total) / static_cast<double>(bytes.size());
    stats.file_bytes_median = bytes[bytes.size() / 2];
  }
  return stats;
}

// The training loader's verdict on the same files, so the report says whether `train` accepts
// them and how many examples it would use.
void record_loader_verdict(const fs::path& table_path, const fs::path& images_dir,
                           const TaskSpec& spec, TableSummary& summary) {
  DatasetOptions options;
  options.derive_classes = true;
  DatasetReport report;
  try {
    const LabelledDataset dataset =
        load_labelled_dataset(table_path, images_dir, spec, options, &report);
    summary.loads_for_training = true;
    summary.training_examples = dataset.size();
    summary.loader_message = fmt::format("{}", fmt::join(report.warnings, "; "));
  } catch (const InputError& error) {
    summary.loads_for_training = false;
    summary.loader_message = error.what();
  }
}

std::string tag_list(const std::vector<std::string>& tags, const std::vector<int>& values) {
  std::vector<std::string> set;
  for (size_t t = 0; t < tags.size(); ++t) {
    if (values[t] == 1) set.push_back(tags[t]);
  }
  return set.empty() ? "no tag" : fmt::format("{}", fmt::join(set, ", "));
}

nlohmann::json to_json(const std::vector<NamedCount>& counts) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& entry : counts) out.push_back({{"name", entry.name}, {"count", entry.count}});
  return out;
}

nlohmann::json to_json(const TableSummary& s) {
  nlohmann::json other = nlohmann::json::array();
  for (const auto& distribution : s.other_columns) {
    other.push_back({{"column", distribution.column}, {"values", to_json(distribution.values)}});
  }
  const ImageStats& im = s.images;
  return {
      {"table", s.table_path.string()},
      {"rows_read", s.rows_read},
      {"exact_duplicate_rows", s.exact_duplicate_rows},
      {"rows_after_deduplication", s.rows_after_deduplication},
      {"null_ids", s.null_ids},
      {"conflicting_ids", s.conflicting_ids},
      {"missing_images", s.missing_images},
      {"category_column", s.category_column},
      {"categories", to_json(s.categories)},
      {"null_categories", s.null_categories},
      {"unknown_categories", to_json(s.unknown_categories)},
      {"tags", s.tags},
      {"tag_counts", s.tag_counts},
      {"tag_cooccurrence", s.tag_cooccurrence},
      {"tags_per_row", s.tags_per_row},
      {"invalid_tag_rows", s.invalid_tag_rows},
      {"category_tags", s.category_tags},
      {"other_columns", other},
      {"images",
       {{"images_read", im.images_read},
        {"unreadable", im.unreadable},
        {"sizes", to_json(im.sizes)},
        {"file_bytes",
         {{"total", im.file_bytes_total},
          {"min", im.file_bytes_min},
          {"max", im.file_bytes_max},
          {"mean", im.file_bytes_mean},
          {"median", im.file_bytes_median}}}}},
      {"loads_for_training", s.loads_for_training},
      {"training_examples", s.training_examples},
      {"loader_message", s.loader_message},
  };
}

nlohmann::json to_json(const std::vector<SampleGroup>& groups) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& group : groups) {
    nlohmann::json ids = nlohmann::json::array();
    for (const auto& sample : group.samples) ids.push_back(sample.id);
    out.push_back({{"name", group.name}, {"ids", ids}});
  }
  return out;
}

}  // namespace

TableSummary summarize_labelled_table(const fs::path& table_path, const fs::path& images_dir,
                                      const TaskSpec& spec, const ExploreOptions& options,
                                      std::vector<SampleGroup>* category_samples,
                                      std::vector<SampleGroup>* tag_samples) {
  const Table table = read_table(table_path);
  const std::string file = table_path.string();
  TableSummary s;
  s.table_path = table_path;
  s.rows_read = table.num_rows();

  const Column& id_column = table.column(spec.id_column, file);
  const std::vector<size_t> rows = distinct_rows(table);
  s.rows_after_deduplication = rows.size();
  s.exact_duplicate_rows = s.rows_read - rows.size();

  // Ids, conflicts and image files, over distinct rows.
  std::map<std::string, size_t> rows_per_id;
  std::vector<std::string> row_id(table.num_rows());
  for (size_t row : rows) {
    const Value& id = id_column.values[row];
    if (is_null(id)) {
      ++s.null_ids;
      continue;
    }
    row_id[row] = to_display_string(id);
    ++rows_per_id[row_id[row]];
  }
  std::unordered_set<std::string> has_image;
  std::vector<fs::path> image_files;
  for (const auto& [id, count] : rows_per_id) {
    if (count > 1) s.conflicting_ids.push_back(id);
    fs::path image = spec.image_path(images_dir, id);
    std::error_code error;
    if (fs::is_regular_file(image, error)) {
      has_image.insert(id);
      image_files.push_back(std::move(image));
    } else {
      s.missing_images.push_back(id);
    }
  }
  s.images = read_image_stats(image_files, options.threads);

  // Categories.
  std::vector<int> category_of(table.num_rows(), -1);
  if (const HeadSpec* head = spec.category_head()) {
    s.category_column = head->column;
    const Column& column = table.column(head->column, file);
    std::vector<std::string> classes = head->classes;
    if (classes.empty()) {
      std::set<std::string> values;
      for (size_t row : rows) {
        if (!is_null(column.values[row])) values.insert(to_display_string(column.values[row]));
      }
      classes.assign(values.begin(), values.end());
    }
    std::unordered_map<std::string, int> index;
    for (size_t c = 0; c < classes.size(); ++c) {
      s.categories.push_back({classes[c], 0});
      index[classes[c]] = static_cast<int>(c);
    }
    std::map<std::string, size_t> unknown;
    for (size_t row : rows) {
      const Value& value = column.values[row];
      if (is_null(value)) {
        ++s.null_categories;
        continue;
      }
      const std::string text = to_display_string(value);
      auto found = index.find(text);
      if (found == index.end()) {
        ++unknown[text];
      } else {
        category_of[row] = found->second;
        ++s.categories[static_cast<size_t>(found->second)].count;
      }
    }
    s.unknown_categories = sorted_by_count(unknown);
  }

  // Tags.
  std::vector<std::vector<int>> tags_of(table.num_rows());
  if (const HeadSpec* head = spec.tag_head()) {
    s.tags = head->classes;
    const size_t n = s.tags.size();
    std::vector<const Column*> columns;
    for (const auto& tag : s.tags) columns.push_back(&table.column(tag, file));
    s.tag_counts.assign(n, 0);
    s.tag_cooccurrence.assign(n, std::vector<size_t>(n, 0));
    s.tags_per_row.assign(n + 1, 0);
    s.category_tags.assign(s.categories.size(), std::vector<size_t>(n, 0));
    for (size_t row : rows) {
      std::vector<int>& values = tags_of[row];
      for (const Column* column : columns) values.push_back(tag_value(column->values[row]));
      size_t set = 0;
      bool valid = true;
      for (size_t a = 0; a < n; ++a) {
        if (values[a] < 0) valid = false;
        if (values[a] != 1) continue;
        ++set;
        ++s.tag_counts[a];
        for (size_t b = 0; b < n; ++b) s.tag_cooccurrence[a][b] += values[b] == 1 ? 1 : 0;
        if (category_of[row] >= 0) ++s.category_tags[static_cast<size_t>(category_of[row])][a];
      }
      if (valid) {
        ++s.tags_per_row[set];
      } else {
        ++s.invalid_tag_rows;
      }
    }
  }

  // Other text columns with few distinct values (e.g. colour).
  const Column* colour = nullptr;
  for (const auto& column : table.columns()) {
    if (column.type != ColumnType::String || column.name == spec.id_column ||
        column.name == s.category_column) {
      continue;
    }
    std::map<std::string, size_t> counts;
    for (size_t row : rows) {
      ++counts[to_display_string(column.values[row])];
      if (counts.size() > options.max_distinct_values) break;
    }
    if (counts.size() > options.max_distinct_values) continue;
    s.other_columns.push_back({column.name, sorted_by_count(counts)});
    if (colour == nullptr) colour = &column;
  }

  // Sample images per category and per tag: rows with an image, shuffled with the seed.
  if (category_samples != nullptr || tag_samples != nullptr) {
    std::mt19937 rng(options.seed);
    auto sample = [&](const std::string& name, auto&& belongs) {
      std::vector<size_t> candidates;
      std::unordered_set<std::string> taken;
      for (size_t row : rows) {
        if (!row_id[row].empty() && has_image.count(row_id[row]) > 0 && belongs(row) &&
            taken.insert(row_id[row]).second) {
          candidates.push_back(row);
        }
      }
      std::shuffle(candidates.begin(), candidates.end(), rng);
      candidates.resize(std::min(candidates.size(), options.samples_per_grid));
      SampleGroup group{name, {}};
      for (size_t row : candidates) {
        Sample item;
        item.id = row_id[row];
        item.image = spec.image_path(images_dir, item.id);
        if (category_of[row] >= 0) {
          item.caption.push_back(s.categories[static_cast<size_t>(category_of[row])].name);
        }
        if (!s.tags.empty()) item.caption.push_back(tag_list(s.tags, tags_of[row]));
        if (colour != nullptr) item.caption.push_back(to_display_string(colour->values[row]));
        group.samples.push_back(std::move(item));
      }
      return group;
    };
    if (category_samples != nullptr) {
      for (size_t c = 0; c < s.categories.size(); ++c) {
        category_samples->push_back(sample(s.categories[c].name, [&](size_t row) {
          return category_of[row] == static_cast<int>(c);
        }));
      }
    }
    if (tag_samples != nullptr) {
      for (size_t t = 0; t < s.tags.size(); ++t) {
        tag_samples->push_back(sample(s.tags[t], [&](size_t row) { return tags_of[row][t] == 1; }));
      }
    }
  }

  record_loader_verdict(table_path, images_dir, spec, s);
  return s;
}

ExploreResult explore_dataset(const ExploreOptions& options) {
  ExploreResult result;
  result.data_dir = options.data_dir;
  result.images_dir = options.images_dir.empty() ? options.data_dir / "images" : options.images_dir;
  result.spec = options.spec;
  const fs::path train_path = options.data_dir / "data.parquet";
  std::error_code error;
  if (!fs::is_regular_file(train_path, error)) {
    fail("{} not found: --data must name a dataset folder holding data.parquet and images/",
         train_path.string());
  }
  if (!fs::is_directory(result.images_dir, error)) {
    fail("images folder {} not found: give it with --images", result.images_dir.string());
  }
  result.train = summarize_labelled_table(train_path, result.images_dir, options.spec, options,
                                          &result.category_samples, &result.tag_samples);

  std::set<std::string> train_ids;
  const Table train = read_table(train_path);
  for (const auto& id : train.column(options.spec.id_column).values) {
    if (!is_null(id)) train_ids.insert(to_display_string(id));
  }
  std::set<std::string> overlap;
  auto check_overlap = [&](const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
      if (train_ids.count(id) > 0) overlap.insert(id);
    }
  };

  const fs::path test_labels_path = options.data_dir / "test_labels.parquet";
  if (fs::is_regular_file(test_labels_path, error)) {
    result.test = summarize_labelled_table(test_labels_path, result.images_dir, options.spec,
                                           options, nullptr, nullptr);
    const Table test = read_table(test_labels_path);
    std::vector<std::string> ids;
    for (const auto& id : test.column(options.spec.id_column).values) {
      if (!is_null(id)) ids.push_back(to_display_string(id));
    }
    check_overlap(ids);
  }
  const fs::path test_path = options.data_dir / "test.parquet";
  if (fs::is_regular_file(test_path, error)) {
    const std::vector<std::string> ids = read_ids(test_path, options.spec);
    result.test_ids = ids.size();
    for (const auto& id : ids) {
      if (!fs::is_regular_file(options.spec.image_path(result.images_dir, id), error)) {
        result.test_ids_missing_images.push_back(id);
      }
    }
    check_overlap(ids);
  }
  result.ids_in_train_and_test.assign(overlap.begin(), overlap.end());
  return result;
}

nlohmann::json ExploreResult::to_json() const {
  nlohmann::json out = {
      {"data_dir", data_dir.string()},
      {"images_dir", images_dir.string()},
      {"task", spec.to_json()},
      {"train", garmentnet::to_json(train)},
      {"category_samples", garmentnet::to_json(category_samples)},
      {"tag_samples", garmentnet::to_json(tag_samples)},
      {"ids_in_train_and_test", ids_in_train_and_test},
  };
  if (test) out["test_labels"] = garmentnet::to_json(*test);
  if (test_ids) {
    out["test_ids"] = {{"rows", *test_ids}, {"missing_images", test_ids_missing_images}};
  }
  return out;
}

}  // namespace garmentnet
