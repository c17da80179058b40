// What the routes refuse or accept beyond well-formed requests: loose KServe tensors, unknown
// TF-Serving inputs, the Authorization scheme in any case, the order of the checks every
// prediction route shares, errors by kind, and the image route deciding as `predict` decides.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "eval/metrics.h"
#include "serve/service.h"
#include "serve_fixture.h"

namespace garmentnet::testing {
namespace {

constexpr const char* kPredict = "/v1/models/garments:predict";
constexpr const char* kClassify = "/v1/models/garments:classify-image";
constexpr const char* kInfer = "/v2/models/garments/infer";

nlohmann::json uint8_input(const nlohmann::json& shape, const nlohmann::json& data) {
  return {
      {"inputs", {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", shape}, {"data", data}}}}};
}

TEST(ServeStrictness, KServeTensorsMustMatchTheirShapeAndDatatype) {
  RunningServer server(quick_serve_options());
  auto client = server.client();
  const std::vector<int> twelve(12, 7);
  const struct {
    std::string what;
    nlohmann::json body;
    std::string message;
  } cases[] = {
      {"a fractional size in the shape", uint8_input({1, 2.5, 2, 3}, twelve), "shape"},
      {"a fraction in UINT8 data",
       uint8_input({1, 2, 2, 3}, {1.5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}), "integers"},
      {"BYTES shape [2] with one element",
       {{"inputs",
         {{{"name", "images"},
           {"datatype", "BYTES"},
           {"shape", {2}},
           {"data", {encode_base64(sample_jpeg(0))}}}}}},
       "holds 1 element(s) but its shape says 2"},
  };
  for (const auto& c : cases) {
    const auto result = client->Post(kInfer, c.body.dump(), "application/json");
    ASSERT_TRUE(result) << c.what;
    EXPECT_EQ(result->status, 400) << c.what << ": " << result->body;
    EXPECT_NE(result->body.find(c.message), std::string::npos) << c.what << ": " << result->body;
  }
  EXPECT_EQ(
      client->Post(kInfer, uint8_input({1, 2, 2, 3}, twelve).dump(), "application/json")->status,
      200);
}

TEST(ServeStrictness, TfServingRefusesUnknownInputsAndExtraKeys) {
  RunningServer server(quick_serve_options());
  auto client = server.client();
  const nlohmann::json image = b64_instance(sample_jpeg(0));
  const auto list = [](const nlohmann::json& element) { return nlohmann::json::array({element}); };
  nlohmann::json with_extra = image;
  with_extra["x"] = 1;
  const struct {
    nlohmann::json body;
    int status;
  } cases[] = {
      {{{"inputs", {{"foo", list(image)}}}}, 400},
      {{{"instances", list({{"foo", image}})}}, 400},
      {{{"instances", list(with_extra)}}, 400},
      {{{"inputs", {{"images", list(image)}}}}, 200},
      {{{"instances", list({{"images", image}})}}, 200},
  };
  for (const auto& c : cases) {
    const auto result = client->Post(kPredict, c.body.dump(), "application/json");
    ASSERT_TRUE(result) << c.body.dump();
    EXPECT_EQ(result->status, c.status) << c.body.dump().substr(0, 80) << ": " << result->body;
  }
}

TEST(ServeStrictness, EveryPredictionRouteChecksKeyThenModelThenBody) {
  ServeOptions options = quick_serve_options();
  options.api_key = "s3cret";
  RunningServer server(options);
  auto client = server.client();
  const std::string json = predict_body({b64_instance(sample_jpeg(0))});
  for (const std::string route : {kPredict, kClassify, kInfer}) {
    std::string unknown = route;
    unknown.replace(unknown.find("garments"), 8, "shoes");
    // The key first, even for a model this server does not have.
    EXPECT_EQ(client->Post(unknown, json, "application/json")->status, 401) << route;
    for (const char* authorization : {"bearer s3cret", "BEARER   s3cret", "Bearer s3cret"}) {
      const httplib::Headers key = {{"Authorization", authorization}};
      EXPECT_EQ(client->Post(unknown, key, json, "application/json")->status, 404) << route;
      const auto empty = client->Post(route, key, "", "application/octet-stream");
      EXPECT_EQ(empty->status, 400) << route;
      EXPECT_NE(empty->body.find("empty request body"), std::string::npos) << empty->body;
    }
    for (const char* authorization : {"Basic s3cret", "Bearer", "Bearer ", "bearer wrong"}) {
      EXPECT_EQ(
          client->Post(route, {{"Authorization", authorization}}, json, "application/json")->status,
          401)
          << route << " with " << authorization;
    }
  }
}

TEST(ServeStrictness, ErrorsAnswerByKindWithoutServerPaths) {
  ModelRegistryOptions models;
  models.base_path = "/srv/models/garments";
  const auto answer = [&](const std::exception& error) {
    const HttpResponse response = error_response(error, models);
    return std::make_pair(response.status,
                          nlohmann::json::parse(response.body)["error"].get<std::string>());
  };
  const auto [input_status, input_message] =
      answer(InputError("/srv/models/garments/3/model.gnm is not a garmentnet model file"));
  EXPECT_EQ(input_status, 400);
  EXPECT_EQ(input_message, "3/model.gnm is not a garmentnet model file");
  const auto [internal_status, internal_message] =
      answer(InternalError("tensor shape mismatch in /home/build/src/serve/batcher.cpp"));
  EXPECT_EQ(internal_status, 500);
  EXPECT_NE(internal_message.find("not of the request"), std::string::npos) << internal_message;
  EXPECT_NE(internal_message.find("in batcher.cpp"), std::string::npos) << internal_message;
  EXPECT_EQ(internal_message.find("/home/build"), std::string::npos) << internal_message;
  EXPECT_EQ(answer(std::runtime_error("anything else")).first, 500);
  EXPECT_EQ(answer(std::out_of_range("a library's own exception")).first, 500);
  EXPECT_EQ(answer(HttpError(404, "no such model")).first, 404);
}

TEST(ServeStrictness, TheImageRouteDecidesAsPredictDoes) {
  HeadSpec categories;
  categories.name = "cc3";
  categories.classes = {"A", "B", "C", "D"};
  const float nan = std::nanf("");
  const std::vector<float> p = {nan, 0.2f, 0.7f, 0.1f};
  const nlohmann::json top = softmax_head_json(categories, p);
  const auto expected = top2_classes(p, p.size()).front();
  ASSERT_EQ(top.size(), 2u) << top.dump();
  // NaN ranks below every number, as in `predict`.
  EXPECT_EQ(top[0]["index"], expected[0]);
  EXPECT_EQ(top[1]["index"], expected[1]);
  EXPECT_EQ(top[0]["name"], "C");
  EXPECT_EQ(top[1]["name"], "B");

  HeadSpec tags;
  tags.name = "tags";
  tags.classes = {"x", "y", "z"};
  const std::vector<float> t = {0.5f, nan, 0.49f};
  const std::vector<double> thresholds = {0.5, 0.1, 0.5};
  const nlohmann::json decided = tag_head_json(tags, t, thresholds);
  const std::vector<int64_t> rule = decide_tags(t, thresholds);
  for (size_t i = 0; i < t.size(); ++i) EXPECT_EQ(decided[i]["present"].get<bool>(), rule[i] == 1);
}

}  // namespace
}  // namespace garmentnet::testing
