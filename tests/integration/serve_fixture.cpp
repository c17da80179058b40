#include "serve_fixture.h"

#include "core/atomic_file.h"
#include "data/fashion_mnist.h"
#include "serve/request_parsing.h"
#include "train/trainer.h"

namespace garmentnet::testing {

const std::filesystem::path& tiny_dataset_dir() {
  static TempDir dir;
  static const std::filesystem::path data = [] {
    FashionMnistOptions options;
    options.out_dir = dir / "garments";
    options.make_source = false;
    options.image_size = 32;
    options.train_size = 300;
    options.test_size = 10;
    make_fashion_mnist_dataset(options);
    return options.out_dir;
  }();
  return data;
}

const std::filesystem::path& tiny_model() {
  static TempDir dir;
  static const std::filesystem::path model = [] {
    TrainOptions o;
    o.data_dir = tiny_dataset_dir();
    o.out_dir = dir / "run";
    o.image_size = 32;
    o.epochs = 1;
    o.batch_size = 32;
    o.transfer = "scratch";
    o.warmup_epochs = 0;
    o.patience = 0;
    o.report = false;
    return train_model(o).model_path;
  }();
  return model;
}

std::string sample_jpeg(size_t index) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(tiny_dataset_dir() / "images")) {
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return read_file(files.at(index));
}

ServeOptions quick_serve_options() {
  ServeOptions o;
  o.models.model_file = tiny_model();
  o.http.port = 0;
  o.http.threads = 8;
  o.decode_threads = 2;
  o.models.predictor.threads = 2;
  o.models.poll_interval = std::chrono::milliseconds(100);
  return o;
}

RunningServer::RunningServer(const ServeOptions& options)
    : server_(std::make_unique<Server>(options)) {
  thread_ = std::thread([this] { server_->run(); });
}

RunningServer::~RunningServer() { stop(); }

void RunningServer::stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

std::unique_ptr<httplib::Client> RunningServer::client() const {
  auto client = std::make_unique<httplib::Client>("127.0.0.1", port());
  client->set_read_timeout(30, 0);
  return client;
}

std::string predict_body(const std::vector<nlohmann::json>& instances) {
  nlohmann::json body = nlohmann::json::object();
  body["signature_name"] = "serving_default";
  body["instances"] = instances;
  return body.dump();
}

nlohmann::json b64_instance(const std::string& bytes) { return {{"b64", encode_base64(bytes)}}; }

nlohmann::json pixel_array(const cv::Mat& rgb, bool as_floats) {
  nlohmann::json rows = nlohmann::json::array();
  for (int y = 0; y < rgb.rows; ++y) {
    nlohmann::json row = nlohmann::json::array();
    for (int x = 0; x < rgb.cols; ++x) {
      const auto& p = rgb.at<cv::Vec3b>(y, x);
      if (as_floats) {
        row.push_back({p[0] / 255.0, p[1] / 255.0, p[2] / 255.0});
      } else {
        row.push_back({p[0], p[1], p[2]});
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace garmentnet::testing
