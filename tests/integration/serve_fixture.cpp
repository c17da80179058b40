#include "serve_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "core/atomic_file.h"
#include "serve/request_parsing.h"

namespace garmentnet::testing {

std::string sample_jpeg(size_t index) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(tiny_dataset() / "images")) {
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return read_file(files.at(index));
}

RawConnection::RawConnection(int port, const std::string& from)
    : socket_(::socket(AF_INET, SOCK_STREAM, 0)) {
  sockaddr_in source{};
  source.sin_family = AF_INET;
  if (::inet_pton(AF_INET, from.c_str(), &source.sin_addr) != 1 ||
      ::bind(socket_, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0)
    throw std::runtime_error("cannot connect from " + from);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(socket_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw std::runtime_error("cannot connect to the test server");
}

RawConnection::~RawConnection() { ::close(socket_); }

bool RawConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(socket_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool RawConnection::answer_waiting() const {
  pollfd entry{.fd = socket_, .events = POLLIN, .revents = 0};
  return ::poll(&entry, 1, 0) > 0;
}

std::string RawConnection::receive(std::chrono::milliseconds quiet) {
  std::string out;
  char buffer[4096];
  for (;;) {
    pollfd entry{.fd = socket_, .events = POLLIN, .revents = 0};
    if (::poll(&entry, 1, static_cast<int>(quiet.count())) <= 0) return out;
    const ssize_t n = ::recv(socket_, buffer, sizeof buffer, 0);
    if (n <= 0) return out;
    out.append(buffer, static_cast<size_t>(n));
  }
}

int status_of(const std::string& received) {
  if (!received.starts_with("HTTP/1.1 ") || received.size() < 12) return 0;
  return std::stoi(received.substr(9, 3));
}

size_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6)) * 1024;
  }
  return 0;
}

ServeOptions quick_serve_options() {
  ServeOptions o;
  o.models.model_file = tiny_model();
  o.http.port = 0;
  o.http.threads = 8;
  o.decode_threads = 2;
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
