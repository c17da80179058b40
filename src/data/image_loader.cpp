#include "data/image_loader.h"

#include <memory>

#include "core/error.h"
#include "core/progress.h"
#include "core/stop_signals.h"

namespace garmentnet {

LoadedImages load_resized_images(const std::vector<std::filesystem::path>& paths,
                                 const Preprocessing& pre, const ImageLimits& limits,
                                 ThreadPool& pool, const std::string& progress_label,
                                 const std::atomic<bool>* stop) {
  LoadedImages loaded;
  loaded.images.resize(paths.size());
  std::vector<std::string> errors(paths.size());
  std::unique_ptr<Progress> progress;
  if (!progress_label.empty()) {
    progress =
        std::make_unique<Progress>(progress_label, static_cast<int64_t>(paths.size()), "img");
  }
  const int target_side = std::min(pre.width, pre.height);
  pool.parallel_for(paths.size(), [&](size_t i) {
    if (stop && *stop) return;
    try {
      loaded.images[i] = resize_for_model(load_image(paths[i], limits, target_side), pre);
    } catch (const InputError& error) {
      errors[i] = error.what();
    }
    if (progress) progress->advance();
  });
  stop_if_requested(stop, progress_label.empty() ? "decoding images" : progress_label);
  for (size_t i = 0; i < paths.size(); ++i) {
    if (!errors[i].empty()) {
      loaded.failed.push_back(i);
      loaded.errors.push_back(std::move(errors[i]));
    }
  }
  return loaded;
}

}  // namespace garmentnet
