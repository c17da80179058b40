// Hostile and broken input over HTTP: each gets the right status and a JSON error, and the
// server keeps answering correctly afterwards. Also backpressure, timeouts and batching.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <future>
#include <opencv2/imgcodecs.hpp>
#include <random>

#include "core/error.h"
#include "serve/request_parsing.h"
#include "serve_fixture.h"

namespace garmentnet::testing {
namespace {

constexpr const char* kPredict = "/v1/models/garments:predict";

struct Case {
  std::string what;
  std::string body;
  int status;
};

void expect_still_serving(httplib::Client& client) {
  const auto result =
      client.Post(kPredict, predict_body({b64_instance(sample_jpeg(0))}), "application/json");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
}

std::string png_header_claiming(uint32_t width, uint32_t height) {
  // A valid PNG of 1×1 whose IHDR is rewritten to claim huge dimensions.
  std::vector<uchar> png;
  cv::imencode(".png", cv::Mat(1, 1, CV_8UC3, cv::Scalar(1, 2, 3)), png);
  for (int i = 0; i < 4; ++i) {
    png[16 + i] = static_cast<uchar>(width >> (24 - 8 * i));
    png[20 + i] = static_cast<uchar>(height >> (24 - 8 * i));
  }
  return {png.begin(), png.end()};
}

TEST(ServeLimits, BadRequestsGetTheRightStatusAndTheServerKeepsWorking) {
  ServeOptions options = quick_serve_options();
  options.http.max_body_bytes = 1 << 20;
  RunningServer server(options);
  auto client = server.client();
  const std::string jpeg = sample_jpeg(0);
  const std::vector<Case> cases = {
      {"malformed JSON", R"({"instances": [)", 400},
      {"number beyond a double (found by the fuzzer)", R"({"instances": [[[[1e999, 2, 3]]]]})",
       400},
      {"empty body", "", 400},
      {"not an object", "[1, 2, 3]", 400},
      {"neither instances nor inputs", R"({"signature_name": "serving_default"})", 400},
      {"both instances and inputs", R"({"instances": [], "inputs": []})", 400},
      {"no instances", R"({"instances": []})", 400},
      {"instances not a list", R"({"instances": 5})", 400},
      {"wrong signature", R"({"signature_name": "other", "instances": [{"b64": "AAAA"}]})", 400},
      {"two channels", R"({"instances": [[[[1, 2], [3, 4]]]]})", 400},
      {"ragged rows", R"({"instances": [[[[1, 2, 3], [4, 5, 6]], [[1, 2, 3]]]]})", 400},
      {"strings as pixels", R"({"instances": [[[["a", "b", "c"]]]]})", 400},
      {"negative pixel", R"({"instances": [[[[-1, 2, 3]]]]})", 400},
      {"pixel above 255", R"({"instances": [[[[1, 2, 300]]]]})", 400},
      {"flat list", R"({"instances": [[1, 2, 3]]})", 400},
      {"a bare number", R"({"instances": [7]})", 400},
      {"b64 not a string", R"({"instances": [{"b64": 12}]})", 400},
      {"b64 not base64", R"({"instances": [{"b64": "!!!not base64!!!"}]})", 400},
      {"b64 of non-image bytes", predict_body({b64_instance("hello, this is text not a picture")}),
       400},
      {"truncated JPEG", predict_body({b64_instance(jpeg.substr(0, jpeg.size() / 2))}), 400},
      {"gigantic dimensions", predict_body({b64_instance(png_header_claiming(100000, 100000))}),
       400},
      {"too deep JSON", std::string(5000, '[') + std::string(5000, ']'), 400},
      {"too many instances", predict_body(std::vector<nlohmann::json>(65, b64_instance(jpeg))),
       400},
      {"body too large", predict_body({b64_instance(std::string(2 << 20, 'x'))}), 413},
  };
  for (const Case& c : cases) {
    const auto result = client->Post(kPredict, c.body, "application/json");
    ASSERT_TRUE(result) << c.what;
    EXPECT_EQ(result->status, c.status) << c.what << ": " << result->body;
    const auto answer = nlohmann::json::parse(result->body, nullptr, false);
    EXPECT_TRUE(answer.is_object() && answer.contains("error")) << c.what << ": " << result->body;
  }
  EXPECT_EQ(
      client
          ->Post("/v1/models/shoes:predict", predict_body({b64_instance(jpeg)}), "application/json")
          ->status,
      404);
  EXPECT_EQ(
      client->Post("/v1/models/garments/versions/x:predict", "{}", "application/json")->status,
      404);
  EXPECT_EQ(client->Post("/v1/models/garments:explode", "{}", "application/json")->status, 404);
  EXPECT_EQ(client->Get("/v1/models/garments:predict")->status, 405);
  expect_still_serving(*client);
}

TEST(ServeLimits, ApiKeyGuardsPredictionRoutesOnly) {
  ServeOptions options = quick_serve_options();
  options.api_key = "s3cret";
  RunningServer server(options);
  auto client = server.client();
  const std::string body = predict_body({b64_instance(sample_jpeg(0))});
  const auto missing = client->Post(kPredict, body, "application/json");
  EXPECT_EQ(missing->status, 401);
  EXPECT_EQ(missing->get_header_value("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(
      client->Post(kPredict, {{"Authorization", "Bearer wrong"}}, body, "application/json")->status,
      401);
  EXPECT_EQ(
      client->Post("/v1/models/garments:classify-image", sample_jpeg(0), "image/jpeg")->status,
      401);
  EXPECT_EQ(client->Get("/v1/models/garments")->status,
            200);  // status stays open for load balancers
  EXPECT_EQ(client->Post(kPredict, {{"Authorization", "Bearer s3cret"}}, body, "application/json")
                ->status,
            200);
}

TEST(ServeLimits, FullQueueAnswers429AndSlowAnswers504) {
  ServeOptions options = quick_serve_options();
  // The first request waits 1.5 s for company, so the queue stays occupied meanwhile.
  options.batching.max_wait = std::chrono::milliseconds(1500);
  options.batching.always_wait = true;
  options.batching.max_batch_size = 64;
  options.batching.max_queued_images = 1;
  RunningServer server(options);
  const std::string body = predict_body({b64_instance(sample_jpeg(0))});
  auto first = std::async(std::launch::async, [&] {
    return server.client()->Post(kPredict, body, "application/json");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto refused = server.client()->Post(kPredict, body, "application/json");
  EXPECT_EQ(refused->status, 429) << refused->body;
  EXPECT_EQ(first.get()->status, 200);
  server.stop();

  options.request_timeout = std::chrono::milliseconds(200);
  RunningServer slow(options);
  const auto timed_out = slow.client()->Post(kPredict, body, "application/json");
  EXPECT_EQ(timed_out->status, 504) << timed_out->body;
}

TEST(ServeLimits, ConcurrentRequestsAreBatchedTogether) {
  ServeOptions options = quick_serve_options();
  options.batching.max_wait = std::chrono::milliseconds(300);
  options.batching.always_wait = true;  // whether or not the others are already on their way
  options.batching.max_batch_size = 8;
  RunningServer server(options);
  const std::string body = predict_body({b64_instance(sample_jpeg(0))});
  std::vector<std::future<int>> requests;
  for (int i = 0; i < 8; ++i) {
    requests.push_back(std::async(std::launch::async, [&] {
      return server.client()->Post(kPredict, body, "application/json")->status;
    }));
  }
  for (auto& r : requests) EXPECT_EQ(r.get(), 200);
  const std::string metrics = server.client()->Get("/metrics")->body;
  // 8 images in fewer than 8 forward passes means requests shared a batch.
  const size_t at = metrics.find("garmentnet_batch_size_count ");
  ASSERT_NE(at, std::string::npos) << metrics;
  const int batches = std::stoi(metrics.substr(at + std::strlen("garmentnet_batch_size_count ")));
  EXPECT_LT(batches, 8);
  EXPECT_NE(metrics.find("garmentnet_batch_size_sum 8"), std::string::npos) << metrics;
}

// `connections` clients POST at once, each on its own connection; returns their statuses.
std::vector<int> post_concurrently(const RunningServer& server, int connections) {
  const std::string body = predict_body({b64_instance(sample_jpeg(0))});
  std::vector<std::future<int>> requests;
  for (int i = 0; i < connections; ++i) {
    requests.push_back(std::async(std::launch::async, [&] {
      const auto result = server.client()->Post(kPredict, body, "application/json");
      return result ? result->status : -static_cast<int>(result.error());
    }));
  }
  std::vector<int> statuses;
  for (auto& r : requests) statuses.push_back(r.get());
  return statuses;
}

int metric_value(const std::string& metrics, const std::string& name) {
  const size_t at = metrics.find(name + " ");
  return at == std::string::npos ? -1 : std::stoi(metrics.substr(at + name.size() + 1));
}

// With the default HTTP threads, 64 clients (a load balancer's connection pool) are all inside
// the server at once: their requests share one forward pass instead of waiting for a thread.
// And a bounded queue still refuses what does not fit with 429 rather than queueing it.
TEST(ServeLimits, DefaultThreadsServe64ConnectionsAtOnceAndAFullQueueStillRefuses) {
  ServeOptions options = quick_serve_options();
  options.http = HttpServerOptions{};  // the defaults, on a free port
  options.http.port = 0;
  options.batching.max_batch_size = 64;
  options.batching.max_wait = std::chrono::milliseconds(2000);
  options.batching.always_wait = true;
  {
    RunningServer server(options);
    for (const int status : post_concurrently(server, 64))
      EXPECT_EQ(status, 200) << "negative: httplib::Error";
    const std::string metrics = server.client()->Get("/metrics")->body;
    EXPECT_EQ(metric_value(metrics, "garmentnet_batch_size_sum"), 64) << metrics;
    EXPECT_LE(metric_value(metrics, "garmentnet_batch_size_count"), 2) << metrics;
  }
  options.batching.max_queued_images = 16;
  RunningServer server(options);
  const std::vector<int> statuses = post_concurrently(server, 64);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 200), 16);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 429), 48);
}

// Random mutations of valid requests never crash the parser and only ever raise InputError.
TEST(ServeLimits, RandomMutationsOfRequestsOnlyRaiseInputErrors) {
  const std::string jpeg = sample_jpeg(0);
  const std::vector<std::string> seeds = {
      predict_body({b64_instance(jpeg)}),
      R"({"instances": [[[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]]]})",
      R"({"inputs": {"images": [[[[0.1, 0.2, 0.3]]]]}})"};
  std::mt19937 rng(7);
  RequestLimits limits;
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string body = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0:
          body[at] = static_cast<char>(rng());
          break;
        case 1:
          body.erase(at, 1 + rng() % 8);
          break;
        default:
          body.insert(at, 1, "[]{}\",:0123456789.e-"[rng() % 21]);
          break;
      }
    }
    try {
      for (const auto& instance : parse_predict_body(body, limits).instances)
        decode_instance(instance, "fuzz", limits);
      ++accepted;
    } catch (const InputError&) {
    }
  }
  EXPECT_GT(accepted, 0);  // some mutations stay valid (e.g. a changed pixel value)
}

}  // namespace
}  // namespace garmentnet::testing
