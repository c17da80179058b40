// The optimised inference path (traced, frozen, optimize_for_inference TorchScript graph) against
// the eager model, its fallback, FLOP counting, and `garmentnet bench`.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "infer/benchmark.h"
#include "infer/predictor.h"
#include "infer/torchscript_export.h"
#include "model_fixture.h"
#include "test_support.h"

namespace garmentnet {
namespace {

using testing::TempDir;

double max_difference(const HeadProbabilities& a, const HeadProbabilities& b) {
  double largest = 0;
  for (const auto& [head, values] : a) {
    const std::vector<float>& other = b.at(head);
    EXPECT_EQ(values.size(), other.size()) << head;
    for (size_t i = 0; i < std::min(values.size(), other.size()); ++i)
      largest = std::max(largest, static_cast<double>(std::abs(values[i] - other[i])));
  }
  return largest;
}

// Index of the largest of `outputs` values in each row.
std::vector<size_t> row_argmax(const std::vector<float>& values, size_t outputs) {
  std::vector<size_t> result;
  for (size_t row = 0; row * outputs < values.size(); ++row) {
    const auto begin = values.begin() + static_cast<long>(row * outputs);
    result.push_back(static_cast<size_t>(std::max_element(begin, begin + outputs) - begin));
  }
  return result;
}

class OptimisedPredictorTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OptimisedPredictorTest, MatchesEagerAtEveryBatchSize) {
  TempDir dir;
  const auto model = testing::write_random_model(dir / "model.gnm", GetParam(), 32);
  const Predictor fast(model);
  const Predictor eager(model, {.optimize = false});
  ASSERT_TRUE(fast.optimized()) << "the optimised graph was rejected for " << GetParam();
  EXPECT_FALSE(eager.optimized());
  // The graph is traced at batch 2: other sizes must work too (nothing baked in).
  for (size_t batch : {1u, 2u, 5u, 17u}) {
    const auto images = testing::random_images(batch, 32, batch);
    const HeadProbabilities expected = eager.predict(images);
    const HeadProbabilities actual = fast.predict(images);
    ASSERT_EQ(actual.at("cc3").size(), batch * 5);
    ASSERT_EQ(actual.at("tags").size(), batch * 3);
    EXPECT_LT(max_difference(expected, actual), 1e-4) << "batch " << batch;
    EXPECT_EQ(row_argmax(actual.at("cc3"), 5), row_argmax(expected.at("cc3"), 5));
  }
}

INSTANTIATE_TEST_SUITE_P(NativeBackbones, OptimisedPredictorTest,
                         ::testing::Values("small_cnn", "mobilenet_v2", "resnet18"));

TEST(OptimisedPredictor, FallsBackToEagerWhenTheGraphIsRejected) {
  TempDir dir;
  const auto model = testing::write_random_model(dir / "model.gnm", "small_cnn", 32);
  // A negative tolerance rejects any graph, as a real disagreement would.
  const Predictor fallback(model, {.optimized_tolerance = -1});
  const Predictor eager(model, {.optimize = false});
  EXPECT_FALSE(fallback.optimized());
  const auto images = testing::random_images(4, 32);
  EXPECT_EQ(max_difference(eager.predict(images), fallback.predict(images)), 0.0);
}

TEST(OptimisedPredictor, TorchScriptBackboneGivesTheEagerResults) {
  if (std::system("/usr/bin/python3 -c 'import torchvision' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torchvision";
  TempDir dir;
  const std::string command = std::string("/usr/bin/python3 ") + GARMENTNET_SOURCE_DIR +
                              "/tools/export_torchvision_backbone.py --arch mobilenet_v2 --random "
                              "--out '" +
                              (dir / "backbone.pt").string() + "' >/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);
  const auto model = testing::write_random_model(
      dir / "model.gnm", load_torchscript_backbone(dir / "backbone.pt"), 32);
  const Predictor fast(model);
  const Predictor eager(model, {.optimize = false});
  // Whether or not the graph was accepted, predictions must be the eager ones.
  const auto images = testing::random_images(3, 32);
  EXPECT_LT(max_difference(eager.predict(images), fast.predict(images)), 1e-4);
  EXPECT_TRUE(fast.optimized());
}

TEST(TraceModel, CountsMultiplyAccumulatesFromTheGraph) {
  TempDir dir;
  ModelBundle bundle =
      load_model_file(testing::write_random_model(dir / "model.gnm", "small_cnn", 32));
  const torch::jit::Module traced = trace_model(bundle.model, bundle.preprocessing, 2);
  const MacCount count = count_macs(traced, 2);
  // small_cnn at 32 px: 3x3 convolutions 3→32 at 32², 32→64 at 16², 64→128 at 8², 128→256 at 4²,
  // then the heads 256→5 and 256→3.
  const int64_t expected = 32 * 32 * 32 * 27 + 16 * 16 * 64 * 288 + 8 * 8 * 128 * 576 +
                           4 * 4 * 256 * 1152 + 256 * 5 + 256 * 3;
  EXPECT_EQ(count.macs_per_image, expected);
  EXPECT_EQ(count.counted_ops, 6);
  EXPECT_EQ(count.skipped_ops, 0);
}

TEST(Benchmark, ReportsEveryFigure) {
  TempDir dir;
  const auto model = testing::write_random_model(dir / "model.gnm", "small_cnn", 32);
  BenchmarkOptions options;
  options.model = model;
  options.synthetic_images = 8;
  options.batch_sizes = {1, 4};
  options.end_to_end_batch = 4;
  options.seconds = 0.02;
  options.min_iterations = 1;
  options.latency_runs = 20;
  options.threads = 2;
  at::set_num_threads(1);
  const BenchmarkResult result = run_benchmark(options);
  EXPECT_EQ(at::get_num_threads(), 1) << "the caller's thread count is restored";
  at::set_num_threads(default_thread_count());
  const nlohmann::json json = result.to_json();

  EXPECT_EQ(json["architecture"], "small_cnn");
  EXPECT_EQ(json["input_width"], 32);
  EXPECT_EQ(json["model_file_bytes"].get<int64_t>(),
            static_cast<int64_t>(std::filesystem::file_size(model)));
  // Convolutions, batch norms (scale and shift), then the heads' weights and biases.
  const int64_t parameters =
      (3 * 32 + 32 * 64 + 64 * 128 + 128 * 256) * 9 + 2 * (32 + 64 + 128 + 256) + 256 * 8 + 8;
  EXPECT_EQ(json["parameters"].get<int64_t>(), parameters);
  EXPECT_GT(json["macs_per_image"].get<int64_t>(), 15'000'000);
  EXPECT_DOUBLE_EQ(json["flops_per_image"].get<double>(),
                   2.0 * json["macs_per_image"].get<double>());
  EXPECT_TRUE(json["predictor_optimized"].get<bool>());
  EXPECT_EQ(json["decode_files"], 8);
  for (const char* rate :
       {"peak_gflops", "decode_images_per_second", "decode_full_size_images_per_second_1_thread",
        "decode_reduced_images_per_second_1_thread", "end_to_end_images_per_second",
        "predictor_forward_images_per_second", "end_to_end_ratio"}) {
    EXPECT_GT(json[rate].get<double>(), 0) << rate;
    EXPECT_TRUE(std::isfinite(json[rate].get<double>())) << rate;
  }
  EXPECT_EQ(json["end_to_end_target_reached"].get<bool>(), json["end_to_end_ratio"] >= 0.8);
  EXPECT_GT(json["peak_rss_bytes"].get<int64_t>(), 10'000'000);
  // Every optimisation step at every batch size.
  ASSERT_EQ(json["forward"].size(), 8u * 2u);
  for (const auto& m : json["forward"]) {
    EXPECT_GT(m["images_per_second"].get<double>(), 0) << m;
    EXPECT_GT(m["fraction_of_peak"].get<double>(), 0) << m;
    EXPECT_GE(m["threads"].get<int>(), 1) << m;
  }
  ASSERT_EQ(json["latency_batch_1"].size(), 2u);
  for (const auto& m : json["latency_batch_1"]) {
    EXPECT_GT(m["p50_ms"].get<double>(), 0) << m;
    EXPECT_LE(m["p50_ms"].get<double>(), m["p99_ms"].get<double>()) << m;
    EXPECT_GE(m["runs"].get<int>(), 20) << m;
  }
  const std::string table = format_benchmark(result);
  EXPECT_NE(table.find("optimized (frozen + optimize_for_inference)"), std::string::npos) << table;
  EXPECT_NE(table.find("end-to-end predict"), std::string::npos) << table;
}

TEST(Benchmark, CommandWritesJsonAndSkipsUnreadableImages) {
  TempDir dir;
  const auto model = testing::write_random_model(dir / "model.gnm", "small_cnn", 32);
  const auto images = dir / "images";
  std::filesystem::create_directories(images);
  write_file_atomically(images / "broken.jpeg", "not a jpeg");
  // Real JPEGs: the synthetic ones the benchmark writes would do, but use a folder to test
  // --images; encode a few random images.
  for (int i = 0; i < 3; ++i) {
    std::vector<uint8_t> bytes;
    cv::imencode(".jpeg", testing::random_images(1, 48, i)[0], bytes);
    write_file_atomically(images / ("img" + std::to_string(i) + ".jpeg"),
                          std::string(bytes.begin(), bytes.end()));
  }
  const auto result = testing::run_garmentnet(
      "bench --model '" + model.string() + "' --images '" + images.string() +
      "' --batch-sizes 1,2 --end-to-end-batch 2 --seconds 0.01 --latency-runs 10 --quick --json '" +
      (dir / "bench.json").string() + "'");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("broken.jpeg"), std::string::npos) << result.output;
  const auto json = nlohmann::json::parse(read_file(dir / "bench.json"));
  EXPECT_EQ(json["decode_files"], 3);
  EXPECT_EQ(json["forward"].size(), 2u * 2u);  // --quick: eager and optimised only

  const auto empty = dir / "empty";
  std::filesystem::create_directories(empty);
  const auto failed = testing::run_garmentnet("bench --model '" + model.string() + "' --images '" +
                                              empty.string() + "'");
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_NE(failed.output.find("holds no .jpeg"), std::string::npos) << failed.output;
}

}  // namespace
}  // namespace garmentnet
