// The TF-Serving REST routes, black-box over HTTP against a server on 127.0.0.1.
#include <gtest/gtest.h>

#include <cstdio>

#include "infer/predictor.h"
#include "serve_fixture.h"

namespace garmentnet::testing {
namespace {

nlohmann::json json_of(const httplib::Result& result) {
  EXPECT_TRUE(result) << "no HTTP answer";
  return result ? nlohmann::json::parse(result->body) : nlohmann::json();
}

// The reference: the same image through Predictor directly (the path `predict` uses).
HeadProbabilities direct_prediction(const std::string& jpeg) {
  const Predictor predictor(tiny_model());
  return predictor.predict(
      {resize_for_model(decode_image(jpeg, "sample"), predictor.preprocessing())});
}

void expect_same(const nlohmann::json& row, const HeadProbabilities& expected, double tolerance) {
  for (const auto& [head, values] : expected) {
    ASSERT_EQ(row.at(head).size(), values.size()) << head;
    for (size_t i = 0; i < values.size(); ++i)
      EXPECT_NEAR(row[head][i].get<double>(), values[i], tolerance) << head;
  }
}

TEST(ServeApi, ModelStatusAndMetadata) {
  RunningServer server(quick_serve_options());
  auto client = server.client();
  const auto status = json_of(client->Get("/v1/models/garments"));
  ASSERT_EQ(status["model_version_status"].size(), 1u);
  EXPECT_EQ(status["model_version_status"][0]["version"], "1");
  EXPECT_EQ(status["model_version_status"][0]["state"], "AVAILABLE");
  EXPECT_EQ(
      json_of(client->Get("/v1/models/garments/versions/1"))["model_version_status"][0]["state"],
      "AVAILABLE");

  const auto metadata = json_of(client->Get("/v1/models/garments/metadata"));
  EXPECT_EQ(metadata["model_spec"]["version"], "1");
  const auto& heads = metadata["metadata"]["garmentnet"]["heads"];
  ASSERT_EQ(heads.size(), 2u);
  EXPECT_EQ(heads[0]["name"], "cc3");
  EXPECT_EQ(heads[0]["classes"][0], "BLOUSES");
  EXPECT_EQ(heads[1]["classes"].size(), 3u);
  EXPECT_EQ(metadata["metadata"]["garmentnet"]["preprocessing"]["width"], 32);
  EXPECT_TRUE(metadata["metadata"]["signature_def"]["signature_def"].contains("serving_default"));

  const auto unknown = client->Get("/v1/models/shoes");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_TRUE(json_of(unknown).contains("error"));
  EXPECT_EQ(client->Get("/v1/models/garments/versions/9")->status, 404);
  EXPECT_EQ(client->Get("/healthz")->status, 200);
  EXPECT_EQ(client->Get("/readyz")->status, 200);
  EXPECT_EQ(client->Get("/nowhere")->status, 404);
}

TEST(ServeApi, PredictRowFormatMatchesThePredictor) {
  RunningServer server(quick_serve_options());
  const std::string a = sample_jpeg(0), b = sample_jpeg(1);
  const auto result =
      server.client()->Post("/v1/models/garments:predict",
                            predict_body({b64_instance(a), b64_instance(b)}), "application/json");
  ASSERT_EQ(result->status, 200) << result->body;
  const auto answer = json_of(result);
  ASSERT_EQ(answer["predictions"].size(), 2u);
  for (const auto& row : answer["predictions"]) {
    EXPECT_EQ(row["cc3"].size(), 5u);
    EXPECT_EQ(row["tags"].size(), 3u);
    double sum = 0;
    for (const auto& p : row["cc3"]) sum += p.get<double>();
    EXPECT_NEAR(sum, 1.0, 1e-4);
  }
  expect_same(answer["predictions"][0], direct_prediction(a), 1e-5);
  expect_same(answer["predictions"][1], direct_prediction(b), 1e-5);
  EXPECT_EQ(result->get_header_value("X-Model-Version"), "1");
}

TEST(ServeApi, ColumnarInputsAndVersionedPath) {
  RunningServer server(quick_serve_options());
  const std::string jpeg = sample_jpeg(2);
  const nlohmann::json body = {{"inputs", {b64_instance(jpeg)}}};
  const auto result = server.client()->Post("/v1/models/garments/versions/1:predict", body.dump(),
                                            "application/json");
  ASSERT_EQ(result->status, 200) << result->body;
  const auto answer = json_of(result);
  ASSERT_TRUE(answer.contains("outputs"));
  nlohmann::json row = {{"cc3", answer["outputs"]["cc3"][0]},
                        {"tags", answer["outputs"]["tags"][0]}};
  expect_same(row, direct_prediction(jpeg), 1e-5);
  // Named input, as TF-Serving clients send it.
  const nlohmann::json named = {{"inputs", {{"images", {b64_instance(jpeg)}}}}};
  EXPECT_EQ(server.client()
                ->Post("/v1/models/garments:predict", named.dump(), "application/json")
                ->status,
            200);
  EXPECT_EQ(server.client()
                ->Post("/v1/models/garments/versions/2:predict", body.dump(), "application/json")
                ->status,
            404);
}

TEST(ServeApi, PixelArraysAsIntegersOrFloatsGiveTheSamePrediction) {
  RunningServer server(quick_serve_options());
  const std::string jpeg = sample_jpeg(3);
  const cv::Mat rgb = decode_image(jpeg, "sample");
  const auto ints = json_of(server.client()->Post(
      "/v1/models/garments:predict", predict_body({pixel_array(rgb, false)}), "application/json"));
  const auto floats = json_of(server.client()->Post(
      "/v1/models/garments:predict", predict_body({pixel_array(rgb, true)}), "application/json"));
  const HeadProbabilities expected = direct_prediction(jpeg);
  expect_same(ints["predictions"][0], expected, 1e-5);
  expect_same(floats["predictions"][0], expected, 1e-5);
}

// The original notebook's client, unchanged apart from host and port: Python `requests` posting
// x.tolist() for x of shape (1, 301, 217, 3) with values / 255.
TEST(ServeApi, NotebookClientWorksUnchanged) {
  RunningServer server(quick_serve_options());
  const std::string script = R"PY(
import json, sys
import numpy as np
import requests
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(1, 301, 217, 3)).astype("float32") / 255
url = "http://127.0.0.1:%s/v1/models/garments:predict" % sys.argv[1]
r = requests.post(url, data=json.dumps({"signature_name": "serving_default", "instances": x.tolist()}))
pred = json.loads(r.content.decode("utf-8"))["predictions"]
print(r.status_code, len(pred), len(pred[0]["cc3"]), len(pred[0]["tags"]), round(sum(pred[0]["cc3"]), 3))
)PY";
  TempDir dir;
  const auto path = dir / "client.py";
  std::FILE* file = std::fopen(path.c_str(), "w");
  std::fputs(script.c_str(), file);
  std::fclose(file);
  const std::string command =
      "/usr/bin/python3 " + path.string() + " " + std::to_string(server.port()) + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  EXPECT_EQ(::pclose(pipe), 0) << output;
  EXPECT_EQ(output, "200 1 5 3 1.0\n");
}

}  // namespace
}  // namespace garmentnet::testing
