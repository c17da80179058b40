// `garmentnet runs compare`: several training runs on one HTML page, their validation curves
// overlaid, the options in which they differ, and their best epochs side by side. Torch-free.
#pragma once

#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace garmentnet {

// The options (config.json; nested ones named like "augmentation.brightness") whose values are not
// the same in every run, one row each: the option's name, then its value in each run ("" where a
// run does not have it). "out", each run's own folder, is left out.
std::vector<std::vector<std::string>> differing_options(const std::vector<nlohmann::json>& configs);

// Writes <out_dir>/compare.html and its charts (<out_dir>/plots/). Each run is named as given.
// A folder without a readable config.json and metrics.json is an InputError naming it.
void write_run_comparison(const std::vector<std::filesystem::path>& run_dirs,
                          const std::filesystem::path& out_dir);

}  // namespace garmentnet
