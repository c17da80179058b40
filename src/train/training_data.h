// The data of a training run: the labelled table split into training and validation rows, the
// images decoded once (and kept for every training of the process that asks for them again),
// and label tensors per batch.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "data/dataset.h"
#include "data/image.h"
#include "train/train_options.h"

namespace garmentnet {

// The task of a dataset folder: its task.json, or the garment task.
TaskSpec dataset_task(const std::filesystem::path& data_dir);

struct TrainingSplits {
  LabelledDataset train;
  LabelledDataset validation;  // same spec (classes) as train
};

// Loads data_dir/data.parquet; validation rows are the --validation table, fold `fold` of
// `folds` stratified folds, or a stratified (by category) share of the rows, chosen by the seed.
TrainingSplits load_training_splits(const TrainOptions& options);

// Rows stratified by the category head (rows without a category form their own stratum), a
// `fraction` of each stratum held out: {kept, held out}, both ascending. InputError when either
// would be empty.
std::pair<std::vector<size_t>, std::vector<size_t>> stratified_split(const LabelledDataset& data,
                                                                     double fraction,
                                                                     uint64_t seed);

// The fold (0 .. folds-1) of each row for stratified k-fold cross-validation: each stratum (as
// in stratified_split) shuffled by the seed and dealt out in turn, so every fold holds nearly the
// same share of every category. InputError when there are fewer rows than folds.
std::vector<int> stratified_folds(const LabelledDataset& data, int folds, uint64_t seed);

// A split with its images decoded and resized to the model input; rows whose image could not
// be read are dropped (an InputError with strict).
struct ImageSet {
  LabelledDataset data;
  std::vector<cv::Mat> images;  // one per row of data
};

// Decoded images by file and preprocessing, kept for the life of the cache: a second training
// on the same images (another fold, another trial) decodes none of them again. Images are
// shared, never modified (augmentation makes new ones).
class DecodedImageCache {
 public:
  // Decodes what is not cached yet; StopRequested once `stop` (may be null) is set.
  ImageSet load(LabelledDataset data, const Preprocessing& pre, ThreadPool& pool,
                const std::string& progress_label, bool strict, const std::atomic<bool>* stop);

  size_t decoded_count() const { return decoded_; }  // files decoded so far, all preprocessings

 private:
  struct Decoded {
    cv::Mat image;      // empty when decoding failed
    std::string error;  // why it failed
  };
  std::map<std::string, std::map<std::filesystem::path, Decoded>> by_preprocessing_;
  size_t decoded_ = 0;
};

}  // namespace garmentnet
