// libFuzzer target: a :predict request body through JSON parsing, instance parsing and image
// decoding — everything the server does with untrusted bytes before the model. Built and run by
// scripts/fuzz.sh (clang). Only InputError may come out; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "serve/request_parsing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  garmentnet::RequestLimits limits;
  limits.image.max_pixels = 4'000'000;  // keep each run fast; the limit itself is what is tested
  try {
    const garmentnet::PredictBody request = garmentnet::parse_predict_body(body, limits);
    for (const auto& instance : request.instances) {
      const cv::Mat image = garmentnet::decode_instance(instance, "fuzz", limits);
      garmentnet::resize_for_model(image, garmentnet::Preprocessing{});
    }
  } catch (const garmentnet::InputError&) {
  }
  // Raw bytes as an uploaded image (the :classify-image route).
  try {
    garmentnet::decode_image(body, "fuzz", limits.image);
  } catch (const garmentnet::InputError&) {
  }
  return 0;
}
