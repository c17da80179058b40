// Shared by the serve_* tests: a tiny trained model (made once per test process), a server
// running in-process on a free port of 127.0.0.1, and an HTTP client for it.
#pragma once

#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>
#include <thread>

#include "serve/server.h"
#include "test_support.h"

namespace garmentnet::testing {

// Bytes of one JPEG of tiny_dataset().
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

// A raw TCP connection to a server on 127.0.0.1, for requests an HTTP client library would not
// send; from the client address `from` (any 127.x.y.z; default 127.0.0.1).
class RawConnection {
 public:
  explicit RawConnection(int port, const std::string& from = "127.0.0.1");
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // False once the server has closed (or reset) the connection.
  bool send(std::string_view bytes);
  bool answer_waiting() const;
  // Everything the server sends until it closes the connection or `quiet` passes without a byte.
  std::string receive(std::chrono::milliseconds quiet = std::chrono::milliseconds(3000));

 private:
  int socket_;
};

// The status of the first HTTP answer in `received` (0 when there is none).
int status_of(const std::string& received);
// This process's resident memory.
size_t resident_bytes();

// A TF-Serving :predict body with the given instances in row format.
std::string predict_body(const std::vector<nlohmann::json>& instances);
// {"b64": ...} for these bytes.
nlohmann::json b64_instance(const std::string& bytes);
// An H×W×3 nested array of an RGB image, as integers 0–255 or floats /255.
nlohmann::json pixel_array(const cv::Mat& rgb, bool as_floats);

}  // namespace garmentnet::testing
