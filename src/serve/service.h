// The routes of the model service (TF-Serving REST, KServe v2, the image route, health,
// metrics, web page) over the plain request/response structs of http.h. Internal to src/serve.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <semaphore>
#include <stdexcept>
#include <thread>

#include "core/admission_budget.h"
#include "core/thread_pool.h"
#include "serve/serve_metrics.h"
#include "serve/server.h"

namespace garmentnet {

// A request that fails with a given HTTP status; the message becomes {"error": message}.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

HttpResponse json_response(int status, const nlohmann::json& body);

// `message` with the server's file paths hidden: paths inside the model base path (or the model
// file's folder) relative to it, any other absolute path reduced to its file name.
std::string hide_server_paths(const std::string& message, const ModelRegistryOptions& models);
// `text` with every absolute path of two or more segments ("/a/b/c") cut to its last ("c").
// Linear in the text's length, whatever it holds.
std::string without_absolute_paths(std::string_view text);

// The answer to a request that failed with `error`: an HttpError's status, 400 for the user's bad
// input (InputError), 500 for anything else (a bug of ours, never blamed on the input); messages
// without server paths.
HttpResponse error_response(const std::exception& error, const ModelRegistryOptions& models);

// What every prediction route starts from, checked in this order: the API key (401), the model
// and version (404/503), a body (400: `expected` says what to send); the batcher has been told
// the request is coming, and the request's deadline (--request-timeout-ms from now) is set.
struct PredictionRequest {
  std::shared_ptr<const LoadedModel> model;
  Batcher::Arrival arrival;
  std::chrono::steady_clock::time_point deadline;
};

// One image of a request before decoding: its encoded bytes, or its pixels already decoded.
struct RequestImage {
  std::optional<std::string_view> encoded;  // JPEG/PNG/WebP bytes
  cv::Mat pixels;                           // RGB uint8, when not encoded
};

class Service {
 public:
  explicit Service(const ServeOptions& options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  HttpResponse handle(const HttpRequest& request);
  // Counts a request the HTTP layer answered itself (too large, malformed framing).
  void observe_refusal(int status);
  // Checks a request with a body on its head alone, before the body is read: 401 without the API
  // key (a client without it never gets to send a large body).
  std::optional<HttpResponse> check_head(const HttpRequest& head) const;
  // Starts watching for new model versions.
  void start();
  // Finishes queued inference and stops the watcher; later predictions get 503.
  void shutdown();

  // Used by the route handlers (tf_serving_api.cpp, kserve_api.cpp, classify_api.cpp).
  const ServeOptions& options() const { return options_; }
  const ModelRegistry& registry() const { return registry_; }
  // The model serving `name` (and `version`, when given); HttpError 404 / 503.
  std::shared_ptr<const LoadedModel> find_model(const std::string& name,
                                                std::optional<int64_t> version) const;
  // Decodes (where encoded) and resizes the images of one request for `model`, on the decode pool,
  // within the request's budgets: HttpError 413 when their decoded pixels (known from the
  // headers) pass --max-request-pixels, 429 when the images all requests are decoding would pass
  // --max-decoding-pixels, 504 once `deadline` has passed. `noun` names them in errors
  // ("instance 3").
  std::vector<cv::Mat> prepare_images(std::vector<RequestImage> images, std::string_view noun,
                                      const Predictor& model,
                                      std::chrono::steady_clock::time_point deadline);
  // prepare_images for TF-Serving instances ({"b64"} or pixel arrays), read on the decode pool.
  std::vector<cv::Mat> decode_instances(const std::vector<nlohmann::json>& instances,
                                        const Predictor& model,
                                        std::chrono::steady_clock::time_point deadline);
  // Opens a prediction (see PredictionRequest) for model `name` / `version`; pass the arrival on
  // to infer(). It is announced before the body is parsed and decoded, so that a partial batch
  // waits for it.
  PredictionRequest open_prediction(const HttpRequest& request, const std::string& name,
                                    std::optional<int64_t> version, std::string_view expected);
  // Runs resized images through the batcher; HttpError 429/503 when overloaded, 504 when no
  // answer came by `deadline`.
  HeadProbabilities infer(Batcher::Arrival arrival, const LoadedModel& model,
                          std::vector<cv::Mat> resized,
                          std::chrono::steady_clock::time_point deadline);

 private:
  HttpResponse route(const HttpRequest& request, std::string& route_label);
  // HttpError 401 unless the request carries "Authorization: Bearer <key>" (scheme in any case)
  // when a key is set.
  void check_api_key(const HttpRequest& request) const;
  // Calls body(i) for each of `count` images of one request: a single image on the calling
  // connection thread, several in parallel on the decode pool. Either way at most
  // decode-threads images are decoded at once on each path, however many connections are open,
  // so memory stays bounded.
  void for_each_image(size_t count, const std::function<void(size_t)>& body);

  // Gives freed memory back to the system once a second has passed without a new request after
  // some were handled (a burst's peak does not stay), until shutdown().
  void release_memory_when_idle();

  ServeOptions options_;
  ServeMetrics metrics_;
  ModelRegistry registry_;
  ThreadPool decode_pool_;
  std::counting_semaphore<> single_image_decodes_;
  AdmissionBudget decoding_pixels_;  // of images being decoded (--max-decoding-pixels)
  std::atomic<int> in_flight_{0};
  std::atomic<int64_t> requests_handled_{0};
  std::mutex idle_mutex_;
  std::condition_variable idle_wakeup_;
  bool stopping_ = false;
  Batcher batcher_;
  std::thread memory_releaser_;  // started last: it reads the members above
};

// Route handlers. `segments` are the path's parts after the API prefix.
HttpResponse handle_tf_serving(Service& service, const HttpRequest& request,
                               std::string& route_label);
HttpResponse handle_kserve(Service& service, const HttpRequest& request, std::string& route_label);
HttpResponse handle_classify_image(Service& service, const HttpRequest& request,
                                   const std::string& name, std::optional<int64_t> version);
// The image route's answer for one head: the two most likely classes of a softmax head, and each
// tag of a multi-label head with its threshold and decision — decided as `predict` decides
// (top2_classes and decide_tags of eval/metrics.h).
nlohmann::json softmax_head_json(const HeadSpec& head, const std::vector<float>& probabilities);
nlohmann::json tag_head_json(const HeadSpec& head, const std::vector<float>& probabilities,
                             const std::vector<double>& thresholds);

// Splits "/a/b/c" into {"a", "b", "c"}.
std::vector<std::string> split_path(const std::string& path);
// "12" → 12; HttpError 404 for anything that is not a version number.
int64_t parse_version_segment(const std::string& text);

}  // namespace garmentnet
