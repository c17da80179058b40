#include "core/plot.h"

#include <fcntl.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"

extern char** environ;

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

// A colour-blind-friendly categorical palette (Tableau 10); series cycle through it.
constexpr const char* kPalette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
constexpr int kPaletteSize = static_cast<int>(std::size(kPalette));

// A private folder for the data and script, removed with everything in it.
class ScratchFolder {
 public:
  ScratchFolder() {
    std::string pattern = (fs::temp_directory_path() / "garmentnet-plot-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      fail("cannot create a temporary folder for a chart under {}: {}",
           fs::temp_directory_path().string(), std::strerror(errno));
    }
    path_ = pattern;
  }
  ~ScratchFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// posix_spawn file actions, destroyed on every path.
class SpawnActions {
 public:
  SpawnActions() { ::posix_spawn_file_actions_init(&actions_); }
  ~SpawnActions() { ::posix_spawn_file_actions_destroy(&actions_); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

std::string first_lines(const std::string& text, std::size_t max_lines) {
  std::size_t end = 0;
  for (std::size_t line = 0; line < max_lines && end != std::string::npos; ++line) {
    end = text.find('\n', end == 0 ? 0 : end + 1);
  }
  std::string head = end == std::string::npos ? text : text.substr(0, end);
  while (!head.empty() && (head.back() == '\n' || head.back() == ' ')) head.pop_back();
  return head;
}

// Runs `gnuplot script` with output to `log`; fails with gnuplot's own words if it does not
// finish cleanly within `timeout`.
void run_gnuplot(const fs::path& script, const fs::path& log, std::chrono::seconds timeout) {
  SpawnActions actions;
  ::posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_addopen(actions.get(), STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::posix_spawn_file_actions_adddup2(actions.get(), STDOUT_FILENO, STDERR_FILENO);
  std::string program = "gnuplot";
  std::string script_argument = script.string();
  char* argv[] = {program.data(), script_argument.data(), nullptr};
  pid_t pid = 0;
  const int spawn_error = ::posix_spawnp(&pid, "gnuplot", actions.get(), nullptr, argv, environ);
  if (spawn_error == ENOENT) {
    fail("cannot draw charts: gnuplot is not installed (on Debian: apt-get install gnuplot-nox)");
  }
  if (spawn_error != 0) fail("cannot start gnuplot: {}", std::strerror(spawn_error));

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) fail("waiting for gnuplot failed: {}", std::strerror(errno));
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      fail("gnuplot did not finish a chart within {} s", timeout.count());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string output;
    try {
      output = read_file(log);
    } catch (const InputError&) {
    }
    fail("gnuplot failed to draw a chart (exit status {}): {}",
         WIFEXITED(status) ? WEXITSTATUS(status) : -1, first_lines(output, 8));
  }
}

std::string format_number(double value) { return fmt::format("{:.17g}", value); }

// Builds a script and its data files, then renders it to the target PNG atomically.
class ChartScript {
 public:
  explicit ChartScript(ChartStyle style) : style_(std::move(style)) {
    if (style_.width < 16 || style_.height < 16 || style_.width > 10000 || style_.height > 10000) {
      fail("chart '{}': size {}x{} is out of range (16..10000 pixels)", style_.title, style_.width,
           style_.height);
    }
  }

  // Adds a script line.
  ChartScript& operator<<(std::string_view line) {
    body_ += line;
    body_ += '\n';
    return *this;
  }

  // Writes rows of numbers as a data file and returns its quoted path for the script.
  std::string data_file(const std::vector<std::vector<double>>& rows) {
    const fs::path file = scratch_.path() / fmt::format("data{}.dat", data_files_++);
    std::string content;
    for (const auto& row : rows) {
      for (std::size_t i = 0; i < row.size(); ++i) {
        if (i > 0) content += ' ';
        content += format_number(row[i]);
      }
      content += '\n';
    }
    write_file_atomically(file, content);
    return gnuplot_quote(file.string());
  }

  void render(const fs::path& png) {
    write_atomically(png, [&](const fs::path& temp) {
      const fs::path script = scratch_.path() / "chart.gp";
      write_file_atomically(script, preamble(temp) + body_);
      run_gnuplot(script, scratch_.path() / "gnuplot.log", style_.timeout);
      std::error_code error;
      if (fs::file_size(temp, error) == 0 || error) {
        fail("gnuplot wrote no image for chart '{}'", style_.title);
      }
    });
  }

 private:
  std::string preamble(const fs::path& output) const {
    std::string script = fmt::format(
        "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {{\n"
        "  set terminal pngcairo size {0},{1} noenhanced font 'Sans,10' linewidth 1\n"
        "}} else {{\n"
        "  set terminal png size {0},{1} noenhanced\n"
        "}}\n"
        "set encoding utf8\n"
        "set output {2}\n"
        "set border 3 linecolor rgb '#444444'\n"
        "set tics nomirror textcolor rgb '#222222'\n"
        "set key box linecolor rgb '#bbbbbb' opaque samplen 2.5 spacing 1.2\n",
        style_.width, style_.height, gnuplot_quote(output.string()));
    for (int i = 0; i < kPaletteSize; ++i) {
      script += fmt::format("set linetype {} linecolor rgb '{}' linewidth 2 pointtype 7\n", i + 1,
                            kPalette[i]);
    }
    script += fmt::format("set linetype cycle {}\n", kPaletteSize);
    if (!style_.title.empty()) {
      script += fmt::format("set title {} font ',13'\n", gnuplot_quote(style_.title));
    }
    if (!style_.x_label.empty())
      script += fmt::format("set xlabel {}\n", gnuplot_quote(style_.x_label));
    if (!style_.y_label.empty())
      script += fmt::format("set ylabel {}\n", gnuplot_quote(style_.y_label));
    return script;
  }

  ChartStyle style_;
  ScratchFolder scratch_;
  std::string body_;
  int data_files_ = 0;
};

// About how many pixels a character of 10 pt text takes.
constexpr double kCharacterPixels = 7.0;

std::size_t longest_label(const std::vector<std::string>& labels) {
  std::size_t longest = 0;
  for (const std::string& label : labels) longest = std::max(longest, label.size());
  return longest;
}

// `set xtics ('a' 0, 'b' 1, ...)`; x labels are rotated when wider than their `slot_pixels`.
std::string category_tics(std::string_view axis, const std::vector<std::string>& labels,
                          double slot_pixels) {
  std::string tics = fmt::format("set {}tics (", axis);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) tics += ", ";
    tics += fmt::format("{} {}", gnuplot_quote(labels[i]), i);
  }
  tics += ")";
  const bool crowded =
      axis == "x" &&
      static_cast<double>(longest_label(labels)) * kCharacterPixels > 0.9 * slot_pixels;
  if (crowded) tics += " rotate by 30 right";
  return tics;
}

std::string color_of(int slot) { return kPalette[slot % kPaletteSize]; }

bool all_finite(const std::vector<double>& values) {
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

}  // namespace

std::string gnuplot_quote(std::string_view text) {
  std::string quoted = "'";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\'') {
      quoted += "''";
    } else if (byte < 0x20 || byte == 0x7f) {
      quoted += ' ';
    } else {
      quoted += c;
    }
  }
  quoted += '\'';
  return quoted;
}

void write_line_chart(const LineChart& chart, const fs::path& png) {
  ChartScript script(chart.style);
  script << "set grid ytics linecolor rgb '#dddddd' linewidth 1 dashtype 1"
         << (chart.key_below ? "set key below" : "set key top right");
  if (std::all_of(chart.series.begin(), chart.series.end(),
                  [](const LineSeries& series) { return series.name.empty(); }))
    script << "unset key";
  if (chart.log_y) script << "set logscale y";
  if (chart.log_x) script << "set logscale x";
  std::vector<std::string> plots;
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    const LineSeries& series = chart.series[s];
    if (series.x.size() != series.y.size()) {
      fail("line chart '{}': series '{}' has {} x values but {} y values", chart.style.title,
           series.name, series.x.size(), series.y.size());
    }
    std::vector<std::vector<double>> rows;
    for (std::size_t i = 0; i < series.x.size(); ++i) {
      const bool plottable = std::isfinite(series.x[i]) && std::isfinite(series.y[i]) &&
                             (!chart.log_y || series.y[i] > 0) && (!chart.log_x || series.x[i] > 0);
      if (plottable) rows.push_back({series.x[i], series.y[i]});
    }
    if (rows.empty()) continue;
    const char* style = series.points_only  ? "points pointtype 7 pointsize 1.2"
                        : rows.size() <= 30 ? "linespoints pointsize 0.7"
                                            : "lines";
    plots.push_back(fmt::format("{} using 1:2 with {} linecolor rgb '{}' dashtype {} title {}",
                                script.data_file(rows), style,
                                color_of(series.color >= 0 ? series.color : static_cast<int>(s)),
                                series.dashed ? 2 : 1, gnuplot_quote(series.name)));
  }
  if (plots.empty()) fail("line chart '{}': there is no data to plot", chart.style.title);
  script << "plot " + fmt::format("{}", fmt::join(plots, ", \\\n     "));
  script.render(png);
}

void write_bar_chart(const BarChart& chart, const fs::path& png) {
  const std::size_t categories = chart.categories.size();
  const std::size_t series_count = chart.values.size();
  if (categories == 0 || series_count == 0) {
    fail("bar chart '{}': there is no data to plot", chart.style.title);
  }
  if (!chart.series_names.empty() && chart.series_names.size() != series_count) {
    fail("bar chart '{}': {} series names for {} series", chart.style.title,
         chart.series_names.size(), series_count);
  }
  double lowest = 0;
  for (const auto& values : chart.values) {
    if (values.size() != categories || !all_finite(values)) {
      fail("bar chart '{}': each series needs {} finite values, one per category",
           chart.style.title, categories);
    }
    lowest = std::min(lowest, *std::min_element(values.begin(), values.end()));
  }
  ChartScript script(chart.style);
  // Bars of one category share 80% of its slot; the rest separates categories.
  const double bar_width = 0.8 / static_cast<double>(series_count);
  script << "set grid ytics linecolor rgb '#dddddd' linewidth 1 dashtype 1"
         << "set style fill solid 0.9 noborder"
         << fmt::format("set boxwidth {} absolute", bar_width)
         << fmt::format("set xrange [-0.6:{}]", static_cast<double>(categories) - 0.4)
         << category_tics("x", chart.categories,
                          0.85 * chart.style.width / static_cast<double>(categories))
         << "set xtics scale 0"
         << (lowest < 0 ? "set offsets 0, 0, graph 0.1, graph 0.1"
                        : "set yrange [0:*]\nset offsets 0, 0, graph 0.1, 0")
         << (series_count > 1 && !chart.series_names.empty() ? "set key top right" : "unset key");
  std::vector<std::string> plots;
  for (std::size_t s = 0; s < series_count; ++s) {
    std::vector<std::vector<double>> rows;
    for (std::size_t c = 0; c < categories; ++c) {
      const double x = static_cast<double>(c) - 0.4 + bar_width * (static_cast<double>(s) + 0.5);
      rows.push_back({x, chart.values[s][c]});
    }
    const std::string data = script.data_file(rows);
    const std::string title =
        chart.series_names.empty() ? "notitle" : "title " + gnuplot_quote(chart.series_names[s]);
    plots.push_back(fmt::format("{} using 1:2 with boxes linecolor rgb '{}' {}", data,
                                color_of(static_cast<int>(s)), title));
    if (chart.show_values) {
      plots.push_back(fmt::format(
          "{} using 1:2:(sprintf('%.{}f', $2)) with labels offset 0, 0.8 font ',{}' textcolor rgb "
          "'#333333' notitle",
          data, std::clamp(chart.value_decimals, 0, 10), series_count * categories > 24 ? 7 : 9));
    }
  }
  script << "plot " + fmt::format("{}", fmt::join(plots, ", \\\n     "));
  script.render(png);
}

void write_heatmap(const Heatmap& chart, const fs::path& png) {
  const std::size_t rows = chart.row_labels.size();
  const std::size_t columns = chart.column_labels.size();
  if (rows == 0 || columns == 0) fail("heatmap '{}': there is no data to plot", chart.style.title);
  if (chart.values.size() != rows) {
    fail("heatmap '{}': {} rows of values for {} row labels", chart.style.title,
         chart.values.size(), rows);
  }
  double low = INFINITY, high = -INFINITY;
  for (const auto& row : chart.values) {
    if (row.size() != columns || !all_finite(row)) {
      fail("heatmap '{}': each row needs {} finite values, one per column label", chart.style.title,
           columns);
    }
    low = std::min(low, *std::min_element(row.begin(), row.end()));
    high = std::max(high, *std::max_element(row.begin(), row.end()));
  }
  low = std::min(low, 0.0);  // counts and rates read best on a scale from zero
  if (high <= low) high = low + 1;
  ChartScript script(chart.style);
  // Numbers in dark cells are written in white so that they stay readable.
  std::vector<std::vector<double>> cells;
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < columns; ++c) {
      const double value = chart.values[r][c];
      const double shade = (value - low) / (high - low);
      cells.push_back({static_cast<double>(c), static_cast<double>(r), value,
                       shade > 0.55 ? double{0xffffff} : double{0x222222}});
    }
  }
  const std::size_t cell_count = std::max(rows, columns);
  // Cells are square: their size is set by the room left beside the row labels and colour box,
  // and under the title and column labels.
  const double room_x = chart.style.width - 140.0 -
                        kCharacterPixels * static_cast<double>(longest_label(chart.row_labels));
  const double room_y = chart.style.height - 120.0;
  const double cell_pixels =
      std::min(room_x / static_cast<double>(columns), room_y / static_cast<double>(rows));
  script << "set palette defined (0 '#f7fbff', 0.35 '#c6dbef', 0.7 '#4292c6', 1 '#08306b')"
         << fmt::format("set cbrange [{}:{}]", format_number(low), format_number(high))
         << "set border 0"
         << "unset key"
         << "set size ratio -1"
         << fmt::format("set xrange [-0.5:{}]", static_cast<double>(columns) - 0.5)
         << fmt::format("set yrange [{}:-0.5]", static_cast<double>(rows) - 0.5)
         << category_tics("x", chart.column_labels, cell_pixels)
         << category_tics("y", chart.row_labels, cell_pixels) << "set tics scale 0"
         << fmt::format(
                "plot {0} using 1:2:3 with image, \\\n"
                "     {0} using 1:2:(sprintf('%.{1}f', $3)):4 with labels textcolor rgb variable "
                "font ',{2}'",
                script.data_file(cells), std::clamp(chart.value_decimals, 0, 10),
                cell_count > 12 ? 7 : 10);
  script.render(png);
}

void write_precision_recall_chart(const PrecisionRecallChart& chart, const fs::path& png) {
  ChartStyle style = chart.style;
  if (style.x_label.empty()) style.x_label = "recall";
  if (style.y_label.empty()) style.y_label = "precision";
  ChartScript script(std::move(style));
  script << "set grid xtics ytics linecolor rgb '#dddddd' linewidth 1 dashtype 1"
         << "set xrange [0:1]"
         << "set yrange [0:1.05]"
         << "set key bottom left";
  std::vector<std::string> plots;
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    const PrecisionRecallSeries& series = chart.series[s];
    if (series.recall.size() != series.precision.size()) {
      fail("precision-recall chart '{}': series '{}' has {} recall but {} precision values",
           chart.style.title, series.name, series.recall.size(), series.precision.size());
    }
    if (series.recall.empty()) continue;
    // Starting at recall 0 with the first precision and stepping up to each point makes the area
    // under the drawn curve equal to the average precision.
    std::vector<std::vector<double>> rows = {{0.0, series.precision.front()}};
    for (std::size_t i = 0; i < series.recall.size(); ++i) {
      rows.push_back({series.recall[i], series.precision[i]});
    }
    plots.push_back(fmt::format("{} using 1:2 with fsteps linecolor rgb '{}' title {}",
                                script.data_file(rows), color_of(static_cast<int>(s)),
                                gnuplot_quote(series.name)));
  }
  if (plots.empty())
    fail("precision-recall chart '{}': there is no data to plot", chart.style.title);
  script << "plot " + fmt::format("{}", fmt::join(plots, ", \\\n     "));
  script.render(png);
}

void write_histogram(const Histogram& chart, const fs::path& png) {
  if (chart.bins < 1) fail("histogram '{}': needs at least one bin", chart.style.title);
  double low = INFINITY, high = -INFINITY;
  for (const HistogramSeries& series : chart.series) {
    for (const double value : series.values) {
      if (!std::isfinite(value)) continue;
      low = std::min(low, value);
      high = std::max(high, value);
    }
  }
  if (!std::isfinite(low)) fail("histogram '{}': there is no data to plot", chart.style.title);
  if (high == low) {
    low -= 0.5;
    high += 0.5;
  }
  const double bin_width = (high - low) / chart.bins;
  ChartStyle style = chart.style;
  if (style.y_label.empty()) style.y_label = "count";
  ChartScript script(std::move(style));
  const bool overlaid = chart.series.size() > 1;
  script << "set grid ytics linecolor rgb '#dddddd' linewidth 1 dashtype 1"
         << (overlaid ? "set style fill transparent solid 0.5 noborder"
                      : "set style fill solid 0.9 border linecolor rgb '#ffffff'")
         << fmt::format("set boxwidth {} absolute", format_number(bin_width))
         << fmt::format("set xrange [{}:{}]", format_number(low), format_number(high))
         << "set yrange [0:*]"
         << "set offsets 0, 0, graph 0.05, 0" << (overlaid ? "set key top right" : "unset key");
  std::vector<std::string> plots;
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    std::vector<double> counts(static_cast<std::size_t>(chart.bins), 0.0);
    for (const double value : chart.series[s].values) {
      if (!std::isfinite(value)) continue;
      const auto bin = std::min(static_cast<std::size_t>((value - low) / bin_width),
                                static_cast<std::size_t>(chart.bins - 1));
      counts[bin] += 1;
    }
    std::vector<std::vector<double>> rows;
    for (int b = 0; b < chart.bins; ++b) {
      rows.push_back({low + bin_width * (b + 0.5), counts[static_cast<std::size_t>(b)]});
    }
    plots.push_back(fmt::format("{} using 1:2 with boxes linecolor rgb '{}' title {}",
                                script.data_file(rows), color_of(static_cast<int>(s)),
                                gnuplot_quote(chart.series[s].name)));
  }
  script << "plot " + fmt::format("{}", fmt::join(plots, ", \\\n     "));
  script.render(png);
}

}  // namespace garmentnet
