// The image route, KServe v2 and the web page files, black-box over HTTP.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <optional>

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

// The binary tensor data extension: a JSON header of `header_length` bytes, then raw tensor bytes.
httplib::Result post_binary(httplib::Client& client, const nlohmann::json& header,
                            const std::string& tensor_bytes,
                            std::optional<size_t> header_length = std::nullopt) {
  const std::string json = header.dump();
  const httplib::Headers headers = {
      {"Inference-Header-Content-Length", std::to_string(header_length.value_or(json.size()))}};
  return client.Post("/v2/models/garments/infer", headers, json + tensor_bytes,
                     "application/octet-stream");
}

nlohmann::json image_input(const std::string& datatype, std::vector<int64_t> shape,
                           size_t binary_size) {
  return {{"name", "images"},
          {"datatype", datatype},
          {"shape", shape},
          {"parameters", {{"binary_data_size", binary_size}}}};
}

// The outputs of a KServe answer, JSON or binary, as head → values.
std::map<std::string, std::vector<float>> outputs_of(const httplib::Result& result) {
  EXPECT_TRUE(result);
  if (!result) return {};
  EXPECT_EQ(result->status, 200) << result->body;
  const std::string length = result->get_header_value("Inference-Header-Content-Length");
  const size_t json_size = length.empty() ? result->body.size() : std::stoul(length);
  const auto answer = nlohmann::json::parse(result->body.substr(0, json_size));
  std::map<std::string, std::vector<float>> out;
  size_t at = json_size;
  for (const auto& output : answer["outputs"]) {
    std::vector<float>& values = out[output["name"]];
    if (output.contains("data")) {
      values = output["data"].get<std::vector<float>>();
      continue;
    }
    const size_t bytes = output["parameters"]["binary_data_size"];
    values.resize(bytes / sizeof(float));
    std::memcpy(values.data(), result->body.data() + at, bytes);
    at += bytes;
  }
  EXPECT_EQ(at, result->body.size()) << "bytes left over after the binary outputs";
  return out;
}

TEST(ServeRoutes, KServeBinaryTensorsAnswerAsTheirJsonForm) {
  RunningServer server(quick_serve_options());
  auto client = server.client();
  const std::string jpeg = sample_jpeg(5);
  const cv::Mat rgb = decode_image(jpeg, "sample");
  const std::string pixels(reinterpret_cast<const char*>(rgb.data), rgb.total() * 3);
  const std::vector<int64_t> shape = {1, rgb.rows, rgb.cols, 3};
  const auto reference = outputs_of(client->Post(
      "/v2/models/garments/infer",
      nlohmann::json{{"inputs",
                      {{{"name", "images"},
                        {"datatype", "UINT8"},
                        {"shape", shape},
                        {"data", std::vector<int>(rgb.data, rgb.data + rgb.total() * 3)}}}}}
          .dump(),
      "application/json"));
  ASSERT_EQ(reference.size(), 2u);

  // UINT8 pixels in binary.
  const nlohmann::json uint8_header = {{"inputs", {image_input("UINT8", shape, pixels.size())}}};
  EXPECT_EQ(outputs_of(post_binary(*client, uint8_header, pixels)), reference);

  // FP32 pixels in [0, 1] in binary.
  std::string floats(pixels.size() * sizeof(float), '\0');
  for (size_t i = 0; i < pixels.size(); ++i) {
    const float value = static_cast<uint8_t>(pixels[i]) / 255.0f;
    std::memcpy(floats.data() + i * sizeof(float), &value, sizeof(float));
  }
  EXPECT_EQ(outputs_of(post_binary(
                *client, {{"inputs", {image_input("FP32", shape, floats.size())}}}, floats)),
            reference);

  // Two encoded JPEGs as BYTES (4-byte little-endian length, then the bytes), answered in binary.
  std::string elements;
  for (int i = 0; i < 2; ++i) {
    const auto length = static_cast<uint32_t>(jpeg.size());
    elements.append(reinterpret_cast<const char*>(&length), 4).append(jpeg);
  }
  const nlohmann::json bytes_header = {{"inputs", {image_input("BYTES", {2}, elements.size())}},
                                       {"parameters", {{"binary_data_output", true}}}};
  const auto binary_answer = post_binary(*client, bytes_header, elements);
  ASSERT_TRUE(binary_answer);
  EXPECT_FALSE(binary_answer->get_header_value("Inference-Header-Content-Length").empty());
  const auto from_bytes = outputs_of(binary_answer);
  const auto json_bytes = outputs_of(client->Post(
      "/v2/models/garments/infer",
      nlohmann::json{{"inputs",
                      {{{"name", "images"},
                        {"datatype", "BYTES"},
                        {"shape", {2}},
                        {"data", {b64_instance(jpeg)["b64"], b64_instance(jpeg)["b64"]}}}}}}
          .dump(),
      "application/json"));
  EXPECT_EQ(from_bytes, json_bytes);
  ASSERT_EQ(from_bytes.at("cc3").size(), 10u);
  EXPECT_NEAR(from_bytes.at("cc3")[5], reference.at("cc3")[0], 1e-5);

  // Binary for one requested output only: cc3 in binary, tags in JSON.
  nlohmann::json mixed = uint8_header;
  mixed["outputs"] = {{{"name", "cc3"}, {"parameters", {{"binary_data", true}}}},
                      {{"name", "tags"}}};
  const auto mixed_answer = post_binary(*client, mixed, pixels);
  ASSERT_TRUE(mixed_answer);
  const size_t json_size =
      std::stoul(mixed_answer->get_header_value("Inference-Header-Content-Length"));
  const auto mixed_json = nlohmann::json::parse(mixed_answer->body.substr(0, json_size));
  EXPECT_FALSE(mixed_json["outputs"][0].contains("data"));
  EXPECT_EQ(mixed_json["outputs"][0]["parameters"]["binary_data_size"], 5 * sizeof(float));
  EXPECT_TRUE(mixed_json["outputs"][1].contains("data"));
  EXPECT_EQ(outputs_of(mixed_answer), reference);

  // Sizes are checked strictly: each case is a 400 whose message says what disagrees.
  struct Case {
    std::string what;
    nlohmann::json header;
    std::string bytes;
    std::optional<size_t> header_length;
    std::string message;
  };
  const auto uint8_with_size = [&](size_t size) {
    return nlohmann::json{{"inputs", {image_input("UINT8", shape, size)}}};
  };
  const std::vector<Case> cases = {
      {"declared size above the bytes sent", uint8_with_size(pixels.size() + 1), pixels,
       std::nullopt, "binary_data_size"},
      {"fewer pixels than the shape", uint8_with_size(pixels.size() - 3), pixels.substr(3),
       std::nullopt, "needs"},
      {"header length beyond the body", uint8_header, pixels, 1 << 30,
       "Inference-Header-Content-Length"},
      {"header length cutting the JSON", uint8_header, pixels, 10, "JSON"},
      {"bytes but no binary_data_size",
       {{"inputs",
         {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", shape}, {"data", {1, 2, 3}}}}}},
       pixels,
       std::nullopt,
       "no input declares"},
      {"BYTES length prefix beyond the data",
       {{"inputs", {image_input("BYTES", {1}, 8)}}},
       std::string("\xff\x00\x00\x00"
                   "abcd",
                   8),
       std::nullopt,
       "declares 255 bytes"},
      {"BYTES count differs from the shape",
       {{"inputs", {image_input("BYTES", {3}, elements.size())}}},
       elements,
       std::nullopt,
       "holds 2 element(s) but its shape says 3"},
      {"unsupported binary datatype",
       {{"inputs", {image_input("FP16", shape, pixels.size() * 2)}}},
       pixels + pixels,
       std::nullopt,
       "not supported"},
  };
  for (const Case& c : cases) {
    const auto result = post_binary(*client, c.header, c.bytes, c.header_length);
    ASSERT_TRUE(result) << c.what;
    EXPECT_EQ(result->status, 400) << c.what << ": " << result->body;
    EXPECT_NE(result->body.find(c.message), std::string::npos) << c.what << ": " << result->body;
  }
  // Declaring binary data without the header that says where the JSON ends.
  const auto no_header =
      client->Post("/v2/models/garments/infer", uint8_with_size(12).dump(), "application/json");
  EXPECT_EQ(no_header->status, 400);
  EXPECT_NE(no_header->body.find("Inference-Header-Content-Length"), std::string::npos)
      << no_header->body;
  EXPECT_EQ(json_of(client->Get("/v2"))["extensions"], nlohmann::json({"binary_tensor_data"}));
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
