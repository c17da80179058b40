// Presents an ExploreResult: aligned tables for the terminal, and an HTML report with charts
// (gnuplot) and sample image grids (OpenCV) plus all numbers as JSON.
#pragma once

#include <filesystem>
#include <string>

#include "data/explore.h"

namespace garmentnet {

// The short summary printed by `garmentnet explore`.
std::string explore_summary_text(const ExploreResult& result);

// Writes `out_dir`/report.html, `out_dir`/explore.json, the charts under `out_dir`/plots and the
// sample grids under `out_dir`/samples (the report refers to them by relative paths, so the
// folder can be moved as a whole). Every file is written atomically. Needs gnuplot.
void write_explore_report(const ExploreResult& result, const std::filesystem::path& out_dir);

}  // namespace garmentnet
