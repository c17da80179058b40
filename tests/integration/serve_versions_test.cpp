// Model versions: hot swap under concurrent load with zero failed requests, a bad version never
// replacing a good one, metrics, and graceful shutdown of the real binary on SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <regex>

#include "core/atomic_file.h"
#include "serve_fixture.h"

namespace garmentnet::testing {
namespace {

namespace fs = std::filesystem;

// Puts a model file into base/<version>/ the way docs/serving.md recommends: build the folder
// beside it, then rename it into place so the server never sees a half-copied file.
void publish_version(const fs::path& base, int version, const std::string& model_bytes) {
  const fs::path staging = base / (".staging-" + std::to_string(version));
  fs::create_directories(staging);
  std::ofstream(staging / "model.gnm", std::ios::binary) << model_bytes;
  fs::rename(staging, base / std::to_string(version));
}

nlohmann::json get_json(httplib::Client& client, const std::string& path) {
  const auto result = client.Get(path);
  return result ? nlohmann::json::parse(result->body) : nlohmann::json();
}

bool wait_for(const std::function<bool()>& condition) {
  for (int i = 0; i < 300; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// A server on versioned folders under `base`, serving the newest `served_versions`.
ServeOptions base_path_options(const fs::path& base, int served_versions) {
  ServeOptions options = quick_serve_options();
  options.models.model_file.clear();
  options.models.base_path = base;
  options.models.served_versions = served_versions;
  return options;
}

TEST(ServeVersions, HotSwapUnderLoadFailsNoRequestAndBadVersionsNeverReplaceGoodOnes) {
  TempDir dir;
  const fs::path base = dir / "models";
  fs::create_directories(base);
  const std::string model_bytes = read_file(tiny_model());
  publish_version(base, 1, model_bytes);
  RunningServer server(base_path_options(base, 1));

  std::atomic<bool> running{true};
  std::atomic<int> ok{0}, failed{0};
  std::atomic<int> saw_version_2{0};
  std::vector<std::thread> clients;
  const std::string body = predict_body({b64_instance(sample_jpeg(0))});
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      auto client = server.client();
      while (running) {
        const auto result = client->Post("/v1/models/garments:predict", body, "application/json");
        if (result && result->status == 200) {
          ++ok;
          if (result->get_header_value("X-Model-Version") == "2") ++saw_version_2;
        } else {
          ++failed;
        }
      }
    });
  }
  auto client = server.client();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  publish_version(base, 2, model_bytes);
  EXPECT_TRUE(wait_for([&] { return saw_version_2 > 0; })) << "version 2 never served";
  // A broken version 3 is reported and version 2 stays.
  publish_version(base, 3, "not a model at all");
  EXPECT_TRUE(wait_for([&] {
    const auto status = get_json(*client, "/v1/models/garments/versions/3");
    return status.contains("model_version_status") &&
           !status["model_version_status"][0]["status"]["error_message"].get<std::string>().empty();
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  running = false;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 20);

  const auto status = get_json(*client, "/v1/models/garments")["model_version_status"];
  ASSERT_EQ(status.size(), 3u) << status.dump();
  EXPECT_EQ(status[0]["version"], "3");
  EXPECT_EQ(status[0]["state"], "END");
  // The status route is open: its load errors name the file inside the base path, not where the
  // server keeps it.
  const std::string error = status[0]["status"]["error_message"];
  EXPECT_NE(error.find("3/model.gnm"), std::string::npos) << error;
  EXPECT_EQ(error.find(dir.path().string()), std::string::npos) << error;
  EXPECT_EQ(status[1]["version"], "2");
  EXPECT_EQ(status[1]["state"], "AVAILABLE");
  EXPECT_EQ(status[2]["state"], "END");
  EXPECT_EQ(get_json(*client, "/readyz")["version"], 2);
  const std::string metrics = client->Get("/metrics")->body;
  EXPECT_NE(metrics.find(R"(garmentnet_model_version{model="garments"} 2)"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find(R"(garmentnet_model_loads_total{model="garments",result="failure"} 1)"),
            std::string::npos);
  EXPECT_NE(metrics.find(R"(garmentnet_http_requests_total{code="200",route="predict"})"),
            std::string::npos);
  EXPECT_NE(metrics.find("garmentnet_inference_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(metrics.find("garmentnet_queue_wait_seconds_count"), std::string::npos);
  EXPECT_NE(metrics.find("garmentnet_in_flight_requests"), std::string::npos);
}

TEST(ServeVersions, EmptyBasePathIsNotReadyUntilAVersionArrives) {
  TempDir dir;
  const fs::path base = dir / "models";
  fs::create_directories(base / "1");  // a version folder without a model file yet
  RunningServer server(base_path_options(base, 1));
  auto client = server.client();
  EXPECT_EQ(client->Get("/readyz")->status, 503);
  EXPECT_EQ(client->Get("/v2/health/ready")->status, 503);
  EXPECT_EQ(client
                ->Post("/v1/models/garments:predict", predict_body({b64_instance(sample_jpeg(0))}),
                       "application/json")
                ->status,
            503);
  const auto status =
      get_json(*client, "/v1/models/garments/versions/1")["model_version_status"][0];
  EXPECT_NE(status["status"]["error_message"].get<std::string>().find("no .gnm model file"),
            std::string::npos);
  fs::copy_file(tiny_model(), dir / "staged.gnm");
  fs::rename(dir / "staged.gnm", base / "1" / "model.gnm");
  EXPECT_TRUE(wait_for([&] { return client->Get("/readyz")->status == 200; }));
}

int predict_status(httplib::Client& client, const std::string& path,
                   std::string* version = nullptr) {
  const auto result =
      client.Post(path, predict_body({b64_instance(sample_jpeg(0))}), "application/json");
  if (!result) return 0;
  if (version) *version = result->get_header_value("X-Model-Version");
  return result->status;
}

std::vector<std::string> available_versions(httplib::Client& client) {
  std::vector<std::string> out;
  const nlohmann::json answer = get_json(client, "/v1/models/garments");
  if (!answer.contains("model_version_status")) return out;
  for (const auto& status : answer["model_version_status"]) {
    if (status["state"] == "AVAILABLE") out.push_back(status["version"]);
  }
  return out;
}

TEST(ServeVersions, ServesTheNewestNVersionsEachAtItsOwnRoute) {
  TempDir dir;
  const fs::path base = dir / "models";
  fs::create_directories(base);
  const std::string model_bytes = read_file(tiny_model());
  for (int version : {1, 2, 3}) publish_version(base, version, model_bytes);
  RunningServer server(base_path_options(base, 2));
  auto client = server.client();

  EXPECT_EQ(available_versions(*client), (std::vector<std::string>{"3", "2"}));
  std::string version;
  EXPECT_EQ(predict_status(*client, "/v1/models/garments:predict", &version), 200);
  EXPECT_EQ(version, "3");  // no version named: the newest
  EXPECT_EQ(predict_status(*client, "/v1/models/garments/versions/2:predict", &version), 200);
  EXPECT_EQ(version, "2");
  EXPECT_EQ(predict_status(*client, "/v1/models/garments/versions/1:predict"), 404);
  EXPECT_EQ(get_json(*client, "/v1/models/garments/versions/2/metadata")["model_spec"]["version"],
            "2");
  EXPECT_EQ(client->Get("/v1/models/garments/versions/1/metadata")->status, 404);
  const auto kserve = get_json(*client, "/v2/models/garments/versions/2");
  EXPECT_EQ(kserve["versions"], nlohmann::json({"3", "2"}));
  EXPECT_EQ(client->Get("/v2/models/garments/versions/2/ready")->status, 200);
  EXPECT_EQ(client->Get("/v2/models/garments/versions/1/ready")->status, 404);
  const nlohmann::json infer = {{"inputs",
                                 {{{"name", "images"},
                                   {"datatype", "BYTES"},
                                   {"shape", {1}},
                                   {"data", {b64_instance(sample_jpeg(0))["b64"]}}}}}};
  const auto answer =
      client->Post("/v2/models/garments/versions/2/infer", infer.dump(), "application/json");
  ASSERT_TRUE(answer);
  EXPECT_EQ(nlohmann::json::parse(answer->body)["model_version"], "2");

  // Version 4 arrives: 4 and 3 are served, 2 is unloaded.
  publish_version(base, 4, model_bytes);
  EXPECT_TRUE(wait_for([&] {
    const auto versions = available_versions(*client);
    return !versions.empty() && versions.front() == "4";
  }));
  EXPECT_EQ(available_versions(*client), (std::vector<std::string>{"4", "3"}));
  EXPECT_EQ(predict_status(*client, "/v1/models/garments/versions/3:predict", &version), 200);
  EXPECT_EQ(version, "3");
  const auto gone = client->Post("/v1/models/garments/versions/2:predict",
                                 predict_body({b64_instance(sample_jpeg(0))}), "application/json");
  EXPECT_EQ(gone->status, 404);
  EXPECT_NE(gone->body.find("serving version 4, 3"), std::string::npos) << gone->body;
  EXPECT_EQ(get_json(*client, "/v1/models/garments/versions/2")["model_version_status"][0]["state"],
            "END");
  EXPECT_NE(client->Get("/metrics")->body.find(R"(garmentnet_model_version{model="garments"} 4)"),
            std::string::npos);

  // A broken version 5 changes nothing; the good ones below it stay.
  publish_version(base, 5, "not a model");
  EXPECT_TRUE(wait_for([&] {
    const auto status = get_json(*client, "/v1/models/garments/versions/5");
    return status.contains("model_version_status") &&
           status["model_version_status"][0]["status"]["error_code"] == "UNKNOWN";
  }));
  EXPECT_EQ(available_versions(*client), (std::vector<std::string>{"4", "3"}));
}

TEST(ServeVersions, AnUnloadedVersionFinishesTheRequestsItHolds) {
  TempDir dir;
  const fs::path base = dir / "models";
  fs::create_directories(base);
  const std::string model_bytes = read_file(tiny_model());
  publish_version(base, 1, model_bytes);
  ServeOptions options = base_path_options(base, 1);
  // A lone request waits this long in the batcher for company: long enough to swap meanwhile.
  options.batching.max_wait = std::chrono::milliseconds(4000);
  options.batching.always_wait = true;
  RunningServer server(options);
  auto in_flight = std::async(std::launch::async, [&] {
    std::string version;
    const int status =
        predict_status(*server.client(), "/v1/models/garments/versions/1:predict", &version);
    return std::make_pair(status, version);
  });
  auto client = server.client();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  publish_version(base, 2, model_bytes);
  ASSERT_TRUE(
      wait_for([&] { return available_versions(*client) == std::vector<std::string>{"2"}; }));
  EXPECT_EQ(in_flight.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "the request finished before version 1 was unloaded; the test proves nothing";
  const auto [status, version] = in_flight.get();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(version, "1");
}

// The real binary: SIGTERM while a request is in flight → the request is answered, exit 0.
TEST(ServeVersions, BinaryFinishesInFlightRequestsOnSigterm) {
  TempDir dir;
  const fs::path log = dir / "serve.log";
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string command =
        std::string(GARMENTNET_BINARY) + " serve --model " + tiny_model().string() +
        " --port 0 --max-wait-us 3000000 --always-wait --max-batch-size 64 --threads 2 > " +
        log.string() + " 2>&1";
    execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), nullptr);
    _exit(127);
  }
  int port = 0;
  ASSERT_TRUE(wait_for([&] {
    std::smatch match;
    const std::string text = fs::exists(log) ? read_file(log) : "";
    if (std::regex_search(text, match, std::regex(R"(http://127\.0\.0\.1:(\d+)/)")))
      port = std::stoi(match[1]);
    return port > 0;
  })) << (fs::exists(log) ? read_file(log) : "no log");
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(30, 0);
  // The batcher holds this request ~3 s waiting for company; SIGTERM arrives meanwhile.
  auto in_flight = std::async(std::launch::async, [&] {
    return client.Post("/v1/models/garments:predict", predict_body({b64_instance(sample_jpeg(0))}),
                       "application/json");
  });
  // Signal only once the request is inside the server: the /metrics request asking counts
  // itself, so 2 in flight means the prediction is being handled.
  httplib::Client probe("127.0.0.1", port);
  ASSERT_TRUE(wait_for([&] {
    const auto metrics = probe.Get("/metrics");
    std::smatch match;
    return metrics &&
           std::regex_search(metrics->body, match,
                             std::regex(R"(garmentnet_in_flight_requests (\d+))")) &&
           std::stoi(match[1]) >= 2;
  }));
  ::kill(pid, SIGTERM);
  const auto result = in_flight.get();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(log);
  EXPECT_NE(read_file(log).find("SIGTERM received"), std::string::npos);
}

}  // namespace
}  // namespace garmentnet::testing
