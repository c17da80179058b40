// `garmentnet export --format torchscript`: the file loads with torch::jit::load and with Python's
// torch, carries its class names, thresholds and preprocessing, and predicts what `predict` does,
// for fp32 and int8 models alike.
#include "infer/export.h"

#include <gtest/gtest.h>
#include <torch/script.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "infer/predictor.h"
#include "model/input.h"
#include "model_fixture.h"
#include "test_support.h"

namespace garmentnet {
namespace {

using testing::TempDir;

struct Exported {
  std::filesystem::path model;
  std::filesystem::path script;
};

// A random small_cnn model file ("fp32") or its int8 copy ("int8") exported through the command
// line, once per test process.
const Exported& exported(const std::string& precision) {
  static TempDir dir;
  static std::map<std::string, Exported> files;
  if (const auto found = files.find(precision); found != files.end()) return found->second;
  Exported e{.model = testing::write_random_model(dir / "model.gnm", "small_cnn", 32),
             .script = dir / (precision + ".pt")};
  if (precision == "int8") {
    e.model = dir / "model-int8.gnm";
    save_model_file(testing::int8_copy(load_model_file(dir / "model.gnm")), e.model);
  }
  const auto result =
      testing::run_garmentnet("export --model '" + e.model.string() +
                              "' --format torchscript --out '" + e.script.string() + "'");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  return files.emplace(precision, e).first->second;
}

class ExportTorchScript : public ::testing::TestWithParam<std::string> {};

void write_floats(const std::filesystem::path& path, const torch::Tensor& tensor) {
  const torch::Tensor contiguous = tensor.contiguous();
  write_file_atomically(path,
                        std::string(reinterpret_cast<const char*>(contiguous.data_ptr<float>()),
                                    contiguous.numel() * sizeof(float)));
}

TEST_P(ExportTorchScript, LoadsInCppWithAttributesAndPredictsLikePredict) {
  const Exported& e = exported(GetParam());
  torch::jit::ExtraFilesMap extra{{"garmentnet.json", ""}};
  torch::jit::Module module = torch::jit::load(e.script.string(), torch::kCPU, extra);
  module.eval();  // what TorchServe does; needs the training attribute

  const Predictor predictor(e.model);
  EXPECT_EQ(module.attr("head_names").toListRef().size(), 2u);
  EXPECT_EQ(module.attr("head_names").toList().get(0).toStringRef(), "cc3");
  EXPECT_EQ(module.attr("head_kinds").toList().get(1).toStringRef(), "multilabel");
  const auto labels = module.attr("labels").toGenericDict();
  EXPECT_EQ(labels.at("tags").toList().get(0).toStringRef(), "polka dot");
  EXPECT_EQ(labels.at("cc3").toList().get(4).toStringRef(), "TANK_TOPS");
  const auto thresholds = module.attr("thresholds").toGenericDict().at("tags").toDoubleList();
  ASSERT_EQ(thresholds.size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_DOUBLE_EQ(thresholds.get(i), predictor.thresholds("tags")[i]);
  EXPECT_EQ(module.attr("input_size").toIntVector(), (std::vector<int64_t>{32, 32}));
  EXPECT_NEAR(module.attr("mean").toDoubleList().get(0), 0.485, 1e-6);
  EXPECT_EQ(module.attr("resize").toStringRef(), "stretch");
  EXPECT_EQ(module.attr("shrink").toStringRef(), "linear");

  const auto description = nlohmann::json::parse(extra["garmentnet.json"]);
  EXPECT_EQ(description["outputs"][0]["head"], "cc3");
  EXPECT_EQ(description["outputs"][1]["values"], "probabilities");
  EXPECT_EQ(description["input"]["height"], 32);
  EXPECT_EQ(description["task_spec"]["id_column"], "uuid");

  for (size_t batch : {1u, 3u, 8u}) {
    const auto images = testing::random_images(batch, 32, batch);
    const HeadProbabilities expected = predictor.predict(images);
    torch::NoGradGuard no_grad;
    const auto outputs = module.forward({make_input_batch(images, predictor.preprocessing())})
                             .toTupleRef()
                             .elements();
    ASSERT_EQ(outputs.size(), 2u);
    size_t head_index = 0;
    for (const char* head : {"cc3", "tags"}) {
      const torch::Tensor actual = outputs[head_index++].toTensor().contiguous();
      const std::vector<float>& reference = expected.at(head);
      ASSERT_EQ(static_cast<size_t>(actual.numel()), reference.size()) << head;
      const torch::Tensor reference_tensor =
          torch::from_blob(const_cast<float*>(reference.data()), actual.sizes(), torch::kFloat);
      EXPECT_LT((actual - reference_tensor).abs().max().item<double>(), 1e-5)
          << head << " batch " << batch;
    }
  }
}

TEST_P(ExportTorchScript, PythonLoadsItAndGetsTheSameOutputs) {
  if (std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  const Exported& e = exported(GetParam());
  TempDir dir;
  const Predictor predictor(e.model);
  const auto images = testing::random_images(5, 32, 11);
  const torch::Tensor input = make_input_batch(images, predictor.preprocessing());
  write_floats(dir / "input.f32", input);
  const HeadProbabilities expected = predictor.predict(images);
  nlohmann::json description = {{"input_shape", input.sizes().vec()},
                                {"head_names", {"cc3", "tags"}},
                                {"head_kinds", {"softmax", "multilabel"}},
                                {"labels",
                                 {{"cc3", predictor.spec().head("cc3").classes},
                                  {"tags", predictor.spec().head("tags").classes}}},
                                {"thresholds", {{"tags", predictor.thresholds("tags")}}},
                                {"input_size", {32, 32}},
                                {"mean", predictor.preprocessing().mean},
                                {"std", predictor.preprocessing().std},
                                {"resize", "stretch"},
                                {"shrink", "linear"},
                                {"heads", {{"cc3", {5, 5}}, {"tags", {5, 3}}}}};
  write_file_atomically(dir / "expected.json", description.dump());
  for (const char* head : {"cc3", "tags"}) {
    const std::vector<float>& values = expected.at(head);
    write_file_atomically(
        dir / (std::string(head) + ".f32"),
        std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  }
  const std::string command = std::string("/usr/bin/python3 ") + GARMENTNET_SOURCE_DIR +
                              "/tests/python/check_torchscript_export.py '" + e.script.string() +
                              "' '" + dir.path().string() + "' 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

INSTANTIATE_TEST_SUITE_P(Precisions, ExportTorchScript, ::testing::Values("fp32", "int8"));

TEST(ExportTorchScriptErrors, ClearErrors) {
  TempDir dir;
  write_file_atomically(dir / "not-a-model.gnm", "hello");
  EXPECT_THROW(export_model({.model = dir / "not-a-model.gnm", .out = dir / "out.pt"}), InputError);
  EXPECT_THROW(
      export_model({.model = exported("fp32").model, .format = "onnx", .out = dir / "out.pt"}),
      InputError);
  const auto result =
      testing::run_garmentnet("export --model '" + (dir / "not-a-model.gnm").string() +
                              "' --out '" + (dir / "out.pt").string() + "'");
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("not-a-model.gnm"), std::string::npos) << result.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "out.pt"));
}

}  // namespace
}  // namespace garmentnet
