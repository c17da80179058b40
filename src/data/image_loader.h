// Loads many image files in parallel, resized to a model's input size. Training keeps the result
// in memory for all its epochs; batch prediction calls it chunk by chunk to bound memory.
#pragma once

#include <atomic>
#include <filesystem>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "data/image.h"

namespace garmentnet {

struct LoadedImages {
  std::vector<cv::Mat> images;      // resized RGB uint8, one per path; empty where loading failed
  std::vector<size_t> failed;       // indices of the paths that failed, ascending
  std::vector<std::string> errors;  // one message per failure (file and reason), same order
};

// Reads, decodes and resizes `paths` on `pool`. A bad file never stops the others: its error is
// recorded. `progress_label` non-empty shows a progress bar. Once `stop` (may be null) is set, no
// more files start and StopRequested (core/stop_signals.h) is thrown.
LoadedImages load_resized_images(const std::vector<std::filesystem::path>& paths,
                                 const Preprocessing& pre, const ImageLimits& limits,
                                 ThreadPool& pool, const std::string& progress_label = "",
                                 const std::atomic<bool>* stop = nullptr);

}  // namespace garmentnet
