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
#include "data/label_scan.h"
#include "data/table.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

// Most frequent first, ties by name, so reports read the same on every run.
std::vector<NamedCount> sorted_by_count(const std::map<std::string, size_t>& counts) {
  std::vector<NamedCount> out;
  for (const auto& [name, count] : counts) out.push_back({name, count});
  std::stable_sort(out.begin(), out.end(),
                   [](const NamedCount& a, const NamedCount& b) { return a.count > b.count; });
  return out;
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

// The training loader's verdict on the same rows, so the report says whether `train` accepts
// them and how many examples it would use.
void record_loader_verdict(const LabelScan& scan, const fs::path& images_dir,
                           TableSummary& summary) {
  DatasetReport report;
  try {
    const LabelledDataset dataset = load_labelled_dataset(scan, images_dir, {}, &report);
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

// The index of `head` among the scan's heads, or -1 when there is none.
int head_index(const LabelScan& scan, const HeadSpec* head) {
  return head == nullptr ? -1 : int(head - scan.spec.heads.data());
}

// Null ids, conflicting ids and image files, over distinct rows; returns the ids with an image.
std::unordered_set<std::string> count_ids_and_images(const LabelScan& scan,
                                                     const fs::path& images_dir, int threads,
                                                     TableSummary& s) {
  std::set<std::string> ids;
  for (size_t row : scan.rows) {
    if (scan.id_is_null(row))
      ++s.null_ids;
    else
      ids.insert(scan.ids[row]);
  }
  s.conflicting_ids = scan.conflicting_ids;
  std::unordered_set<std::string> has_image;
  std::vector<fs::path> image_files;
  for (const auto& id : ids) {
    fs::path image = scan.spec.image_path(images_dir, id);
    std::error_code error;
    if (fs::is_regular_file(image, error)) {
      has_image.insert(id);
      image_files.push_back(std::move(image));
    } else {
      s.missing_images.push_back(id);
    }
  }
  s.images = read_image_stats(image_files, threads);
  return has_image;
}

void count_categories(const LabelScan& scan, TableSummary& s) {
  const int c = head_index(scan, scan.spec.category_head());
  if (c < 0) return;
  const HeadSpec& head = scan.spec.heads[size_t(c)];
  s.category_column = head.column;
  for (const auto& name : head.classes) s.categories.push_back({name, 0});
  std::map<std::string, size_t> unknown;
  for (size_t row : scan.rows) {
    const int64_t label = scan.label(size_t(c), row);
    if (label == kNullLabel)
      ++s.null_categories;
    else if (label == kInvalidLabel)
      ++unknown[to_display_string(scan.column(size_t(c)).values[row])];
    else
      ++s.categories[size_t(label)].count;
  }
  s.unknown_categories = sorted_by_count(unknown);
}

void count_tags(const LabelScan& scan, TableSummary& s) {
  const int t = head_index(scan, scan.spec.tag_head());
  if (t < 0) return;
  const int c = head_index(scan, scan.spec.category_head());
  s.tags = scan.spec.heads[size_t(t)].classes;
  const size_t n = s.tags.size();
  s.tag_counts.assign(n, 0);
  s.tag_cooccurrence.assign(n, std::vector<size_t>(n, 0));
  s.tags_per_row.assign(n + 1, 0);
  s.category_tags.assign(s.categories.size(), std::vector<size_t>(n, 0));
  for (size_t row : scan.rows) {
    const auto value = [&](size_t tag) { return scan.label(size_t(t), row, tag); };
    const int64_t category = c < 0 ? kNullLabel : scan.label(size_t(c), row);
    size_t set = 0;
    bool valid = true;
    for (size_t a = 0; a < n; ++a) {
      if (value(a) < 0) valid = false;
      if (value(a) != 1) continue;
      ++set;
      ++s.tag_counts[a];
      for (size_t b = 0; b < n; ++b) s.tag_cooccurrence[a][b] += value(b) == 1 ? 1 : 0;
      if (category >= 0) ++s.category_tags[size_t(category)][a];
    }
    if (valid)
      ++s.tags_per_row[set];
    else
      ++s.invalid_tag_rows;
  }
}

// Other text columns with few distinct values (e.g. colour); returns the first, or null.
const Column* count_other_columns(const LabelScan& scan, size_t max_distinct_values,
                                  TableSummary& s) {
  const Column* first = nullptr;
  for (const auto& column : scan.table.columns()) {
    if (column.type != ColumnType::String || column.name == scan.spec.id_column ||
        column.name == s.category_column)
      continue;
    std::map<std::string, size_t> counts;
    for (size_t row : scan.rows) {
      ++counts[to_display_string(column.values[row])];
      if (counts.size() > max_distinct_values) break;
    }
    if (counts.size() > max_distinct_values) continue;
    s.other_columns.push_back({column.name, sorted_by_count(counts)});
    if (first == nullptr) first = &column;
  }
  return first;
}

// Sample images per category and per tag: rows with an image, shuffled with the seed; each
// captioned with its category, tags and `colour`.
void sample_images(const LabelScan& scan, const fs::path& images_dir, const ExploreOptions& options,
                   const TableSummary& s, const std::unordered_set<std::string>& has_image,
                   const Column* colour, std::vector<SampleGroup>* category_samples,
                   std::vector<SampleGroup>* tag_samples) {
  const int c = head_index(scan, scan.spec.category_head());
  const int t = head_index(scan, scan.spec.tag_head());
  const auto category_of = [&](size_t row) {
    return c < 0 ? kNullLabel : scan.label(size_t(c), row);
  };
  std::mt19937 rng(options.seed);
  auto sample = [&](const std::string& name, auto&& belongs) {
    std::vector<size_t> candidates;
    std::unordered_set<std::string> taken;
    for (size_t row : scan.rows) {
      const std::string& id = scan.ids[row];
      if (has_image.contains(id) && belongs(row) && taken.insert(id).second)
        candidates.push_back(row);
    }
    std::shuffle(candidates.begin(), candidates.end(), rng);
    candidates.resize(std::min(candidates.size(), options.samples_per_grid));
    SampleGroup group{name, {}};
    for (size_t row : candidates) {
      Sample item{.id = scan.ids[row], .image = scan.spec.image_path(images_dir, scan.ids[row])};
      if (category_of(row) >= 0)
        item.caption.push_back(s.categories[size_t(category_of(row))].name);
      if (t >= 0) {
        std::vector<int> values;
        for (size_t k = 0; k < s.tags.size(); ++k)
          values.push_back(int(scan.label(size_t(t), row, k)));
        item.caption.push_back(tag_list(s.tags, values));
      }
      if (colour != nullptr) item.caption.push_back(to_display_string(colour->values[row]));
      group.samples.push_back(std::move(item));
    }
    return group;
  };
  if (category_samples != nullptr)
    for (size_t k = 0; k < s.categories.size(); ++k)
      category_samples->push_back(
          sample(s.categories[k].name, [&](size_t row) { return category_of(row) == int64_t(k); }));
  if (tag_samples != nullptr)
    for (size_t k = 0; k < s.tags.size(); ++k)
      tag_samples->push_back(
          sample(s.tags[k], [&](size_t row) { return scan.label(size_t(t), row, k) == 1; }));
}

}  // namespace

TableSummary summarize_labelled_table(const LabelScan& scan, const fs::path& images_dir,
                                      const ExploreOptions& options,
                                      std::vector<SampleGroup>* category_samples,
                                      std::vector<SampleGroup>* tag_samples) {
  TableSummary s;
  s.table_path = scan.path;
  s.rows_read = scan.table.num_rows();
  s.rows_after_deduplication = scan.rows.size();
  s.exact_duplicate_rows = scan.exact_duplicates();
  const std::unordered_set<std::string> has_image =
      count_ids_and_images(scan, images_dir, options.threads, s);
  count_categories(scan, s);
  count_tags(scan, s);
  const Column* colour = count_other_columns(scan, options.max_distinct_values, s);
  sample_images(scan, images_dir, options, s, has_image, colour, category_samples, tag_samples);
  record_loader_verdict(scan, images_dir, s);
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
  const LabelScan train = scan_label_table(train_path, options.spec, /*derive_classes=*/true);
  result.train = summarize_labelled_table(train, result.images_dir, options,
                                          &result.category_samples, &result.tag_samples);

  const auto ids_of = [](const LabelScan& scan) {
    std::vector<std::string> ids;
    for (size_t row : scan.rows)
      if (!scan.id_is_null(row)) ids.push_back(scan.ids[row]);
    return ids;
  };
  const std::vector<std::string> train_id_list = ids_of(train);
  const std::set<std::string> train_ids(train_id_list.begin(), train_id_list.end());
  std::set<std::string> overlap;
  auto check_overlap = [&](const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
      if (train_ids.count(id) > 0) overlap.insert(id);
    }
  };

  const fs::path test_labels_path = options.data_dir / "test_labels.parquet";
  if (fs::is_regular_file(test_labels_path, error)) {
    const LabelScan test = scan_label_table(test_labels_path, options.spec, true);
    result.test = summarize_labelled_table(test, result.images_dir, options);
    check_overlap(ids_of(test));
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
