// The image route, KServe v2 and the web page files, black-box over HTTP.
#include <gtest/gtest.h>

#include "infer/predictor.h"
#include "serve_fixture.h"

namespace garmentnet::testing {
namespace {

nlohmann::json json_of(const httplib::Result& result) {
  EXPECT_TRUE(result);
  return result ? nlohmann::json::parse(result->body) : nlohmann::json();
}

std::vector<float> direct_categories(const std::string& jpeg) {
  const Predictor predictor(tiny_model());
  return predictor
      .predict({resize_for_model(decode_image(jpeg, "sample"), predictor.preprocessing())})
      .at("cc3");
}

TEST(ServeRoutes, ClassifyImageRawAndMultipartNameTopTwoAndTags) {
  RunningServer server(quick_serve_options());
  auto client = server.client();
  const std::string jpeg = sample_jpeg(4);
  const std::vector<float> p = direct_categories(jpeg);
  const size_t best = std::max_element(p.begin(), p.end()) - p.begin();
  const std::vector<std::string> classes = {"BLOUSES", "CASUAL_DRESSES", "MINI_DRESSES", "SHIRTS",
                                            "TANK_TOPS"};

  const auto raw = json_of(client->Post("/v1/models/garments:classify-image", jpeg, "image/jpeg"));
  httplib::MultipartFormDataItems form = {{"image", jpeg, "photo.jpeg", "image/jpeg"}};
  const auto multipart = json_of(client->Post("/v1/models/garments:classify-image", form));
  for (const auto& answer : {raw, multipart}) {
    ASSERT_EQ(answer["categories"].size(), 2u) << answer.dump();
    EXPECT_EQ(answer["categories"][0]["name"], classes[best]);
    EXPECT_NEAR(answer["categories"][0]["probability"].get<double>(), p[best], 1e-5);
    EXPECT_GE(answer["categories"][0]["probability"].get<double>(),
              answer["categories"][1]["probability"].get<double>());
    ASSERT_EQ(answer["tags"].size(), 3u);
    EXPECT_EQ(answer["tags"][0]["name"], "polka dot");
    for (const auto& tag : answer["tags"]) {
      EXPECT_EQ(tag["present"].get<bool>(),
                tag["probability"].get<double>() >= tag["threshold"].get<double>());
    }
    EXPECT_EQ(answer["model"]["version"], 1);
    EXPECT_GE(answer["latency_ms"].get<double>(), 0.0);
  }
  EXPECT_EQ(
      client->Post("/v1/models/garments:classify-image", "not an image", "image/jpeg")->status,
      400);
  EXPECT_EQ(client->Post("/v1/models/garments:classify-image", "{}", "application/json")->status,
            400);
  EXPECT_EQ(client->Post("/v1/models/garments:classify-image", "", "image/jpeg")->status, 400);
}

TEST(ServeRoutes, KServeV2HealthMetadataAndInfer) {
  RunningServer server(quick_serve_options());
  auto client = server.client();
  EXPECT_EQ(client->Get("/v2/health/live")->status, 200);
  EXPECT_EQ(client->Get("/v2/health/ready")->status, 200);
  EXPECT_EQ(client->Get("/v2/models/garments/ready")->status, 200);
  EXPECT_EQ(client->Get("/v2/models/shoes/ready")->status, 404);
  const auto metadata = json_of(client->Get("/v2/models/garments"));
  EXPECT_EQ(metadata["versions"][0], "1");
  EXPECT_EQ(metadata["outputs"][0]["name"], "cc3");
  EXPECT_EQ(metadata["outputs"][0]["shape"][1], 5);

  const std::string jpeg = sample_jpeg(5);
  const std::vector<float> expected = direct_categories(jpeg);
  const cv::Mat rgb = decode_image(jpeg, "sample");
  std::vector<int> flat(rgb.data, rgb.data + rgb.total() * 3);
  const nlohmann::json uint8_request = {{"id", "r1"},
                                        {"inputs",
                                         {{{"name", "images"},
                                           {"datatype", "UINT8"},
                                           {"shape", {1, rgb.rows, rgb.cols, 3}},
                                           {"data", flat}}}}};
  const nlohmann::json bytes_request = {
      {"inputs",
       {{{"name", "images"},
         {"datatype", "BYTES"},
         {"shape", {2}},
         {"data", {b64_instance(jpeg)["b64"], b64_instance(jpeg)["b64"]}}}}},
      {"outputs", {{{"name", "cc3"}}}}};
  const auto from_pixels =
      json_of(client->Post("/v2/models/garments/infer", uint8_request.dump(), "application/json"));
  EXPECT_EQ(from_pixels["id"], "r1");
  EXPECT_EQ(from_pixels["model_version"], "1");
  ASSERT_EQ(from_pixels["outputs"].size(), 2u) << from_pixels.dump();
  EXPECT_EQ(from_pixels["outputs"][0]["shape"], nlohmann::json({1, 5}));
  for (size_t i = 0; i < 5; ++i)
    EXPECT_NEAR(from_pixels["outputs"][0]["data"][i].get<double>(), expected[i], 1e-5);
  const auto from_bytes = json_of(client->Post("/v2/models/garments/versions/1/infer",
                                               bytes_request.dump(), "application/json"));
  ASSERT_EQ(from_bytes["outputs"].size(), 1u) << from_bytes.dump();  // only the requested output
  EXPECT_EQ(from_bytes["outputs"][0]["shape"], nlohmann::json({2, 5}));
  EXPECT_NEAR(from_bytes["outputs"][0]["data"][5].get<double>(), expected[0], 1e-5);

  nlohmann::json wrong = uint8_request;
  wrong["inputs"][0]["shape"] = {1, rgb.rows, rgb.cols, 4};
  EXPECT_EQ(client->Post("/v2/models/garments/infer", wrong.dump(), "application/json")->status,
            400);
  wrong = uint8_request;
  wrong["inputs"][0]["data"] = {1, 2, 3};
  EXPECT_EQ(client->Post("/v2/models/garments/infer", wrong.dump(), "application/json")->status,
            400);
  wrong["inputs"][0]["datatype"] = "FP16";
  EXPECT_EQ(client->Post("/v2/models/garments/infer", wrong.dump(), "application/json")->status,
            400);
  EXPECT_EQ(
      client->Post("/v2/models/garments/versions/4/infer", uint8_request.dump(), "application/json")
          ->status,
      404);
}

TEST(ServeRoutes, WebPageAndItsFilesAreServedFromTheBinary) {
  RunningServer server(quick_serve_options());
  auto client = server.client();
  const auto page = client->Get("/");
  ASSERT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(page->body.find("/web/app.js"), std::string::npos);
  EXPECT_EQ(client->Get("/web/app.js")->status, 200);
  EXPECT_EQ(client->Get("/web/style.css")->status, 200);
  EXPECT_NE(client->Get("/web/../../etc/passwd")->status, 200);
  EXPECT_EQ(client->Get("/web/missing.js")->status, 404);
  const auto models = json_of(client->Get("/v1/models"));
  EXPECT_EQ(models["models"][0]["name"], "garments");
}

}  // namespace
}  // namespace garmentnet::testing
