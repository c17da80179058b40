// Prometheus metrics of the service, rendered in the text exposition format for GET /metrics.
// prometheus-cpp stays behind this header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "serve/batcher.h"

namespace garmentnet {

class ServeMetrics {
 public:
  explicit ServeMetrics(const std::string& model_name);
  ~ServeMetrics();
  ServeMetrics(const ServeMetrics&) = delete;
  ServeMetrics& operator=(const ServeMetrics&) = delete;

  // One answered request: counted by route and status code, its latency observed by route.
  void observe_request(const std::string& route, int status, double seconds);
  void observe_batch(const BatchStats& stats);
  // One load attempt; `newest_version` is the highest version served afterwards (-1: none).
  void observe_model_load(bool loaded, int64_t newest_version);
  void set_queued_images(size_t images);
  void add_in_flight(int delta);

  std::string render() const;  // text format 0.0.4

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace garmentnet
