// PNG charts for the reports (explore, train, evaluate), drawn by gnuplot. Each function writes
// its data and script to a temporary folder, runs gnuplot with a time limit and writes the PNG
// atomically. Labels are passed to gnuplot as quoted strings with enhanced text off, so spaces,
// underscores and quotes in class or tag names show as they are.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace garmentnet {

// What every chart shares.
struct ChartStyle {
  std::string title;    // shown above the chart; empty for none
  std::string x_label;  // axis captions; empty for none
  std::string y_label;
  int width = 800;  // image size in pixels
  int height = 500;
  std::chrono::seconds timeout{30};  // gnuplot is stopped after this long
};

// One named line: y over x (same length). Charts whose series have no names have no legend.
struct LineSeries {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
  bool dashed = false;       // e.g. validation next to a solid training curve
  int color = -1;            // palette slot; -1: the series' position. Give pairs the same slot.
  bool points_only = false;  // a scatter plot: the points, no line between them
};

struct LineChart {
  ChartStyle style;
  std::vector<LineSeries> series;
  bool log_y = false;      // logarithmic y axis (losses); values must then be > 0
  bool log_x = false;      // logarithmic x axis (learning rates); values must then be > 0
  bool key_below = false;  // the legend under the chart instead of in its top right corner
};

// Bars for each category; several series are drawn side by side within a category.
struct BarChart {
  ChartStyle style;
  std::vector<std::string> categories;
  std::vector<std::string> series_names;    // one per series; may be empty for a single series
  std::vector<std::vector<double>> values;  // [series][category]
  bool show_values = true;                  // print each value above its bar
  int value_decimals = 0;                   // decimals of the printed values
};

// A matrix drawn as coloured cells with each value written in its cell; row 0 at the top.
struct Heatmap {
  ChartStyle style;
  std::vector<std::string> row_labels;
  std::vector<std::string> column_labels;
  std::vector<std::vector<double>> values;  // [row][column]
  int value_decimals = 0;                   // decimals of the numbers in the cells
};

// Precision-recall curves: one series per tag, points in order of increasing recall.
struct PrecisionRecallSeries {
  std::string name;  // e.g. "floral (AP 0.91)"
  std::vector<double> recall;
  std::vector<double> precision;
};

struct PrecisionRecallChart {
  ChartStyle style;  // axis captions default to "recall" and "precision" when empty
  std::vector<PrecisionRecallSeries> series;
};

// Distribution of values, one histogram per named series on shared bins.
struct HistogramSeries {
  std::string name;
  std::vector<double> values;
};

struct Histogram {
  ChartStyle style;  // the y caption defaults to "count" when empty
  std::vector<HistogramSeries> series;
  int bins = 20;  // equal-width bins spanning all values of all series
};

// Each writes a PNG to `png`. A missing gnuplot, a failing gnuplot (its stderr is in the message),
// a timeout or inconsistent data is an InputError; the target is then left untouched.
void write_line_chart(const LineChart& chart, const std::filesystem::path& png);
void write_bar_chart(const BarChart& chart, const std::filesystem::path& png);
void write_heatmap(const Heatmap& chart, const std::filesystem::path& png);
void write_precision_recall_chart(const PrecisionRecallChart& chart,
                                  const std::filesystem::path& png);
void write_histogram(const Histogram& chart, const std::filesystem::path& png);

// `text` as a gnuplot single-quoted string literal: quotes doubled, control characters blanked.
std::string gnuplot_quote(std::string_view text);

}  // namespace garmentnet
