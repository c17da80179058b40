// Micro-benchmarks of the image path every prediction takes: JPEG decode + resize (full-size and
// reduced-size decoding) and stacking resized images into a normalised batch.
#include <benchmark/benchmark.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "data/image.h"
#include "model/input.h"

namespace {

// A photo-like JPEG the size of the original garment photos (217 wide, 301 high).
std::string garment_sized_jpeg() {
  cv::Mat image(301, 217, CV_8UC3);
  cv::RNG rng(7);
  rng.fill(image, cv::RNG::UNIFORM, 90, 200);
  cv::GaussianBlur(image, image, cv::Size(9, 9), 3);
  for (int i = 0; i < 20; ++i)
    cv::circle(image, {rng.uniform(0, 217), rng.uniform(0, 301)}, rng.uniform(3, 30),
               cv::Scalar(rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)),
               cv::FILLED, cv::LINE_AA);
  std::vector<uint8_t> bytes;
  cv::imencode(".jpeg", image, bytes, {cv::IMWRITE_JPEG_QUALITY, 90});
  return {bytes.begin(), bytes.end()};
}

garmentnet::Preprocessing input_of_side(int side) {
  garmentnet::Preprocessing pre;
  pre.width = side;
  pre.height = side;
  return pre;
}

// Arguments: model input side, whether the JPEG may be decoded at reduced size.
void BM_DecodeResize(benchmark::State& state) {
  const std::string jpeg = garment_sized_jpeg();
  const garmentnet::Preprocessing pre = input_of_side(static_cast<int>(state.range(0)));
  const int target_side = state.range(1) ? pre.width : 0;
  for (auto _ : state) {
    cv::Mat resized = garmentnet::resize_for_model(
        garmentnet::decode_image(jpeg, "benchmark", {}, target_side), pre);
    benchmark::DoNotOptimize(resized.data);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeResize)
    ->ArgNames({"side", "reduced"})
    ->Args({64, 0})
    ->Args({64, 1})
    ->Args({224, 0})
    ->Args({224, 1});

// Argument: batch size (64 px inputs).
void BM_MakeInputBatch(benchmark::State& state) {
  const garmentnet::Preprocessing pre = input_of_side(64);
  const cv::Mat resized = garmentnet::resize_for_model(
      garmentnet::decode_image(garment_sized_jpeg(), "benchmark"), pre);
  const std::vector<cv::Mat> images(static_cast<size_t>(state.range(0)), resized);
  for (auto _ : state) {
    at::Tensor batch = garmentnet::make_input_batch(images, pre);
    benchmark::DoNotOptimize(batch.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_MakeInputBatch)->Arg(1)->Arg(32);

}  // namespace

BENCHMARK_MAIN();
