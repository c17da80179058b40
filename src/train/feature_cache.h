// Features of a frozen backbone, computed once per image and view and kept for every training of
// the process that asks for them again: with `--transfer frozen` each epoch, fold and trial sees
// the same features, so only the heads need computing.
#pragma once

#include <torch/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/image.h"
#include "model/multitask_model.h"

namespace garmentnet {

class FeatureCache {
 public:
  // Backbone features [images.size(), feature_dim] of `images` (files `paths`, decoded at
  // `pre`). View 0 is the plain image; view v > 0 an `augmentation` of it drawn from `seed`, v
  // and the file name (the same view whatever else is cached). Entries are keyed by the
  // backbone's weights, so another backbone (or the same architecture with other weights) never
  // reads them. StopRequested once `stop` (may be null) is set; what was computed stays cached.
  torch::Tensor features(MultiTaskModel& model, const std::vector<cv::Mat>& images,
                         const std::vector<std::filesystem::path>& paths, const Preprocessing& pre,
                         const Augmentation& augmentation, int view, uint64_t seed,
                         const std::string& progress_label, const std::atomic<bool>* stop);

  int64_t computed_count() const { return computed_; }  // images run through a backbone so far

 private:
  std::map<std::string, std::map<std::filesystem::path, torch::Tensor>> by_key_;
  int64_t computed_ = 0;
};

}  // namespace garmentnet
