// Shared by the serve_* tests: a tiny trained model (made once per test process), a server
// running in-process on a free port of 127.0.0.1, and an HTTP client for it.
#pragma once

#include <httplib.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>
#include <thread>

#include "serve/server.h"
#include "test_support.h"

namespace garmentnet::testing {

// A model file trained for one epoch on a 300-image, 32 px built-in dataset.
const std::filesystem::path& tiny_model();
// The built-in dataset the model was trained on (its images/ folder holds JPEGs).
const std::filesystem::path& tiny_dataset_dir();
// Bytes of one JPEG of that dataset.
std::string sample_jpeg(size_t index = 0);

// Options serving tiny_model() on a free port with small, quick settings.
ServeOptions quick_serve_options();

class RunningServer {
 public:
  explicit RunningServer(const ServeOptions& options);
  ~RunningServer();  // stops the server and waits for it
  RunningServer(const RunningServer&) = delete;
  RunningServer& operator=(const RunningServer&) = delete;

  int port() const { return server_->port(); }
  std::unique_ptr<httplib::Client> client() const;
  void stop();

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

// A TF-Serving :predict body with the given instances in row format.
std::string predict_body(const std::vector<nlohmann::json>& instances);
// {"b64": ...} for these bytes.
nlohmann::json b64_instance(const std::string& bytes);
// An H×W×3 nested array of an RGB image, as integers 0–255 or floats /255.
nlohmann::json pixel_array(const cv::Mat& rgb, bool as_floats);

}  // namespace garmentnet::testing
