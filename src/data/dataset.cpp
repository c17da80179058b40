#include "data/dataset.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "data/label_scan.h"
#include "data/table.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

constexpr size_t kListedProblems = 10;  // problems named in one message before "and N more"

// "a, b, c and 7 more"
std::string summarize(const std::vector<std::string>& items) {
  std::string text;
  for (size_t i = 0; i < std::min(items.size(), kListedProblems); ++i) {
    text += (i == 0 ? "" : "; ") + items[i];
  }
  if (items.size() > kListedProblems) {
    text += fmt::format("; and {} more", items.size() - kListedProblems);
  }
  return text;
}

// An id becomes part of a file name: refuse anything that could leave the images folder.
void check_id(const std::string& id, const std::string& where) {
  if (id.empty() || id == "." || id == ".." || id.find('/') != std::string::npos ||
      id.find('\0') != std::string::npos) {
    fail("{}: id '{}' is not a valid file name (empty, '.', '..' or containing '/')", where, id);
  }
}

// Refuses ids that are null, cannot name a file, or label rows that disagree.
void check_ids(const LabelScan& scan) {
  const std::string file = scan.path.string();
  const Column& id_column = scan.table.column(scan.spec.id_column, file);
  for (size_t row : scan.rows) {
    const std::string where = fmt::format("{}: row {}", file, row + 1);
    if (is_null(id_column.values[row]))
      fail("{}: column '{}' is null; every row needs an id", where, scan.spec.id_column);
    check_id(scan.ids[row], where);
  }
  if (!scan.conflicting_ids.empty())
    fail(
        "{}: {} id(s) appear in rows with different values: {}. Fix or remove the conflicting rows",
        file, scan.conflicting_ids.size(), summarize(scan.conflicting_ids));
}

// The scan's labels as the dataset's (null labels masked with -1 and reported); refuses unknown
// categories and tag values other than 0/1, naming row, column and value.
void take_labels(const LabelScan& scan, LabelledDataset& dataset, DatasetReport& report) {
  std::vector<std::string> invalid;
  std::set<size_t> heads_with_unknown_values;  // softmax heads (indices) with unknown values
  for (size_t row : scan.rows) {
    for (size_t h = 0; h < scan.spec.heads.size(); ++h) {
      const HeadSpec& head = scan.spec.heads[h];
      auto& labels = dataset.labels[head.name];
      for (size_t k = 0; k < scan.columns[h].size(); ++k) {
        const int64_t label = scan.label(h, row, k);
        const Column& column = scan.column(h, k);
        if (label == kNullLabel)
          report.null_labels.push_back(
              fmt::format("row {}: column '{}' is null", row + 1, column.name));
        if (label == kInvalidLabel && head.kind == HeadKind::Softmax) {
          invalid.push_back(fmt::format("row {}: column '{}' has unknown value '{}'", row + 1,
                                        column.name, to_display_string(column.values[row])));
          heads_with_unknown_values.insert(h);
        } else if (label == kInvalidLabel) {
          invalid.push_back(fmt::format("row {}: column '{}' has value {} (tags must be 0 or 1)",
                                        row + 1, column.name,
                                        to_display_string(column.values[row])));
        }
        labels.push_back(label == kInvalidLabel ? kNullLabel : label);
      }
    }
  }
  if (invalid.empty()) return;
  // The known values of the columns that had unknown ones (not of those only wrong elsewhere).
  std::string known;
  for (const size_t h : heads_with_unknown_values) {
    const HeadSpec& head = scan.spec.heads[h];
    known += fmt::format(" Known '{}' values: {}.", head.column, fmt::join(head.classes, ", "));
  }
  fail("{}: {} invalid label(s): {}.{}", scan.path.string(), invalid.size(), summarize(invalid),
       known);
}

// Skips (or, strict, refuses) the examples whose image file does not exist.
void keep_examples_with_images(LabelledDataset& dataset, const DatasetOptions& options,
                               DatasetReport& report) {
  std::vector<size_t> keep;
  for (size_t i = 0; i < dataset.size(); ++i) {
    std::error_code error;
    if (fs::is_regular_file(dataset.images[i], error))
      keep.push_back(i);
    else
      report.missing_images.push_back(dataset.ids[i]);
  }
  if (report.missing_images.empty()) return;
  const std::string text = fmt::format(
      "{} of {} image(s) missing in {} (expected e.g. {}): {}", report.missing_images.size(),
      dataset.size(), dataset.images_dir.string(),
      dataset.spec.image_path(dataset.images_dir, report.missing_images.front()).string(),
      summarize(report.missing_images));
  if (options.strict) fail("{} (strict mode)", text);
  report.warnings.push_back(text + "; those rows are skipped");
  dataset = dataset.subset(keep);
}

}  // namespace

LabelledDataset LabelledDataset::subset(const std::vector<size_t>& indices) const {
  LabelledDataset out;
  out.spec = spec;
  out.table_path = table_path;
  out.images_dir = images_dir;
  for (size_t i : indices) {
    out.ids.push_back(ids.at(i));
    out.images.push_back(images.at(i));
  }
  for (const auto& head : spec.heads) {
    const auto& source = labels.at(head.name);
    auto& target = out.labels[head.name];
    const size_t width = head.kind == HeadKind::Softmax ? 1 : head.classes.size();
    for (size_t i : indices) {
      target.insert(target.end(), source.begin() + static_cast<ptrdiff_t>(i * width),
                    source.begin() + static_cast<ptrdiff_t>((i + 1) * width));
    }
  }
  return out;
}

LabelledDataset load_labelled_dataset(const fs::path& table_path, const fs::path& images_dir,
                                      const TaskSpec& spec, const DatasetOptions& options,
                                      DatasetReport* report_out) {
  return load_labelled_dataset(scan_label_table(table_path, spec, options.derive_classes),
                               images_dir, options, report_out);
}

LabelledDataset load_labelled_dataset(const LabelScan& scan, const fs::path& images_dir,
                                      const DatasetOptions& options, DatasetReport* report_out) {
  const std::string file = scan.path.string();
  if (scan.table.num_rows() == 0) fail("{}: the table has no rows", file);
  for (size_t h = 0; h < scan.spec.heads.size(); ++h)
    for (size_t k = 0; k < scan.columns[h].size(); ++k)
      if (scan.spec.heads[h].kind == HeadKind::MultiLabel &&
          scan.column(h, k).type == ColumnType::String)
        fail("{}: tag column '{}' holds text; it must hold 0/1 integers", file,
             scan.column(h, k).name);
  check_ids(scan);

  LabelledDataset dataset{.spec = scan.spec, .table_path = scan.path, .images_dir = images_dir};
  DatasetReport report;
  report.rows_read = scan.table.num_rows();
  report.exact_duplicates_dropped = scan.exact_duplicates();
  take_labels(scan, dataset, report);
  for (size_t row : scan.rows) {
    dataset.ids.push_back(scan.ids[row]);
    dataset.images.push_back(scan.spec.image_path(images_dir, scan.ids[row]));
  }
  if (!report.null_labels.empty()) {
    const std::string text =
        fmt::format("{}: {} null label(s), left out of their head's loss: {}", file,
                    report.null_labels.size(), summarize(report.null_labels));
    if (options.strict) fail("{} (strict mode)", text);
    report.warnings.push_back(text);
  }
  if (report.exact_duplicates_dropped > 0)
    report.warnings.push_back(fmt::format("{}: dropped {} exact duplicate row(s)", file,
                                          report.exact_duplicates_dropped));
  if (options.check_images) keep_examples_with_images(dataset, options, report);
  if (dataset.size() == 0) fail("{}: no usable rows left", file);

  for (const auto& warning : report.warnings) spdlog::warn("{}", warning);
  if (report_out != nullptr) *report_out = std::move(report);
  return dataset;
}

std::vector<std::string> read_ids(const fs::path& table_path, const TaskSpec& spec) {
  const Table table = read_table(table_path);
  const Column& column = table.column(spec.id_column, table_path.string());
  std::vector<std::string> ids;
  ids.reserve(column.values.size());
  for (size_t row = 0; row < column.values.size(); ++row) {
    const std::string where = fmt::format("{}: row {}", table_path.string(), row + 1);
    if (is_null(column.values[row])) fail("{}: column '{}' is null", where, spec.id_column);
    ids.push_back(to_display_string(column.values[row]));
    check_id(ids.back(), where);
  }
  return ids;
}

}  // namespace garmentnet
