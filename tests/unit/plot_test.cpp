#include "core/plot.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "test_support.h"

namespace garmentnet {
namespace {

// Labels that would break a naively quoted gnuplot script or render as subscripts.
const std::vector<std::string> kAwkwardLabels = {"polka dot", "CASUAL_DRESSES", "it's \"quoted\"",
                                                 "back`tick` @macro"};

void expect_png(const std::filesystem::path& file) {
  const std::string content = read_file(file);
  ASSERT_GE(content.size(), 8u);
  EXPECT_EQ(content.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // A blank 800x500 PNG is about 2 kB; a drawn chart with text and colours is well above.
  EXPECT_GT(content.size(), 8000u) << file;
}

ChartStyle style(std::string title) {
  ChartStyle result;
  result.title = std::move(title);
  result.x_label = "x_axis label";
  result.y_label = "y 'label'";
  return result;
}

TEST(Plot, LineChart) {
  testing::TempDir dir;
  LineChart chart{style("loss per_head"), {}};
  for (std::size_t s = 0; s < kAwkwardLabels.size(); ++s) {
    LineSeries series{kAwkwardLabels[s], {}, {}, s % 2 == 1};
    for (int epoch = 1; epoch <= 20; ++epoch) {
      series.x.push_back(epoch);
      series.y.push_back(1.0 / (epoch + static_cast<double>(s)));
    }
    chart.series.push_back(series);
  }
  chart.log_y = true;
  write_line_chart(chart, dir / "line.png");
  expect_png(dir / "line.png");
}

TEST(Plot, GroupedBarChart) {
  testing::TempDir dir;
  BarChart chart{style("grouped bars"),
                 kAwkwardLabels,
                 {"train", "validation_set"},
                 {{10, 20, 30, 40}, {5, 15, 25, 35}}};
  write_bar_chart(chart, dir / "bars.png");
  expect_png(dir / "bars.png");
}

TEST(Plot, HeatmapWithNumbers) {
  testing::TempDir dir;
  Heatmap chart{style("confusion"),
                kAwkwardLabels,
                kAwkwardLabels,
                {{50, 2, 0, 1}, {3, 40, 7, 0}, {0, 9, 35, 1}, {1, 0, 2, 60}}};
  write_heatmap(chart, dir / "heatmap.png");
  expect_png(dir / "heatmap.png");
}

TEST(Plot, PrecisionRecallCurves) {
  testing::TempDir dir;
  PrecisionRecallChart chart{style("precision-recall"),
                             {{kAwkwardLabels[0], {0.25, 0.5, 0.75, 1.0}, {1.0, 0.8, 0.7, 0.5}},
                              {kAwkwardLabels[2], {0.5, 1.0}, {0.9, 0.6}}}};
  write_precision_recall_chart(chart, dir / "pr.png");
  expect_png(dir / "pr.png");
}

TEST(Plot, Histogram) {
  testing::TempDir dir;
  Histogram chart{style("widths"), {{"width_px", {}}, {kAwkwardLabels[2], {}}}, 10};
  for (int i = 0; i < 200; ++i) {
    chart.series[0].values.push_back(i % 37);
    chart.series[1].values.push_back(10 + i % 23);
  }
  write_histogram(chart, dir / "histogram.png");
  expect_png(dir / "histogram.png");
}

TEST(Plot, QuotesLabelsSafely) {
  EXPECT_EQ(gnuplot_quote("it's"), "'it''s'");
  EXPECT_EQ(gnuplot_quote("two\nlines"), "'two lines'");
  EXPECT_EQ(gnuplot_quote("a_b \"c\" `d`"), "'a_b \"c\" `d`'");
}

TEST(Plot, RejectsInconsistentData) {
  testing::TempDir dir;
  BarChart chart{style("bad"), {"a", "b"}, {}, {{1.0}}};
  EXPECT_THROW(write_bar_chart(chart, dir / "bad.png"), InputError);
  EXPECT_THROW(write_line_chart(LineChart{style("empty"), {}, false}, dir / "empty.png"),
               InputError);
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.png"));
}

// Puts a fake `gnuplot` (a shell script) first on PATH for the lifetime of the object.
class FakeGnuplot {
 public:
  explicit FakeGnuplot(const std::string& body) : old_path_(std::getenv("PATH")) {
    const auto program = dir_ / "gnuplot";
    std::ofstream(program) << "#!/bin/sh\n" << body << "\n";
    std::filesystem::permissions(program, std::filesystem::perms::owner_all);
    ::setenv("PATH", (dir_.path().string() + ":" + old_path_).c_str(), 1);
  }
  ~FakeGnuplot() { ::setenv("PATH", old_path_.c_str(), 1); }

 private:
  testing::TempDir dir_;
  std::string old_path_;
};

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const InputError& error) {
    return error.what();
  }
  return "no error";
}

BarChart small_bar_chart() { return BarChart{style("t"), {"a"}, {}, {{1.0}}}; }

TEST(Plot, GnuplotErrorsAreReportedWithItsOutputAndLeaveTheTargetAlone) {
  testing::TempDir dir;
  const auto target = dir / "chart.png";
  write_file_atomically(target, "old");
  FakeGnuplot fake("echo 'line 3: unexpected thing' >&2; exit 1");
  const std::string message = error_of([&] { write_bar_chart(small_bar_chart(), target); });
  EXPECT_NE(message.find("gnuplot failed"), std::string::npos) << message;
  EXPECT_NE(message.find("line 3: unexpected thing"), std::string::npos) << message;
  EXPECT_EQ(read_file(target), "old");
}

TEST(Plot, MissingGnuplotSaysHowToInstallIt) {
  testing::TempDir empty;
  const std::string old_path = std::getenv("PATH");
  ::setenv("PATH", empty.path().c_str(), 1);
  const std::string message =
      error_of([&] { write_bar_chart(small_bar_chart(), empty / "chart.png"); });
  ::setenv("PATH", old_path.c_str(), 1);
  EXPECT_NE(message.find("gnuplot is not installed"), std::string::npos) << message;
}

TEST(Plot, AHangingGnuplotIsStoppedAtTheTimeout) {
  testing::TempDir dir;
  FakeGnuplot fake("exec sleep 30");
  BarChart chart = small_bar_chart();
  chart.style.timeout = std::chrono::seconds(1);
  const auto start = std::chrono::steady_clock::now();
  const std::string message = error_of([&] { write_bar_chart(chart, dir / "chart.png"); });
  EXPECT_NE(message.find("within 1 s"), std::string::npos) << message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

}  // namespace
}  // namespace garmentnet
