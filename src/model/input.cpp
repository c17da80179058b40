#include "model/input.h"

#include "core/error.h"

namespace garmentnet {

at::Tensor make_input_batch(const std::vector<cv::Mat>& resized, const Preprocessing& pre) {
  const int64_t plane = static_cast<int64_t>(pre.width) * pre.height;
  auto batch = torch::empty({static_cast<int64_t>(resized.size()), 3, pre.height, pre.width});
  float* out = batch.data_ptr<float>();
  for (size_t i = 0; i < resized.size(); ++i) {
    if (resized[i].cols != pre.width || resized[i].rows != pre.height) {
      fail_internal("image {} is {}x{}, the model takes {}x{}", i, resized[i].cols, resized[i].rows,
                    pre.width, pre.height);
    }
    write_normalized_chw(resized[i], pre, out + static_cast<int64_t>(i) * 3 * plane);
  }
  return batch;
}

}  // namespace garmentnet
