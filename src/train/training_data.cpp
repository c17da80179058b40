#include "train/training_data.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "data/image_loader.h"

namespace garmentnet {
namespace fs = std::filesystem;

TaskSpec dataset_task(const fs::path& data_dir) {
  const fs::path task_file = data_dir / "task.json";
  return fs::exists(task_file) ? TaskSpec::load(task_file) : TaskSpec::garments();
}

namespace {

// The rows of each category (rows without one: their own stratum), each shuffled by `seed`.
std::map<int64_t, std::vector<size_t>> shuffled_strata(const LabelledDataset& data, uint64_t seed) {
  std::map<int64_t, std::vector<size_t>> strata;
  const HeadSpec* category = data.spec.category_head();
  for (size_t i = 0; i < data.size(); ++i) {
    strata[category ? data.labels.at(category->name)[i] : 0].push_back(i);
  }
  std::mt19937_64 rng(seed);
  for (auto& [label, members] : strata) std::shuffle(members.begin(), members.end(), rng);
  return strata;
}

}  // namespace

std::pair<std::vector<size_t>, std::vector<size_t>> stratified_split(const LabelledDataset& data,
                                                                     double fraction,
                                                                     uint64_t seed) {
  std::vector<size_t> kept, held_out;
  for (auto& [label, members] : shuffled_strata(data, seed)) {
    const auto count =
        static_cast<size_t>(std::llround(fraction * static_cast<double>(members.size())));
    held_out.insert(held_out.end(), members.begin(),
                    members.begin() + static_cast<ptrdiff_t>(count));
    kept.insert(kept.end(), members.begin() + static_cast<ptrdiff_t>(count), members.end());
  }
  std::sort(kept.begin(), kept.end());
  std::sort(held_out.begin(), held_out.end());
  if (kept.empty() || held_out.empty()) {
    fail("the dataset has too few rows ({}) to hold out a validation split", data.size());
  }
  return {kept, held_out};
}

std::vector<int> stratified_folds(const LabelledDataset& data, int folds, uint64_t seed) {
  if (folds < 2 || data.size() < static_cast<size_t>(folds))
    fail("{} rows cannot be split into {} folds", data.size(), folds);
  std::vector<int> fold_of(data.size());
  // Dealt on from stratum to stratum, so the folds' sizes differ by at most one row.
  int next = 0;
  for (const auto& [label, members] : shuffled_strata(data, seed)) {
    for (const size_t row : members) {
      fold_of[row] = next;
      next = (next + 1) % folds;
    }
  }
  return fold_of;
}

TrainingSplits load_training_splits(const TrainOptions& options) {
  const TaskSpec task = dataset_task(options.data_dir);
  const DatasetOptions data_options{.strict = options.strict, .derive_classes = true};
  LabelledDataset all = load_labelled_dataset(options.data_dir / "data.parquet",
                                              options.data_dir / "images", task, data_options);
  if (options.folds > 0) {
    const std::vector<int> fold_of = stratified_folds(all, options.folds, options.seed);
    std::vector<size_t> train_rows, validation_rows;
    for (size_t row = 0; row < all.size(); ++row)
      (fold_of[row] == options.fold ? validation_rows : train_rows).push_back(row);
    return {all.subset(train_rows), all.subset(validation_rows)};
  }
  if (options.validation.empty() && options.validation_fraction == 0) {
    LabelledDataset none = all.subset({});
    return {std::move(all), std::move(none)};
  }
  if (options.validation.empty()) {
    const auto [train_rows, validation_rows] =
        stratified_split(all, options.validation_fraction, options.seed);
    return {all.subset(train_rows), all.subset(validation_rows)};
  }
  // The validation table must use the training classes.
  const TaskSpec resolved = all.spec;
  LabelledDataset validation = load_labelled_dataset(
      options.validation, options.data_dir / "images", resolved, data_options);
  return {std::move(all), std::move(validation)};
}

ImageSet DecodedImageCache::load(LabelledDataset data, const Preprocessing& pre, ThreadPool& pool,
                                 const std::string& progress_label, bool strict,
                                 const std::atomic<bool>* stop) {
  auto& cache = by_preprocessing_[pre.to_json().dump()];
  std::vector<fs::path> missing;
  for (const fs::path& path : data.images) {
    if (!cache.count(path)) missing.push_back(path);
  }
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  if (!missing.empty()) {
    LoadedImages loaded =
        load_resized_images(missing, pre, ImageLimits{}, pool, progress_label, stop);
    for (size_t i = 0, f = 0; i < missing.size(); ++i) {
      Decoded& entry = cache[missing[i]];
      if (f < loaded.failed.size() && loaded.failed[f] == i) {
        entry.error = loaded.errors[f++];
      } else {
        entry.image = std::move(loaded.images[i]);
      }
    }
    decoded_ += missing.size();
  }

  std::vector<size_t> keep;
  std::vector<cv::Mat> images;
  std::vector<std::string> errors;
  for (size_t i = 0; i < data.size(); ++i) {
    const Decoded& entry = cache.at(data.images[i]);
    if (entry.image.empty()) {
      errors.push_back(entry.error);
      continue;
    }
    keep.push_back(i);
    images.push_back(entry.image);
  }
  if (!errors.empty()) {
    std::string listed;
    for (size_t i = 0; i < std::min<size_t>(errors.size(), 5); ++i) listed += "\n  " + errors[i];
    if (strict) fail("{} image(s) could not be read:{}", errors.size(), listed);
    spdlog::warn("{} image(s) could not be read and are skipped:{}", errors.size(), listed);
    data = data.subset(keep);
  }
  return {std::move(data), std::move(images)};
}

}  // namespace garmentnet
