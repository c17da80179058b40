// `garmentnet serve`: the model service. Server wires the parts together — model registry
// (versions, hot reload), decode pool, dynamic batcher, metrics, routes — behind the HTTP
// interface of http.h. Routes and formats: docs/serving.md.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/stop_signals.h"
#include "serve/batcher.h"
#include "serve/http.h"
#include "serve/model_registry.h"
#include "serve/request_parsing.h"

namespace garmentnet {

struct ServeOptions {
  std::string model_name = "garments";               // the {name} in /v1/models/{name}
  ModelRegistryOptions models;                       // where the model versions come from
  HttpServerOptions http;                            // address, port, body limit, timeouts
  BatcherOptions batching;                           // dynamic batching and queue bound
  RequestLimits limits;                              // instances, JSON depth, pixels per request
  int decode_threads = 0;                            // image decode/resize workers, 0 = all cores
  std::chrono::milliseconds request_timeout{30000};  // a request waiting longer gets 504
  std::string api_key;  // when set, prediction routes need "Authorization: Bearer <key>"
};

class Service;  // the routes (service.h)

class Server {
 public:
  // Loads the newest loadable model version and binds the port. InputError for a bad path or a
  // port in use; a base path with no loadable version yet is served "not ready" (503).
  explicit Server(const ServeOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;
  // Serves (and watches for new versions) until stop(); then answers the requests in flight,
  // finishes queued inference and returns.
  void run();
  // Stops accepting; callable from any thread (e.g. a signal handler thread).
  void stop();

 private:
  std::unique_ptr<Service> service_;
  std::unique_ptr<HttpServer> http_;
};

// Runs a Server until `signals` sees SIGINT or SIGTERM, then shuts down gracefully (a second
// signal exits at once).
void serve_until_signal(const ServeOptions& options, const StopSignals& signals);

}  // namespace garmentnet
