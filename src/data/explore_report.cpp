#include "data/explore_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/html_report.h"
#include "core/plot.h"
#include "core/text_table.h"
#include "data/image_grid.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

constexpr size_t kListedOnTerminal = 5;      // ids named on the terminal before "and N more"
constexpr size_t kListedInReport = 100;      // ids named in the report before "and N more"
constexpr size_t kTopValuesOnTerminal = 10;  // values of other columns printed on the terminal
constexpr size_t kSizesInChart = 15;         // most frequent image sizes drawn as bars

std::string share(size_t count, size_t total) {
  return total == 0 ? "-"
                    : fmt::format("{:.1f}%",
                                  100.0 * static_cast<double>(count) / static_cast<double>(total));
}

double percent(size_t count, size_t total) {
  return total == 0 ? 0.0 : 100.0 * static_cast<double>(count) / static_cast<double>(total);
}

std::string id_list(const std::vector<std::string>& ids, size_t shown) {
  if (ids.empty()) return "none";
  std::string text = fmt::format(
      "{}", fmt::join(ids.begin(),
                      ids.begin() + static_cast<ptrdiff_t>(std::min(ids.size(), shown)), ", "));
  if (ids.size() > shown) text += fmt::format(" and {} more", ids.size() - shown);
  return text;
}

std::string count_with_ids(const std::vector<std::string>& ids, size_t shown) {
  return ids.empty() ? "0" : fmt::format("{} ({})", ids.size(), id_list(ids, shown));
}

std::string bytes_text(double bytes) {
  if (bytes >= 1024.0 * 1024.0) return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024.0));
  if (bytes >= 1024.0) return fmt::format("{:.1f} KiB", bytes / 1024.0);
  return fmt::format("{:.0f} B", bytes);
}

// What `train` would do with the table; `with_warnings` adds the loader's warnings (the terminal
// has already shown them as log lines).
std::string training_verdict(const TableSummary& s, bool with_warnings) {
  if (!s.loads_for_training) return "refused: " + s.loader_message;
  std::string text = fmt::format("accepted, {} usable examples", s.training_examples);
  if (with_warnings && !s.loader_message.empty()) text += " (" + s.loader_message + ")";
  return text;
}

// A safe file name part: letters, digits, '-' and '_' kept, everything else '_'.
std::string file_stem(std::string_view name) {
  std::string stem;
  for (char c : name) stem += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_';
  return stem;
}

std::vector<std::string> names(const std::vector<NamedCount>& counts) {
  std::vector<std::string> out;
  for (const auto& entry : counts) out.push_back(entry.name);
  return out;
}

std::vector<double> values(const std::vector<NamedCount>& counts) {
  std::vector<double> out;
  for (const auto& entry : counts) out.push_back(static_cast<double>(entry.count));
  return out;
}

std::vector<std::vector<double>> to_double(const std::vector<std::vector<size_t>>& matrix) {
  std::vector<std::vector<double>> out;
  for (const auto& row : matrix) out.emplace_back(row.begin(), row.end());
  return out;
}

// `listed`: ids named per list; `for_terminal`: leave out what the log lines already said.
std::vector<std::pair<std::string, std::string>> overview_rows(const ExploreResult& r,
                                                               size_t listed, bool for_terminal) {
  const TableSummary& s = r.train;
  std::vector<std::pair<std::string, std::string>> rows = {
      {"rows read", std::to_string(s.rows_read)},
      {"exact duplicate rows", std::to_string(s.exact_duplicate_rows)},
      {"rows after de-duplication", std::to_string(s.rows_after_deduplication)},
      {"conflicting ids", count_with_ids(s.conflicting_ids, listed)},
      {"missing images", count_with_ids(s.missing_images, listed)},
  };
  if (s.null_ids > 0) rows.emplace_back("rows without id", std::to_string(s.null_ids));
  if (s.null_categories > 0) {
    rows.emplace_back("null " + s.category_column, std::to_string(s.null_categories));
  }
  if (!s.unknown_categories.empty()) {
    std::vector<std::string> unknown;
    for (const auto& entry : s.unknown_categories) {
      unknown.push_back(fmt::format("{} ({})", entry.name, entry.count));
    }
    rows.emplace_back("unknown " + s.category_column, id_list(unknown, listed));
  }
  if (s.invalid_tag_rows > 0) {
    rows.emplace_back("rows with a null or non-0/1 tag", std::to_string(s.invalid_tag_rows));
  }
  if (!s.images.unreadable.empty()) {
    rows.emplace_back("unreadable images", count_with_ids(s.images.unreadable, listed));
  }
  rows.emplace_back("for training", training_verdict(s, !for_terminal));
  if (r.test) {
    rows.emplace_back(
        "test_labels.parquet",
        fmt::format("{} rows, {} after de-duplication, {} missing images", r.test->rows_read,
                    r.test->rows_after_deduplication, r.test->missing_images.size()));
  }
  if (r.test_ids) {
    rows.emplace_back("test.parquet",
                      fmt::format("{} ids, missing images: {}", *r.test_ids,
                                  count_with_ids(r.test_ids_missing_images, listed)));
  }
  if (r.test || r.test_ids) {
    rows.emplace_back("ids in both training and test",
                      count_with_ids(r.ids_in_train_and_test, listed));
  }
  return rows;
}

// Category rows: name, count, share, and the test split's count and share when present.
std::vector<std::vector<std::string>> category_rows(const ExploreResult& r) {
  std::vector<std::vector<std::string>> rows;
  for (size_t c = 0; c < r.train.categories.size(); ++c) {
    const auto& category = r.train.categories[c];
    std::vector<std::string> row = {category.name, std::to_string(category.count),
                                    share(category.count, r.train.rows_after_deduplication)};
    if (r.test && c < r.test->categories.size()) {
      row.push_back(std::to_string(r.test->categories[c].count));
      row.push_back(share(r.test->categories[c].count, r.test->rows_after_deduplication));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::string> category_headers(const ExploreResult& r) {
  std::vector<std::string> headers = {r.train.category_column, "rows", "share"};
  if (r.test) {
    headers.push_back("test rows");
    headers.push_back("test share");
  }
  return headers;
}

// Tag rows: name, count, share, then how often it occurs with each tag.
std::vector<std::vector<std::string>> tag_rows(const TableSummary& s) {
  std::vector<std::vector<std::string>> rows;
  for (size_t a = 0; a < s.tags.size(); ++a) {
    std::vector<std::string> row = {s.tags[a], std::to_string(s.tag_counts[a]),
                                    share(s.tag_counts[a], s.rows_after_deduplication)};
    for (size_t b = 0; b < s.tags.size(); ++b) {
      row.push_back(std::to_string(s.tag_cooccurrence[a][b]));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::string> tag_headers(const TableSummary& s) {
  std::vector<std::string> headers = {"tag", "rows", "share"};
  for (const auto& tag : s.tags) headers.push_back("with " + tag);
  return headers;
}

std::vector<std::vector<std::string>> tags_per_row_rows(const TableSummary& s) {
  std::vector<std::vector<std::string>> rows;
  for (size_t k = 0; k < s.tags_per_row.size(); ++k) {
    rows.push_back({std::to_string(k), std::to_string(s.tags_per_row[k]),
                    share(s.tags_per_row[k], s.rows_after_deduplication)});
  }
  return rows;
}

std::vector<std::vector<std::string>> category_tag_rows(const TableSummary& s) {
  std::vector<std::vector<std::string>> rows;
  for (size_t c = 0; c < s.categories.size(); ++c) {
    std::vector<std::string> row = {s.categories[c].name};
    for (size_t t = 0; t < s.tags.size(); ++t) {
      row.push_back(fmt::format("{} ({})", s.category_tags[c][t],
                                share(s.category_tags[c][t], s.categories[c].count)));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::vector<std::string>> distribution_rows(const ValueDistribution& distribution,
                                                        size_t total, size_t shown) {
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < std::min(shown, distribution.values.size()); ++i) {
    const auto& value = distribution.values[i];
    rows.push_back({value.name, std::to_string(value.count), share(value.count, total)});
  }
  if (distribution.values.size() > shown) {
    rows.push_back({fmt::format("({} more values)", distribution.values.size() - shown)});
  }
  return rows;
}

std::vector<std::pair<std::string, std::string>> image_rows(const ImageStats& im) {
  std::vector<std::string> sizes;
  for (size_t i = 0; i < std::min<size_t>(5, im.sizes.size()); ++i) {
    sizes.push_back(fmt::format("{} ({})", im.sizes[i].name, im.sizes[i].count));
  }
  if (im.sizes.size() > 5) sizes.push_back(fmt::format("{} more sizes", im.sizes.size() - 5));
  return {
      {"images read", std::to_string(im.images_read)},
      {"sizes (width x height)", sizes.empty() ? "-" : fmt::format("{}", fmt::join(sizes, ", "))},
      {"file size", im.images_read == 0
                        ? "-"
                        : fmt::format("min {}, median {}, mean {}, max {}, total {}",
                                      bytes_text(static_cast<double>(im.file_bytes_min)),
                                      bytes_text(static_cast<double>(im.file_bytes_median)),
                                      bytes_text(im.file_bytes_mean),
                                      bytes_text(static_cast<double>(im.file_bytes_max)),
                                      bytes_text(static_cast<double>(im.file_bytes_total)))},
  };
}

std::string key_value_text(const std::vector<std::pair<std::string, std::string>>& rows) {
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  std::string text;
  for (const auto& [key, value] : rows) text += fmt::format("{:<{}}  {}\n", key, width, value);
  return text;
}

ChartStyle style(std::string title, std::string x_label, std::string y_label, int width = 800,
                 int height = 450) {
  ChartStyle chart_style;
  chart_style.title = std::move(title);
  chart_style.x_label = std::move(x_label);
  chart_style.y_label = std::move(y_label);
  chart_style.width = width;
  chart_style.height = height;
  return chart_style;
}

// Draws a chart into out_dir/plots/<stem>.png and adds it to the report.
class ChartWriter {
 public:
  ChartWriter(const fs::path& out_dir, HtmlReport& report) : out_dir_(out_dir), report_(report) {}

  template <typename Chart, typename Write>
  void add(const std::string& stem, const Chart& chart, Write write,
           std::string_view caption = {}) {
    const fs::path relative = fs::path("plots") / (stem + ".png");
    write(chart, out_dir_ / relative);
    report_.image(relative, caption);
  }

 private:
  fs::path out_dir_;
  HtmlReport& report_;
};

void add_sample_grids(const std::vector<SampleGroup>& groups, const std::string& kind,
                      const fs::path& out_dir, HtmlReport& report) {
  for (size_t g = 0; g < groups.size(); ++g) {
    const SampleGroup& group = groups[g];
    report.subsection(fmt::format("{} {}", kind, group.name));
    if (group.samples.empty()) {
      report.paragraph("No image of this " + kind + " is available.");
      continue;
    }
    std::vector<GridTile> tiles;
    for (const auto& sample : group.samples) tiles.push_back({sample.image, sample.caption});
    const fs::path relative =
        fs::path("samples") / fmt::format("{}_{}_{}.png", kind, g, file_stem(group.name));
    write_png(compose_image_grid(tiles), out_dir / relative);
    report.image(relative);
  }
}

}  // namespace

std::string explore_summary_text(const ExploreResult& r) {
  const TableSummary& s = r.train;
  std::string text =
      fmt::format("Dataset {} (images in {})\n\n", r.data_dir.string(), r.images_dir.string());
  text += key_value_text(overview_rows(r, kListedOnTerminal, true));
  if (!s.categories.empty()) {
    text += "\n" + format_text_table(category_headers(r), category_rows(r));
  }
  if (!s.tags.empty()) {
    text += "\n" + format_text_table(tag_headers(s), tag_rows(s));
    text += "\n" + format_text_table({"tags per image", "rows", "share"}, tags_per_row_rows(s));
    if (!s.categories.empty()) {
      std::vector<std::string> headers = {s.category_column};
      headers.insert(headers.end(), s.tags.begin(), s.tags.end());
      text += "\n" + format_text_table(headers, category_tag_rows(s));
    }
  }
  for (const auto& distribution : s.other_columns) {
    text += "\n" + format_text_table({distribution.column, "rows", "share"},
                                     distribution_rows(distribution, s.rows_after_deduplication,
                                                       kTopValuesOnTerminal));
  }
  text += "\n" + key_value_text(image_rows(s.images));
  return text;
}

namespace {

// The category counts, with the shares of training and test side by side when there is a test set.
void add_category_section(const ExploreResult& r, HtmlReport& report, ChartWriter& charts) {
  const TableSummary& s = r.train;
  if (s.categories.empty()) return;
  report.section("Categories (" + s.category_column + ")");
  BarChart counts;
  counts.style = style("Rows per category", "", "rows");
  counts.categories = names(s.categories);
  counts.values = {values(s.categories)};
  charts.add("categories", counts, write_bar_chart);
  if (r.test) {
    BarChart shares;
    shares.style = style("Share of each category: training vs test", "", "% of rows");
    shares.categories = names(s.categories);
    shares.series_names = {"data.parquet", "test_labels.parquet"};
    shares.values.resize(2);
    for (size_t c = 0; c < s.categories.size(); ++c) {
      shares.values[0].push_back(percent(s.categories[c].count, s.rows_after_deduplication));
      shares.values[1].push_back(
          c < r.test->categories.size()
              ? percent(r.test->categories[c].count, r.test->rows_after_deduplication)
              : 0.0);
    }
    shares.value_decimals = 1;
    charts.add("categories_train_vs_test", shares, write_bar_chart);
  }
  report.table(category_headers(r), category_rows(r));
}

// Tag counts (shares against the test set when there is one), tags per image, co-occurrence and
// tags by category.
void add_tag_section(const ExploreResult& r, HtmlReport& report, ChartWriter& charts) {
  const TableSummary& s = r.train;
  if (s.tags.empty()) return;
  report.section("Tags");
  BarChart counts;
  counts.style = style("Rows per tag", "", "rows");
  counts.categories = s.tags;
  counts.values = {std::vector<double>(s.tag_counts.begin(), s.tag_counts.end())};
  if (r.test) {
    counts.style.title = "Share of rows with each tag: training vs test";
    counts.style.y_label = "% of rows";
    counts.series_names = {"data.parquet", "test_labels.parquet"};
    counts.values.assign(2, {});
    for (size_t t = 0; t < s.tags.size(); ++t) {
      counts.values[0].push_back(percent(s.tag_counts[t], s.rows_after_deduplication));
      counts.values[1].push_back(
          t < r.test->tag_counts.size()
              ? percent(r.test->tag_counts[t], r.test->rows_after_deduplication)
              : 0.0);
    }
    counts.value_decimals = 1;
  }
  charts.add("tags", counts, write_bar_chart);
  report.table(tag_headers(s), tag_rows(s));

  report.subsection("Tags per image");
  BarChart per_row;
  per_row.style = style("Number of tags per image", "tags set", "rows", 600, 400);
  for (size_t k = 0; k < s.tags_per_row.size(); ++k) {
    per_row.categories.push_back(std::to_string(k));
  }
  per_row.values = {std::vector<double>(s.tags_per_row.begin(), s.tags_per_row.end())};
  charts.add("tags_per_image", per_row, write_bar_chart);

  report.subsection("Tag co-occurrence");
  Heatmap cooccurrence;
  cooccurrence.style = style("Rows with both tags (diagonal: rows with the tag)", "", "", 600, 500);
  cooccurrence.row_labels = s.tags;
  cooccurrence.column_labels = s.tags;
  cooccurrence.values = to_double(s.tag_cooccurrence);
  charts.add("tag_cooccurrence", cooccurrence, write_heatmap);

  if (!s.categories.empty()) {
    report.subsection("Tags by category");
    Heatmap by_category;
    by_category.style = style("Rows of each category with each tag", "", "", 700, 500);
    by_category.row_labels = names(s.categories);
    by_category.column_labels = s.tags;
    by_category.values = to_double(s.category_tags);
    charts.add("category_tags", by_category, write_heatmap);
    std::vector<std::string> headers = {s.category_column};
    for (const auto& tag : s.tags) headers.push_back(tag + " (share of category)");
    report.table(headers, category_tag_rows(s));
  }
}

// One section per other text column with few values (e.g. colour).
void add_column_sections(const TableSummary& s, HtmlReport& report, ChartWriter& charts) {
  for (const auto& distribution : s.other_columns) {
    report.section("Column " + distribution.column);
    BarChart chart;
    chart.style = style("Rows per value of " + distribution.column, "", "rows",
                        std::max(800, 40 * static_cast<int>(distribution.values.size())), 450);
    chart.categories = names(distribution.values);
    chart.values = {values(distribution.values)};
    charts.add("column_" + file_stem(distribution.column), chart, write_bar_chart);
  }
}

// Image files: the figures, and size charts when sizes differ.
void add_image_section(const TableSummary& s, HtmlReport& report, ChartWriter& charts) {
  report.section("Images");
  report.key_values(image_rows(s.images));
  // With one size the table says it all; bars and histograms only when sizes differ.
  if (s.images.sizes.size() > 1) {
    std::vector<NamedCount> top(
        s.images.sizes.begin(),
        s.images.sizes.begin() +
            static_cast<ptrdiff_t>(std::min(kSizesInChart, s.images.sizes.size())));
    BarChart sizes;
    sizes.style = style("Most frequent image sizes (width x height)", "", "images");
    sizes.categories = names(top);
    sizes.values = {values(top)};
    charts.add("image_sizes", sizes, write_bar_chart);
    Histogram histogram;
    histogram.style = style("Image width and height", "pixels", "images");
    histogram.series = {
        {"width", std::vector<double>(s.images.widths.begin(), s.images.widths.end())},
        {"height", std::vector<double>(s.images.heights.begin(), s.images.heights.end())}};
    charts.add("image_dimensions", histogram, write_histogram);
  }
}

}  // namespace

void write_explore_report(const ExploreResult& r, const fs::path& out_dir) {
  const TableSummary& s = r.train;
  HtmlReport report("garmentnet explore: " + r.data_dir.string());
  ChartWriter charts(out_dir, report);

  report.section("Overview");
  report.paragraph(fmt::format(
      "Dataset folder {}, images in {}. Every count below is over the rows of data.parquet left "
      "after removing exact duplicate rows.",
      r.data_dir.string(), r.images_dir.string()));
  report.key_values(overview_rows(r, kListedInReport, false));

  add_category_section(r, report, charts);
  add_tag_section(r, report, charts);
  add_column_sections(s, report, charts);
  add_image_section(s, report, charts);

  if (!r.category_samples.empty()) {
    report.section("Sample images by category");
    report.paragraph(
        "Randomly chosen images (the choice follows --seed); under each: category, tags, colour.");
    add_sample_grids(r.category_samples, "category", out_dir, report);
  }
  if (!r.tag_samples.empty()) {
    report.section("Sample images by tag");
    add_sample_grids(r.tag_samples, "tag", out_dir, report);
  }

  write_file_atomically(out_dir / "explore.json", r.to_json().dump(2) + "\n");
  report.write(out_dir / "report.html");
}

}  // namespace garmentnet
