#include "serve/service.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <strings.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <thread>

#include "core/error.h"
#include "core/memory_release.h"
#include "serve/request_parsing.h"
#include "serve/web_assets.h"

namespace garmentnet {

using Clock = std::chrono::steady_clock;

HttpResponse json_response(int status, const nlohmann::json& body) {
  // Replace invalid UTF-8 (e.g. from a client-sent name echoed in an error) instead of throwing.
  return {.status = status,
          .content_type = "application/json",
          .body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
          .headers = {}};
}

std::string hide_server_paths(const std::string& message, const ModelRegistryOptions& models) {
  namespace fs = std::filesystem;
  const fs::path root =
      models.base_path.empty() ? models.model_file.parent_path() : models.base_path;
  std::string out = message;
  if (!root.empty()) {
    for (const fs::path& prefix :
         {fs::absolute(root).lexically_normal(), root.lexically_normal()}) {
      std::string text = prefix.string();
      while (text.size() > 1 && text.back() == '/') text.pop_back();
      if (text == "." || text == "/") continue;
      text += '/';
      for (size_t at = out.find(text); at != std::string::npos; at = out.find(text, at))
        out.erase(at, text.size());
    }
  }
  return without_absolute_paths(out);
}

std::string without_absolute_paths(std::string_view text) {
  // A path starts with '/' at the text's start or after a space, quote, '(' or '='; it runs up to
  // the next space, quote or parenthesis; with two or more non-empty segments it is cut to its
  // last one. One pass, no backtracking: the text may be a client's.
  const auto ends_path = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == '"' ||
           c == '\'' || c == '(' || c == ')';
  };
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  while (at < text.size()) {
    const bool starts_path =
        text[at] == '/' && (at == 0 || ends_path(text[at - 1]) || text[at - 1] == '=');
    if (!starts_path) {
      out += text[at++];
      continue;
    }
    size_t end = at;
    while (end < text.size() && !ends_path(text[end])) ++end;
    const std::string_view path = text.substr(at, end - at);
    const size_t name_end = path.find_last_not_of('/') + 1;  // a folder keeps its trailing '/'
    const size_t last_slash = path.find_last_of('/', name_end - 1);
    const bool has_dirs = name_end > 1 && last_slash > 0 &&
                          path.substr(0, name_end).find("//") == std::string_view::npos;
    out += has_dirs ? path.substr(last_slash + 1) : path;
    at = end;
  }
  return out;
}

HttpResponse error_response(const std::exception& error, const ModelRegistryOptions& models) {
  // Messages quote clients only in short excerpts; this bound is the last line of defence.
  constexpr size_t kMaxMessageBytes = 2048;
  const std::string message =
      client_text(hide_server_paths(error.what(), models), kMaxMessageBytes);
  if (const auto* http = dynamic_cast<const HttpError*>(&error)) {
    HttpResponse response = json_response(http->status, {{"error", message}});
    if (http->status == 401) response.headers.emplace("WWW-Authenticate", "Bearer");
    return response;
  }
  if (dynamic_cast<const InputError*>(&error) != nullptr)
    return json_response(400, {{"error", message}});
  return json_response(
      500, {{"error", fmt::format("internal error (a bug of the server, not of the request; it "
                                  "is logged there): {}",
                                  message)}});
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

int64_t parse_version_segment(const std::string& text) {
  int64_t version = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), version);
  if (error != std::errc() || end != text.data() + text.size() || version < 0) {
    throw HttpError(
        404, fmt::format("no model version \"{}\"; versions are non-negative integers", text));
  }
  return version;
}

Service::Service(const ServeOptions& options)
    : options_(options),
      metrics_(options.model_name),
      registry_(options.models,
                [this](int64_t, bool loaded) {
                  const auto newest = registry_.current();
                  metrics_.observe_model_load(loaded, newest ? newest->version : -1);
                }),
      decode_pool_(options.decode_threads > 0 ? options.decode_threads : default_thread_count(),
                   ThreadPriority::Background),
      single_image_decodes_(decode_pool_.size()),
      decoding_pixels_(options.limits.max_decoding_pixels),
      batcher_(options.batching,
               [this](const BatchStats& stats) { metrics_.observe_batch(stats); }),
      memory_releaser_([this] { release_memory_when_idle(); }) {
  registry_.poll();
  if (!registry_.current()) {
    const auto statuses = registry_.statuses();
    if (!options_.models.model_file.empty()) {
      fail("cannot serve {}: {}", options_.models.model_file.string(),
           statuses.empty() ? "it did not load" : statuses.front().error);
    }
    spdlog::warn("no loadable model version in {} yet; answering 503 until one appears",
                 options_.models.base_path.string());
  }
}

Service::~Service() { shutdown(); }

void Service::start() { registry_.start_watching(); }

void Service::shutdown() {
  batcher_.stop();
  registry_.stop_watching();
  {
    std::lock_guard lock(idle_mutex_);
    stopping_ = true;
  }
  idle_wakeup_.notify_all();
  if (memory_releaser_.joinable()) memory_releaser_.join();
}

void Service::release_memory_when_idle() {
  run_current_thread_in_background();
  int64_t seen = 0;      // requests handled at the last look
  int64_t released = 0;  // ... at the last release
  std::unique_lock lock(idle_mutex_);
  while (!idle_wakeup_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; })) {
    const int64_t handled = requests_handled_;
    if (handled == seen && handled != released && in_flight_ == 0) {
      release_free_memory();
      released = handled;
    }
    seen = handled;
  }
}

std::shared_ptr<const LoadedModel> Service::find_model(const std::string& name,
                                                       std::optional<int64_t> version) const {
  if (name != options_.model_name) {
    throw HttpError(
        404, fmt::format("Servable not found for request: model \"{}\" (this server serves \"{}\")",
                         client_text(name), options_.model_name));
  }
  std::shared_ptr<const LoadedModel> model =
      version ? registry_.find(*version) : registry_.current();
  if (model) return model;
  const std::vector<int64_t> served = registry_.served_versions();
  if (served.empty() || !version)
    throw HttpError(503, fmt::format("model \"{}\" has no version loaded yet", name));
  throw HttpError(404, fmt::format("Servable not found for request: model \"{}\" version {} "
                                   "(serving version {}; --serve-versions keeps more loaded)",
                                   name, *version, fmt::join(served, ", ")));
}

std::vector<cv::Mat> Service::prepare_images(std::vector<RequestImage> images,
                                             std::string_view noun, const Predictor& model,
                                             Clock::time_point deadline) {
  const RequestLimits& limits = options_.limits;
  const Preprocessing& pre = model.preprocessing();
  const int target_side = std::min(pre.width, pre.height);
  const auto where = [&](size_t i) { return fmt::format("{} {}", noun, i); };
  int64_t pixels = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    pixels += images[i].encoded
                  ? decoded_pixels(*images[i].encoded, where(i), limits.image, target_side)
                  : int64_t{images[i].pixels.rows} * images[i].pixels.cols;
  }
  if (pixels > limits.max_request_pixels) {
    throw HttpError(413, fmt::format("the request's {} image(s) decode to {} pixels, more than the "
                                     "limit of {} per request (--max-request-pixels); send fewer "
                                     "or smaller images",
                                     images.size(), pixels, limits.max_request_pixels));
  }
  const std::optional<AdmissionBudget::Share> decoding = decoding_pixels_.try_take(pixels);
  if (!decoding) {
    throw HttpError(429, fmt::format("the server is decoding {} pixels of other requests; this "
                                     "request's {} do not fit beside them "
                                     "(--max-decoding-pixels {}): retry later",
                                     decoding_pixels_.taken(), pixels, decoding_pixels_.limit()));
  }
  std::vector<cv::Mat> out(images.size());
  for_each_image(images.size(), [&](size_t i) {
    if (Clock::now() > deadline) {
      throw HttpError(504, fmt::format("the request's images were not decoded within {} ms; the "
                                       "server is overloaded",
                                       options_.request_timeout.count()));
    }
    const cv::Mat rgb = images[i].encoded
                            ? decode_image(*images[i].encoded, where(i), limits.image, target_side)
                            : images[i].pixels;
    out[i] = resize_for_model(rgb, pre);
  });
  return out;
}

std::vector<cv::Mat> Service::decode_instances(const std::vector<nlohmann::json>& instances,
                                               const Predictor& model, Clock::time_point deadline) {
  std::vector<InstanceImage> read(instances.size());
  for_each_image(instances.size(), [&](size_t i) {
    read[i] = read_instance(instances[i], fmt::format("instance {}", i), options_.limits);
  });
  std::vector<RequestImage> images(read.size());
  for (size_t i = 0; i < read.size(); ++i) {
    if (read[i].encoded) {
      images[i].encoded = *read[i].encoded;
    } else {
      images[i].pixels = read[i].pixels;
    }
  }
  return prepare_images(std::move(images), "instance", model, deadline);
}

void Service::for_each_image(size_t count, const std::function<void(size_t)>& body) {
  if (count != 1) {
    decode_pool_.parallel_for(count, body);
    return;
  }
  // Handing a lone image to a pool thread and waiting for it costs two context switches per
  // request (small_cnn at concurrency 32: 4-8% more requests/s without them, one A/B run).
  single_image_decodes_.acquire();
  struct Release {
    std::counting_semaphore<>& slots;
    ~Release() { slots.release(); }
  } release{single_image_decodes_};
  body(0);
}

HeadProbabilities Service::infer(Batcher::Arrival arrival, const LoadedModel& model,
                                 std::vector<cv::Mat> resized, Clock::time_point deadline) {
  BatchTicket ticket;
  try {
    ticket = batcher_.submit(std::move(arrival), model.predictor, std::move(resized));
  } catch (const Overloaded& e) {
    throw HttpError(e.reason == Overloaded::Reason::QueueFull ? 429 : 503, e.what());
  }
  metrics_.set_queued_images(batcher_.queued_images());
  if (ticket.result.wait_until(deadline) != std::future_status::ready) {
    *ticket.abandoned = true;
    throw HttpError(504,
                    fmt::format("no answer from the model within {} ms; the server is overloaded",
                                options_.request_timeout.count()));
  }
  return ticket.result.get();
}

PredictionRequest Service::open_prediction(const HttpRequest& request, const std::string& name,
                                           std::optional<int64_t> version,
                                           std::string_view expected) {
  check_api_key(request);
  std::shared_ptr<const LoadedModel> model = find_model(name, version);
  if (request.body.find_first_not_of(" \t\r\n") == std::string::npos && request.parts.empty())
    fail("empty request body; send {}", expected);
  return {.model = std::move(model),
          .arrival = batcher_.expect_request(),
          .deadline = Clock::now() + options_.request_timeout};
}

std::optional<HttpResponse> Service::check_head(const HttpRequest& head) const {
  try {
    check_api_key(head);
    return std::nullopt;
  } catch (const HttpError& error) {
    return error_response(error, options_.models);
  }
}

void Service::check_api_key(const HttpRequest& request) const {
  if (options_.api_key.empty()) return;
  // Authorization: <scheme> <credentials>; the scheme is case-insensitive (RFC 9110 §11.1).
  const std::string header = request.header("Authorization");
  const size_t space = header.find(' ');
  const bool bearer = space == 6 && ::strncasecmp(header.c_str(), "Bearer", 6) == 0;
  const size_t token = bearer ? header.find_first_not_of(' ', space) : std::string::npos;
  const std::string given = token == std::string::npos ? std::string() : header.substr(token);
  const std::string& expected = options_.api_key;
  // Compare every byte so the time taken does not reveal how much of the key matched.
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < given.size() && i < expected.size(); ++i) {
    difference |= static_cast<unsigned char>(given[i] ^ expected[i]);
  }
  if (difference != 0)
    throw HttpError(401, "missing or wrong API key; send \"Authorization: Bearer <key>\"");
}

HttpResponse Service::route(const HttpRequest& request, std::string& route_label) {
  const std::vector<std::string> segments = split_path(request.path);
  const bool get = request.method == "GET" || request.method == "HEAD";
  if (segments.empty() || segments[0] == "web") {
    route_label = "web";
    if (!get) throw HttpError(405, "the web page only answers GET");
    // "/", "/web" and "/web/" are the page; "/web/<file>" its other files.
    const std::string file =
        segments.size() <= 1 ? "" : request.path.substr(request.path.find("/web/") + 5);
    const WebAsset* asset = find_web_asset(file.empty() ? "index.html" : file);
    if (asset == nullptr)
      throw HttpError(404, fmt::format("no page {}", client_text(request.path)));
    return {.status = 200,
            .content_type = std::string(asset->content_type),
            .body = std::string(asset->content),
            .headers = {{"Cache-Control", "no-cache"}}};
  }
  if (segments.size() == 1 && (segments[0] == "healthz" || segments[0] == "readyz")) {
    route_label = "health";
    if (segments[0] == "healthz") return json_response(200, {{"status", "alive"}});
    const auto model = registry_.current();
    if (!model)
      return json_response(503,
                           {{"status", "not ready"}, {"error", "no model version loaded yet"}});
    return json_response(
        200, {{"status", "ready"}, {"model", options_.model_name}, {"version", model->version}});
  }
  if (segments.size() == 1 && segments[0] == "metrics") {
    route_label = "metrics";
    return {.status = 200,
            .content_type = "text/plain; version=0.0.4",
            .body = metrics_.render(),
            .headers = {}};
  }
  if (segments[0] == "v1") return handle_tf_serving(*this, request, route_label);
  if (segments[0] == "v2") return handle_kserve(*this, request, route_label);
  route_label = "unknown";
  throw HttpError(404, fmt::format("no route {} {}; see docs/serving.md",
                                   client_text(request.method), client_text(request.path)));
}

HttpResponse Service::handle(const HttpRequest& request) {
  const auto started = Clock::now();
  metrics_.add_in_flight(1);
  ++in_flight_;
  std::string route_label = "unknown";
  HttpResponse response;
  try {
    response = route(request, route_label);
  } catch (const std::exception& e) {
    response = error_response(e, options_.models);
    if (response.status == 500)
      spdlog::error("{} {} failed: {}", client_text(request.method), client_text(request.path),
                    client_text(e.what(), 2048));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  metrics_.observe_request(route_label, response.status, seconds);
  metrics_.add_in_flight(-1);
  --in_flight_;
  ++requests_handled_;
  spdlog::debug("{} {} {} {:.1f} ms", request.method, request.path, response.status,
                seconds * 1000);
  return response;
}

void Service::observe_refusal(int status) { metrics_.observe_request("refused", status, 0); }

Server::Server(const ServeOptions& options) : service_(std::make_unique<Service>(options)) {
  http_ = std::make_unique<HttpServer>(
      options.http, [this](const HttpRequest& request) { return service_->handle(request); },
      [this](int status) { service_->observe_refusal(status); },
      [this](const HttpRequest& head) { return service_->check_head(head); });
}

Server::~Server() {
  stop();
  http_.reset();
  service_.reset();
}

int Server::port() const { return http_->port(); }

void Server::run() {
  service_->start();
  spdlog::info("serving model \"{}\" on http://{}:{}/", service_->options().model_name,
               service_->options().http.host, port());
  http_->run();
  service_->shutdown();
  spdlog::info("server stopped");
}

void Server::stop() { http_->stop(); }

void serve_until_signal(const ServeOptions& options, const StopSignals& signals) {
  Server server(options);
  std::thread waiter([&] {
    const int signal = signals.wait();
    if (signal == 0) return;  // run() ended by itself
    spdlog::info("{} received: finishing requests in flight (a second one exits at once)",
                 signal == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
  });
  const auto end_waiter = [&] {
    signals.end_wait();
    waiter.join();
  };
  try {
    server.run();
  } catch (...) {
    end_waiter();
    throw;
  }
  end_waiter();
}

}  // namespace garmentnet
