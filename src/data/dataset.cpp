#include "data/dataset.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <unordered_map>

#include "core/error.h"
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

std::string row_signature(const Table& table, size_t row) {
  std::string signature;
  for (const auto& column : table.columns()) {
    const Value& value = column.values[row];
    signature += std::to_string(value.index()) + ':' + to_display_string(value) + '\x1f';
  }
  return signature;
}

// Reads a softmax label as text whatever the column's type (categories may be numbers).
std::string category_text(const Value& value) { return to_display_string(value); }

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
  const Table table = read_table(table_path);
  const std::string file = table_path.string();
  DatasetReport report;
  report.rows_read = table.num_rows();
  if (table.num_rows() == 0) fail("{}: the table has no rows", file);

  const Column& id_column = table.column(spec.id_column, file);
  LabelledDataset dataset;
  dataset.spec = spec;
  dataset.table_path = table_path;
  dataset.images_dir = images_dir;

  // Resolve each head's columns and classes first, so missing columns fail before any row work.
  struct SoftmaxHead {
    const Column* column;
    std::unordered_map<std::string, int64_t> index;
  };
  std::vector<SoftmaxHead> softmax(spec.heads.size());
  std::vector<std::vector<const Column*>> tag_columns(spec.heads.size());
  for (size_t h = 0; h < spec.heads.size(); ++h) {
    HeadSpec& head = dataset.spec.heads[h];
    if (head.kind == HeadKind::Softmax) {
      softmax[h].column = &table.column(head.column, file);
      if (head.classes.empty()) {
        if (!options.derive_classes) {
          fail("head '{}' lists no classes: give them in the task spec", head.name);
        }
        std::set<std::string> values;
        for (const auto& value : softmax[h].column->values) {
          if (!is_null(value)) values.insert(category_text(value));
        }
        head.classes.assign(values.begin(), values.end());
      }
      for (size_t c = 0; c < head.classes.size(); ++c) {
        softmax[h].index[head.classes[c]] = static_cast<int64_t>(c);
      }
    } else {
      for (const auto& tag : head.classes) {
        const Column& column = table.column(tag, file);
        if (column.type == ColumnType::String) {
          fail("{}: tag column '{}' holds text; it must hold 0/1 integers", file, tag);
        }
        tag_columns[h].push_back(&column);
      }
    }
  }

  std::unordered_map<std::string, std::string> signature_of_id;
  std::vector<std::string> conflicting;
  std::vector<std::string> invalid;
  std::set<size_t> heads_with_unknown_values;  // softmax heads (indices) with unknown values
  for (size_t row = 0; row < table.num_rows(); ++row) {
    const std::string where = fmt::format("{}: row {}", file, row + 1);
    const Value& id_value = id_column.values[row];
    if (is_null(id_value))
      fail("{}: column '{}' is null; every row needs an id", where, spec.id_column);
    const std::string id = to_display_string(id_value);
    check_id(id, where);
    std::string signature = row_signature(table, row);
    auto [seen, inserted] = signature_of_id.try_emplace(id, signature);
    if (!inserted) {
      if (seen->second == signature) {
        ++report.exact_duplicates_dropped;
      } else {
        conflicting.push_back(id);
      }
      continue;
    }

    for (size_t h = 0; h < spec.heads.size(); ++h) {
      const HeadSpec& head = dataset.spec.heads[h];
      auto& labels = dataset.labels[head.name];
      if (head.kind == HeadKind::Softmax) {
        const Value& value = softmax[h].column->values[row];
        if (is_null(value)) {
          report.null_labels.push_back(
              fmt::format("row {}: column '{}' is null", row + 1, head.column));
          labels.push_back(-1);
          continue;
        }
        auto found = softmax[h].index.find(category_text(value));
        if (found == softmax[h].index.end()) {
          invalid.push_back(fmt::format("row {}: column '{}' has unknown value '{}'", row + 1,
                                        head.column, category_text(value)));
          heads_with_unknown_values.insert(h);
          labels.push_back(-1);
        } else {
          labels.push_back(found->second);
        }
      } else {
        for (const Column* column : tag_columns[h]) {
          const Value& value = column->values[row];
          if (is_null(value)) {
            report.null_labels.push_back(
                fmt::format("row {}: column '{}' is null", row + 1, column->name));
            labels.push_back(-1);
            continue;
          }
          const double number = std::holds_alternative<int64_t>(value)
                                    ? static_cast<double>(std::get<int64_t>(value))
                                    : std::get<double>(value);
          if (number != 0.0 && number != 1.0) {
            invalid.push_back(fmt::format("row {}: column '{}' has value {} (tags must be 0 or 1)",
                                          row + 1, column->name, to_display_string(value)));
          }
          labels.push_back(number == 1.0 ? 1 : 0);
        }
      }
    }
    dataset.ids.push_back(id);
    dataset.images.push_back(spec.image_path(images_dir, id));
  }

  if (!conflicting.empty()) {
    std::sort(conflicting.begin(), conflicting.end());
    conflicting.erase(std::unique(conflicting.begin(), conflicting.end()), conflicting.end());
    fail(
        "{}: {} id(s) appear in rows with different values: {}. Fix or remove the conflicting rows",
        file, conflicting.size(), summarize(conflicting));
  }
  if (!invalid.empty()) {
    // The known values of the columns that had unknown ones (not of those only wrong elsewhere).
    std::string known;
    for (const size_t h : heads_with_unknown_values) {
      const HeadSpec& head = dataset.spec.heads[h];
      known += fmt::format(" Known '{}' values: {}.", head.column, fmt::join(head.classes, ", "));
    }
    fail("{}: {} invalid label(s): {}.{}", file, invalid.size(), summarize(invalid), known);
  }
  if (!report.null_labels.empty()) {
    const std::string text =
        fmt::format("{}: {} null label(s), left out of their head's loss: {}", file,
                    report.null_labels.size(), summarize(report.null_labels));
    if (options.strict) fail("{} (strict mode)", text);
    report.warnings.push_back(text);
  }
  if (report.exact_duplicates_dropped > 0) {
    report.warnings.push_back(fmt::format("{}: dropped {} exact duplicate row(s)", file,
                                          report.exact_duplicates_dropped));
  }

  if (options.check_images) {
    std::vector<size_t> keep;
    for (size_t i = 0; i < dataset.size(); ++i) {
      std::error_code error;
      if (fs::is_regular_file(dataset.images[i], error)) {
        keep.push_back(i);
      } else {
        report.missing_images.push_back(dataset.ids[i]);
      }
    }
    if (!report.missing_images.empty()) {
      const std::string text =
          fmt::format("{} of {} image(s) missing in {} (expected e.g. {}): {}",
                      report.missing_images.size(), dataset.size(), images_dir.string(),
                      spec.image_path(images_dir, report.missing_images.front()).string(),
                      summarize(report.missing_images));
      if (options.strict) fail("{} (strict mode)", text);
      report.warnings.push_back(text + "; those rows are skipped");
      dataset = dataset.subset(keep);
    }
  }
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
