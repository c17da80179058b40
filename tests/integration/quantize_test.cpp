// `garmentnet quantize` end to end on the tiny dataset: the int8 file it writes, its side-by-side
// report, its refusal beyond --max-top1-drop, and the int8 model in predict, evaluate, bench and
// serve (also hot-swapped in as a new version). Its TorchScript export: export_test.cpp.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/atomic_file.h"
#include "data/table.h"
#include "model/model_file.h"
#include "predict_fixture.h"
#include "serve_fixture.h"

namespace garmentnet::testing {
namespace {

namespace fs = std::filesystem;

struct Quantized {
  TempDir dir;
  fs::path model;  // int8 model of tiny_model()
  CommandResult run;
};

const Quantized& quantized() {
  static Quantized q;
  static const bool done = [] {
    const auto& fx = predict_fixture();
    q.model = q.dir / "model-int8.gnm";
    q.run = run_garmentnet("quantize --model " + shell_quote(fx.model) + " --calibration " +
                           shell_quote(fx.data) + " --out " + shell_quote(q.model) +
                           " --calibration-images 48 --validation-rows 120 --max-top1-drop 100 "
                           "--threads 2");
    return true;
  }();
  (void)done;
  return q;
}

TEST(QuantizeTest, WritesAnInt8ModelAndShowsItBesideFp32) {
  const Quantized& q = quantized();
  ASSERT_EQ(q.run.exit_code, 0) << q.run.output;
  for (const char* words : {"int8 (minmax)", "int8 (percentile)", "top-1 agreement with fp32",
                            "F1 polka dot", "Chosen: int8", "Wrote "})
    EXPECT_NE(q.run.output.find(words), std::string::npos) << words << "\n" << q.run.output;
  const nlohmann::json document = read_model_file_document(q.model);
  EXPECT_EQ(document["precision"], "int8");
  const nlohmann::json& report = document["metrics"]["quantization"];
  EXPECT_EQ(report["validation_rows"], 120);
  EXPECT_EQ(report["calibration_images"], 48);
  EXPECT_LT(report["fp32_program_max_difference"].get<double>(), 1e-3);
  EXPECT_TRUE(report["steps_routed_around"].is_array()) << report.dump();
  // The thresholds written are the ones re-tuned on the int8 outputs.
  const std::string chosen = report["chosen"];
  for (const auto& candidate : report["int8_candidates"]) {
    if (candidate["precision"] == chosen) {
      EXPECT_EQ(candidate["tags"]["floral"]["threshold"],
                document["tag_thresholds"]["tags"]["floral"]);
    }
  }
  EXPECT_GT(double(fs::file_size(predict_fixture().model)), 3.0 * double(fs::file_size(q.model)));
}

TEST(QuantizeTest, RefusesBeyondMaxTop1DropAndRefusesAnInt8Model) {
  const auto& fx = predict_fixture();
  TempDir dir;
  const CommandResult refused =
      run_garmentnet("quantize --model " + shell_quote(fx.model) + " --calibration " +
                     shell_quote(fx.data) + " --out " + shell_quote(dir / "m.gnm") +
                     " --calibration-images 16 --validation-rows 40 --observer minmax "
                     "--max-top1-drop -100 --threads 2");
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("nothing written"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("int8 (minmax)"), std::string::npos) << refused.output;
  EXPECT_FALSE(fs::exists(dir / "m.gnm"));
  EXPECT_TRUE(fs::is_empty(dir.path())) << "candidate files left behind";

  ASSERT_EQ(quantized().run.exit_code, 0);
  const CommandResult again =
      run_garmentnet("quantize --model " + shell_quote(quantized().model) + " --calibration " +
                     shell_quote(fx.data) + " --out " + shell_quote(dir / "m.gnm"));
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("already int8"), std::string::npos) << again.output;
}

TEST(QuantizeTest, Int8ModelPredictsEvaluatesAndBenches) {
  const Quantized& q = quantized();
  ASSERT_EQ(q.run.exit_code, 0) << q.run.output;
  const auto& fx = predict_fixture();
  TempDir dir;
  const CommandResult predicted =
      run_garmentnet("predict --model " + shell_quote(q.model) + " --input " +
                     shell_quote(fx.data / "test.parquet") + " --images " + shell_quote(fx.images) +
                     " --output " + shell_quote(dir / "p.parquet"));
  ASSERT_EQ(predicted.exit_code, 0) << predicted.output;
  EXPECT_EQ(read_table(dir / "p.parquet").num_rows(),
            read_table(fx.data / "test.parquet").num_rows());

  const CommandResult evaluated = run_garmentnet(
      "evaluate --model " + shell_quote(q.model) + " --labels " +
      shell_quote(fx.data / "test_labels.parquet") + " --images " + shell_quote(fx.images) +
      " --out " + shell_quote(dir / "evaluation") + " --bench-seconds 0.01 --no-report");
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.output;
  EXPECT_NE(evaluated.output.find("top-1 accuracy"), std::string::npos) << evaluated.output;

  const CommandResult benched = run_garmentnet(
      "bench --model " + shell_quote(q.model) + " --compare " + shell_quote(fx.model) +
      " --quick --seconds 0.01 --latency-runs 3 --batch-sizes 1,4 --end-to-end-batch 4 "
      "--max-images 8 --threads 2");
  ASSERT_EQ(benched.exit_code, 0) << benched.output;
  for (const char* words : {"int8 (oneDNN, fused)", "Side by side, same run", "forward, batch 4",
                            "model file", "FLOPs not counted (an int8 model is not traced)"})
    EXPECT_NE(benched.output.find(words), std::string::npos) << words << "\n" << benched.output;
}

TEST(QuantizeTest, ServeAnswersWithAnInt8ModelHotSwappedInAsANewVersion) {
  const Quantized& q = quantized();
  ASSERT_EQ(q.run.exit_code, 0) << q.run.output;
  TempDir dir;
  const fs::path base = dir / "garments";
  fs::create_directories(base / "1");
  fs::copy_file(predict_fixture().model, base / "1" / "model.gnm");
  ServeOptions options = quick_serve_options();
  options.models.model_file.clear();
  options.models.base_path = base;
  RunningServer server(options);
  const std::string body = predict_body({b64_instance(sample_jpeg(0))});
  ASSERT_EQ(server.client()->Post("/v1/models/garments:predict", body, "application/json")->status,
            200);

  fs::create_directories(dir / "staging");
  fs::copy_file(q.model, dir / "staging" / "model.gnm");
  fs::rename(dir / "staging", base / "2");
  int status = 0;
  std::string answer;
  for (int i = 0; i < 200 && status != 200; ++i) {
    const auto result =
        server.client()->Post("/v1/models/garments/versions/2:predict", body, "application/json");
    status = result ? result->status : 0;
    answer = result ? result->body : "";
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(status, 200) << answer;
  const nlohmann::json predictions = nlohmann::json::parse(answer)["predictions"];
  ASSERT_EQ(predictions.size(), 1u);
  EXPECT_EQ(predictions[0]["cc3"].size(), 5u);
  // The newest version, the int8 one, now answers unversioned requests too.
  EXPECT_EQ(server.client()->Post("/v1/models/garments:predict", body, "application/json")->status,
            200);
}

// Concurrent requests batch up to sizes that change from one forward pass to the next; a step that
// fails in int8 (a failure injected at the first convolution) runs in fp32 and every request is
// answered, as the model answers it alone.
TEST(QuantizeTest, ServeAnswersConcurrentRequestsWhenAnInt8StepFails) {
  const Quantized& q = quantized();
  ASSERT_EQ(q.run.exit_code, 0) << q.run.output;
  ServeOptions options = quick_serve_options();
  options.models.model_file = q.model;
  options.batching.max_wait = std::chrono::milliseconds(20);
  ::setenv("GARMENTNET_TEST_FAIL_INT8_STEP", "0", 1);
  RunningServer server(options);
  ::unsetenv("GARMENTNET_TEST_FAIL_INT8_STEP");
  const auto predict = [&](int image) {
    const auto result =
        server.client()->Post("/v1/models/garments:predict",
                              predict_body({b64_instance(sample_jpeg(image))}), "application/json");
    return result ? std::pair{result->status, result->body} : std::pair{0, std::string()};
  };
  std::vector<nlohmann::json> alone;
  for (int image = 0; image < 3; ++image) {
    const auto [status, body] = predict(image);
    ASSERT_EQ(status, 200) << body;
    alone.push_back(nlohmann::json::parse(body)["predictions"][0]);
  }
  std::vector<std::pair<int, std::string>> answers(24);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < answers.size(); ++i)
    clients.emplace_back([&, i] { answers[i] = predict(int(i % 3)); });
  for (auto& client : clients) client.join();
  for (size_t i = 0; i < answers.size(); ++i) {
    ASSERT_EQ(answers[i].first, 200) << answers[i].second;
    const nlohmann::json prediction = nlohmann::json::parse(answers[i].second)["predictions"][0];
    for (const char* head : {"cc3", "tags"})
      for (size_t k = 0; k < alone[i % 3][head].size(); ++k)
        EXPECT_NEAR(prediction[head][k].get<double>(), alone[i % 3][head][k].get<double>(), 0.02)
            << "request " << i << " " << head << " " << k;
  }
}

}  // namespace
}  // namespace garmentnet::testing
