// Model inputs: resized RGB uint8 images → one normalised float NCHW tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <opencv2/core.hpp>
#include <vector>

#include "data/image.h"

namespace garmentnet {

// Stacks images already resized to pre.width × pre.height (see resize_for_model) into a
// [N, 3, height, width] float tensor normalised with pre's mean/std.
at::Tensor make_input_batch(const std::vector<cv::Mat>& resized, const Preprocessing& pre);

}  // namespace garmentnet
