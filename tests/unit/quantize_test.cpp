// Int8 backbones: the folded fp32 program equals the backbone, int8 stays close to fp32 on every
// native backbone, and an int8 model file round-trips and runs in the Predictor.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <cstdlib>
#include <sstream>

#include "core/atomic_file.h"
#include "core/thread_pool.h"
#include "infer/predictor.h"
#include "model/input.h"
#include "model/quantized_backbone.h"
#include "model_fixture.h"
#include "test_support.h"

namespace garmentnet {
namespace {

using testing::TempDir;

// Signal-to-quantisation-noise ratio of `actual` against `expected`, in dB.
double sqnr_db(const at::Tensor& expected, const at::Tensor& actual) {
  const double signal = expected.pow(2).sum().item<double>();
  const double noise = (expected - actual).pow(2).sum().item<double>();
  return 10 * std::log10(signal / std::max(noise, 1e-30));
}

// A native backbone with non-trivial batch-norm statistics (so folding is exercised).
Backbone random_backbone(const std::string& name) {
  torch::manual_seed(3);
  Backbone backbone = make_native_backbone(name);
  torch::NoGradGuard no_grad;
  for (auto& item : backbone->named_buffers()) {
    if (item.key().ends_with("running_mean")) item.value().uniform_(-0.3, 0.3);
    if (item.key().ends_with("running_var")) item.value().uniform_(0.5, 1.5);
  }
  for (auto& item : backbone->named_parameters())
    if (item.value().dim() == 1) item.value().uniform_(0.5, 1.5);
  backbone->eval();
  return backbone;
}

class Int8BackboneTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { torch::set_num_threads(default_thread_count()); }
};

TEST_P(Int8BackboneTest, FoldedProgramEqualsFp32AndInt8StaysClose) {
  constexpr int kSide = 32;
  Backbone backbone = random_backbone(GetParam());
  Calibration calibration(backbone, kSide, kSide);
  torch::manual_seed(4);
  for (int i = 0; i < 3; ++i) calibration.observe(torch::randn({8, 3, kSide, kSide}));
  const at::Tensor images = torch::randn({6, 3, kSide, kSide});
  torch::InferenceMode guard;
  const at::Tensor expected = backbone->forward(images);
  const at::Tensor folded = calibration.fp32_features(images);
  EXPECT_TRUE(torch::allclose(folded, expected, 1e-4, 1e-4))
      << (folded - expected).abs().max().item<double>();
  for (RangeObserver observer : {RangeObserver::MinMax, RangeObserver::Percentile}) {
    Backbone int8 = calibration.quantize(observer);
    EXPECT_TRUE(is_quantized(int8));
    EXPECT_FALSE(is_quantized(backbone));
    const at::Tensor actual = int8->forward(images);
    ASSERT_EQ(actual.sizes(), expected.sizes());
    EXPECT_GT(sqnr_db(expected, actual), 18.0) << name_of(observer);
  }
}

// At the input size each backbone is used at, int8 answers batch after batch of changing size, and
// an image's features do not depend on the batch it came in. (On CPUs with AVX-512 VNNI, oneDNN
// failed at mobilenet_v2's 1x1 convolutions from 96 channels as soon as the batch size changed.)
TEST_P(Int8BackboneTest, AnswersBatchSizes1_8_32_1InSequence) {
  const int side = GetParam() == "small_cnn" ? 64 : 224;
  Backbone backbone = random_backbone(GetParam());
  Calibration calibration(backbone, side, side);
  torch::manual_seed(5);
  calibration.observe(torch::randn({4, 3, side, side}));
  Backbone int8 = calibration.quantize(RangeObserver::Percentile);
  const at::Tensor images = torch::randn({32, 3, side, side});
  torch::InferenceMode guard;
  const at::Tensor first_alone = int8->forward(images.slice(0, 0, 1))[0];
  for (int64_t batch : {1, 8, 32, 1}) {
    const at::Tensor features = int8->forward(images.slice(0, 0, batch));
    ASSERT_EQ(features.size(0), batch);
    EXPECT_GT(sqnr_db(first_alone, features[0]), 30.0) << "batch " << batch;
  }
}

INSTANTIATE_TEST_SUITE_P(NativeBackbones, Int8BackboneTest,
                         ::testing::Values("small_cnn", "resnet18", "mobilenet_v2"));

// The int8 input is quantized as LibTorch quantizes (what an exported TorchScript model does), bit
// for bit: halfway values round to even, values beyond the range clamp, on several threads.
TEST(QuantizeImagesTest, EqualsLibTorchsQuantizePerTensor) {
  torch::set_num_threads(default_thread_count());
  torch::manual_seed(6);
  constexpr double kScale = 0.0173;
  constexpr int64_t kZero = 114;
  const at::Tensor halves = (torch::arange(-130, 150) + 0.5) * float(kScale);
  for (const at::Tensor& images :
       {torch::randn({4, 3, 64, 64}) * 1.5, halves, torch::tensor({-1e9f, -3.0f, 0.0f, 3.0f, 1e9f}),
        torch::randn({3, 64, 2, 2}).permute({1, 0, 2, 3})}) {
    const at::Tensor expected = at::quantize_per_tensor(images, kScale, kZero, torch::kQUInt8);
    const at::Tensor actual = quantize_images(images, kScale, kZero);
    ASSERT_EQ(actual.sizes(), images.sizes());
    EXPECT_EQ(actual.q_scale(), kScale);
    EXPECT_EQ(actual.q_zero_point(), kZero);
    EXPECT_TRUE(torch::equal(actual.int_repr(), expected.int_repr()))
        << (actual.int_repr().to(torch::kInt) - expected.int_repr().to(torch::kInt)).abs().max();
  }
}

// Collects what is logged while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() { std::erase(spdlog::default_logger()->sinks(), sink_); }
  std::string text() const { return stream_.str(); }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

size_t count_of(const std::string& text, const std::string& words) {
  size_t count = 0;
  for (size_t at = text.find(words); at != std::string::npos; at = text.find(words, at + 1))
    ++count;
  return count;
}

TEST(Int8FallbackTest, AStepFailingInInt8RunsInFp32WithOneWarning) {
  torch::set_num_threads(default_thread_count());
  constexpr int kSide = 32;
  Backbone backbone = random_backbone("small_cnn");
  Calibration calibration(backbone, kSide, kSide);
  torch::manual_seed(6);
  calibration.observe(torch::randn({8, 3, kSide, kSide}));
  Backbone int8 = calibration.quantize(RangeObserver::Percentile);
  ::setenv("GARMENTNET_TEST_FAIL_INT8_STEP", "0", 1);
  Backbone failing = calibration.quantize(RangeObserver::Percentile);
  ::unsetenv("GARMENTNET_TEST_FAIL_INT8_STEP");

  const LogCapture log;
  torch::InferenceMode guard;
  for (int64_t batch : {4, 1, 4}) {
    const at::Tensor images = torch::randn({batch, 3, kSide, kSide});
    const at::Tensor fp32 = calibration.fp32_features(images);
    const at::Tensor answer = failing->forward(images);
    ASSERT_EQ(answer.sizes(), fp32.sizes());
    EXPECT_GT(sqnr_db(fp32, answer), 18.0);
    // The step in fp32 between a dequantize and a quantize rounds as oneDNN's int8 does.
    EXPECT_GT(sqnr_db(int8->forward(images), answer), 40.0);
  }
  EXPECT_EQ(count_of(log.text(), "int8 step 0 (conv 3x3 3→"), 1u) << log.text();
  EXPECT_EQ(count_of(log.text(), "it runs in fp32 from now on"), 1u) << log.text();
  const std::vector<std::string> routed = int8_steps_routed_around(failing);
  ASSERT_FALSE(routed.empty());
  EXPECT_EQ(routed.front(), "step 0 (conv 3x3 3→32): runs in fp32");
  EXPECT_EQ(int8_steps_routed_around(int8), std::vector<std::string>{});
}

TEST(Int8ModelFileTest, RoundTripsStatesItsPrecisionAndRunsInThePredictor) {
  torch::set_num_threads(default_thread_count());
  TempDir dir;
  constexpr int kSide = 32;
  const auto fp32_path =
      testing::write_random_model(dir / "fp32.gnm", random_backbone("small_cnn"), kSide);
  // Calibrated on images like those the Predictor gets below.
  ModelBundle int8 = testing::int8_copy(load_model_file(fp32_path));
  const auto int8_path = dir / "int8.gnm";
  save_model_file(int8, int8_path);

  const nlohmann::json document = read_model_file_document(int8_path);
  EXPECT_EQ(document["precision"], "int8");
  EXPECT_EQ(read_model_file_document(fp32_path)["precision"], "fp32");
  EXPECT_EQ(document["architecture"]["backbone"]["quantized_from"]["architecture"], "small_cnn");
  EXPECT_GT(double(std::filesystem::file_size(fp32_path)),
            3.5 * double(std::filesystem::file_size(int8_path)));

  ModelBundle loaded = load_model_file(int8_path);
  ASSERT_TRUE(is_quantized(loaded.model->backbone()));
  const at::Tensor images = torch::randn({3, 3, kSide, kSide});
  {
    torch::InferenceMode guard;
    EXPECT_TRUE(torch::equal(int8.model->features(images), loaded.model->features(images)));
  }

  // The Predictor runs it as it is (no TorchScript graph) and answers like the loaded model.
  const Predictor predictor(int8_path);
  EXPECT_FALSE(predictor.optimized());
  const auto pictures = testing::random_images(2, kSide);
  const HeadProbabilities probabilities = predictor.predict(pictures);
  torch::InferenceMode guard;
  const HeadOutputs expected =
      head_probabilities(loaded.model->spec(),
                         loaded.model->forward(make_input_batch(pictures, loaded.preprocessing)));
  for (const auto& head : {"cc3", "tags"}) {
    const at::Tensor actual =
        torch::tensor(probabilities.at(head)).reshape(expected.at(head).sizes());
    EXPECT_TRUE(torch::allclose(actual, expected.at(head), 1e-5, 1e-6)) << head;
  }
}

TEST(Int8ModelFileTest, CalibratingLeavesTheCallersBackboneTrainable) {
  Backbone backbone = random_backbone("small_cnn");
  for (const auto& parameter : backbone->parameters()) ASSERT_TRUE(parameter.requires_grad());
  Calibration calibration(backbone, 16, 16);
  for (const auto& parameter : backbone->parameters()) EXPECT_TRUE(parameter.requires_grad());
}

TEST(Int8ModelFileTest, AnUnknownObserverOrAnOutputOutsideTheProgramIsACorruptFile) {
  Backbone backbone = random_backbone("small_cnn");
  Calibration calibration(backbone, 16, 16);
  calibration.observe(torch::randn({2, 3, 16, 16}));
  const nlohmann::json architecture = calibration.quantize(RangeObserver::MinMax)->architecture();
  EXPECT_NO_THROW(quantized_backbone_from_architecture(architecture, "m.gnm"));
  nlohmann::json unknown_observer = architecture;
  unknown_observer["observer"] = "histogram";
  EXPECT_NE(testing::error_of([&] {
              quantized_backbone_from_architecture(unknown_observer, "m.gnm");
            }).find("m.gnm is a corrupt int8 model (unknown observer 'histogram')"),
            std::string::npos);
  nlohmann::json outside = architecture;
  outside["program"]["output"] = architecture["program"]["values"].get<int>() + 3;
  EXPECT_NE(testing::error_of([&] {
              quantized_backbone_from_architecture(outside, "m.gnm");
            }).find("m.gnm is a corrupt int8 model (its output value"),
            std::string::npos);
}

TEST(Int8ModelFileTest, AnInt8BackboneIsNotQuantizedAgain) {
  Backbone backbone = random_backbone("small_cnn");
  Calibration calibration(backbone, 16, 16);
  calibration.observe(torch::randn({2, 3, 16, 16}));
  const Backbone int8 = calibration.quantize(RangeObserver::MinMax);
  EXPECT_NE(testing::error_of([&] { Calibration again(int8, 16, 16); }).find("already int8"),
            std::string::npos);
}

}  // namespace
}  // namespace garmentnet
