// Model files with random weights for inference tests (no training needed): a native backbone,
// the garment heads, batch-norm statistics and thresholds made non-trivial so that conv +
// batch-norm folding and threshold export are really exercised.
#pragma once

#include <torch/types.h>
#include <torch/utils.h>

#include <filesystem>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "data/image.h"
#include "model/input.h"
#include "model/model_file.h"
#include "model/quantized_backbone.h"

namespace garmentnet::testing {

inline std::filesystem::path write_random_model(const std::filesystem::path& path,
                                                Backbone backbone, int side, uint64_t seed = 1) {
  torch::manual_seed(seed);
  ModelBundle bundle;
  bundle.model = MultiTaskModel(std::move(backbone), TaskSpec::garments());
  {
    torch::NoGradGuard no_grad;
    for (auto& item : bundle.model->named_buffers()) {
      if (item.key().ends_with("running_mean")) item.value().uniform_(-0.3, 0.3);
      if (item.key().ends_with("running_var")) item.value().uniform_(0.5, 1.5);
    }
    for (auto& item : bundle.model->named_parameters()) {
      // Batch-norm scales and shifts (1-D parameters of the backbone).
      if (item.value().dim() == 1 && item.key().starts_with("backbone"))
        item.value().uniform_(0.5, 1.5);
    }
  }
  bundle.model->eval();
  bundle.preprocessing.width = side;
  bundle.preprocessing.height = side;
  bundle.tag_thresholds["tags"] = {0.25, 0.5, 0.75};
  save_model_file(bundle, path);
  return path;
}

inline std::filesystem::path write_random_model(const std::filesystem::path& path,
                                                const std::string& architecture, int side,
                                                uint64_t seed = 1) {
  torch::manual_seed(seed);
  return write_random_model(path, make_native_backbone(architecture), side, seed);
}

// `count` random RGB images already at the model input size.
inline std::vector<cv::Mat> random_images(size_t count, int side, uint64_t seed = 5) {
  cv::RNG rng(seed);
  std::vector<cv::Mat> images;
  for (size_t i = 0; i < count; ++i) {
    cv::Mat image(side, side, CV_8UC3);
    rng.fill(image, cv::RNG::UNIFORM, 0, 256);
    images.push_back(image);
  }
  return images;
}

// The int8 copy (min-max ranges) of an fp32 model, calibrated on random images like those of
// random_images().
inline ModelBundle int8_copy(const ModelBundle& fp32) {
  const Preprocessing& pre = fp32.preprocessing;
  Calibration calibration(fp32.model->backbone(), pre.height, pre.width);
  calibration.observe(make_input_batch(random_images(16, pre.height, 9), pre));
  ModelBundle int8 = fp32;
  int8.model = MultiTaskModel(calibration.quantize(RangeObserver::MinMax), fp32.model->spec());
  int8.model->eval();
  return int8;
}

}  // namespace garmentnet::testing
