#include "serve/serve_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>

namespace garmentnet {

namespace {
// Seconds: from 0.5 ms (a cached forward pass) to 10 s (a timeout).
const prometheus::Histogram::BucketBoundaries kLatencyBuckets{
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
const prometheus::Histogram::BucketBoundaries kBatchBuckets{1, 2, 4, 8, 16, 32, 64, 128};
}  // namespace

struct ServeMetrics::Impl {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("garmentnet_http_requests_total")
          .Help("HTTP requests answered, by route and status code")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& latency =
      prometheus::BuildHistogram()
          .Name("garmentnet_request_duration_seconds")
          .Help("Time from request parsed to answer ready, by route")
          .Register(registry);
  prometheus::Histogram& queue_wait =
      prometheus::BuildHistogram()
          .Name("garmentnet_queue_wait_seconds")
          .Help("Time a request's images waited for the model thread")
          .Register(registry)
          .Add({}, kLatencyBuckets);
  prometheus::Histogram& inference = prometheus::BuildHistogram()
                                         .Name("garmentnet_inference_duration_seconds")
                                         .Help("Forward pass time per batch")
                                         .Register(registry)
                                         .Add({}, kLatencyBuckets);
  prometheus::Histogram& batch_size = prometheus::BuildHistogram()
                                          .Name("garmentnet_batch_size")
                                          .Help("Images per forward pass")
                                          .Register(registry)
                                          .Add({}, kBatchBuckets);
  prometheus::Family<prometheus::Gauge>& in_flight_family =
      prometheus::BuildGauge()
          .Name("garmentnet_in_flight_requests")
          .Help("Requests being handled now")
          .Register(registry);
  prometheus::Gauge& in_flight = in_flight_family.Add({});
  prometheus::Gauge& queued = prometheus::BuildGauge()
                                  .Name("garmentnet_queued_images")
                                  .Help("Images waiting for the model thread")
                                  .Register(registry)
                                  .Add({});
  prometheus::Family<prometheus::Gauge>& version_family =
      prometheus::BuildGauge()
          .Name("garmentnet_model_version")
          .Help("Version of the model being served")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& load_family =
      prometheus::BuildCounter()
          .Name("garmentnet_model_loads_total")
          .Help("Model version load attempts, by result")
          .Register(registry);
  std::string model_name;
};

ServeMetrics::ServeMetrics(const std::string& model_name) : impl_(std::make_unique<Impl>()) {
  impl_->model_name = model_name;
  impl_->version_family.Add({{"model", model_name}}).Set(0);
  impl_->load_family.Add({{"model", model_name}, {"result", "success"}});
  impl_->load_family.Add({{"model", model_name}, {"result", "failure"}});
}

ServeMetrics::~ServeMetrics() = default;

void ServeMetrics::observe_request(const std::string& route, int status, double seconds) {
  impl_->requests.Add({{"route", route}, {"code", std::to_string(status)}}).Increment();
  impl_->latency.Add({{"route", route}}, kLatencyBuckets).Observe(seconds);
}

void ServeMetrics::observe_batch(const BatchStats& stats) {
  impl_->batch_size.Observe(static_cast<double>(stats.images));
  impl_->inference.Observe(stats.inference_seconds);
  for (const double wait : stats.queue_wait_seconds) impl_->queue_wait.Observe(wait);
}

void ServeMetrics::observe_model_load(bool loaded, int64_t newest_version) {
  impl_->load_family.Add({{"model", impl_->model_name}, {"result", loaded ? "success" : "failure"}})
      .Increment();
  if (newest_version >= 0) {
    impl_->version_family.Add({{"model", impl_->model_name}})
        .Set(static_cast<double>(newest_version));
  }
}

void ServeMetrics::set_queued_images(size_t images) {
  impl_->queued.Set(static_cast<double>(images));
}

void ServeMetrics::add_in_flight(int delta) { impl_->in_flight.Increment(delta); }

std::string ServeMetrics::render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, impl_->registry.Collect());
  return out.str();
}

}  // namespace garmentnet
