#include <httplib.h>
#include <strings.h>
#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "serve/http.h"

namespace garmentnet {

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
  return ::strcasecmp(a.c_str(), b.c_str()) < 0;
}

std::string HttpRequest::header(const std::string& name) const {
  const auto found = headers.find(name);
  return found == headers.end() ? std::string() : found->second;
}

struct HttpServer::Impl {
  httplib::Server server;
  HttpHandler handler;
  int port = 0;
  // httplib's stop() does nothing before listening has begun, so a stop() that races with run()
  // is remembered here and honoured.
  std::atomic<bool> stopping{false};
  std::atomic<bool> run_entered{false};
  std::atomic<bool> run_finished{false};
};

namespace {

// cpp-httplib hands every accepted connection to a task queue and a worker keeps it for as long as
// the client keeps it alive. httplib's own pool lets connections wait in an unbounded list; this
// one lets at most `max_waiting` wait and otherwise blocks the accept loop, so further clients
// wait in the kernel's listen backlog (bounded) instead of in this process's memory.
class ConnectionPool final : public httplib::TaskQueue {
 public:
  ConnectionPool(size_t threads, size_t max_waiting)
      : max_waiting_(std::max<size_t>(1, max_waiting)) {
    workers_.reserve(threads);
    for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  ~ConnectionPool() override { shutdown(); }
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  void enqueue(std::function<void()> connection) override {
    {
      std::unique_lock lock(mutex_);
      has_room_.wait(lock, [this] { return waiting_.size() < max_waiting_ || shutting_down_; });
      waiting_.push_back(std::move(connection));
    }
    has_work_.notify_one();
  }

  // Serves the connections already accepted, then ends the workers.
  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      if (shutting_down_) return;
      shutting_down_ = true;
    }
    has_work_.notify_all();
    has_room_.notify_all();
    for (std::thread& worker : workers_) worker.join();
  }

 private:
  void work() {
    run_current_thread_in_background();
    for (;;) {
      std::function<void()> connection;
      {
        std::unique_lock lock(mutex_);
        has_work_.wait(lock, [this] { return !waiting_.empty() || shutting_down_; });
        if (waiting_.empty()) return;
        connection = std::move(waiting_.front());
        waiting_.pop_front();
      }
      has_room_.notify_one();
      connection();
    }
  }

  const size_t max_waiting_;
  std::mutex mutex_;
  std::condition_variable has_work_;
  std::condition_variable has_room_;
  std::deque<std::function<void()>> waiting_;
  bool shutting_down_ = false;
  std::vector<std::thread> workers_;
};

HttpRequest to_request(const httplib::Request& in) {
  HttpRequest out;
  out.method = in.method;
  out.path = in.path;
  for (const auto& [name, value] : in.headers) out.headers.emplace(name, value);
  out.body = in.body;
  out.remote_address = in.remote_addr;
  for (const auto& [name, part] : in.files) {
    out.parts.push_back({.name = name,
                         .filename = part.filename,
                         .content_type = part.content_type,
                         .content = part.content});
  }
  return out;
}

void write_response(const HttpResponse& in, httplib::Response& out) {
  out.status = in.status;
  for (const auto& [name, value] : in.headers) out.set_header(name, value);
  out.set_content(in.body, in.content_type);
}

// Errors raised by the HTTP library itself (body too large, bad request line) get the same
// {"error": "..."} body as the routes.
std::string library_error_message(int status) {
  switch (status) {
    case 413:
      return "request body too large";
    case 414:
      return "request URI too long";
    case 400:
      return "malformed HTTP request";
    default:
      return "HTTP error " + std::to_string(status);
  }
}

}  // namespace

HttpServer::HttpServer(const HttpServerOptions& options, HttpHandler handler)
    : impl_(std::make_unique<Impl>()) {
  impl_->handler = std::move(handler);
  httplib::Server& server = impl_->server;
  const auto threads = static_cast<size_t>(std::max(1, options.threads));
  const size_t max_waiting = options.max_waiting_connections;
  server.new_task_queue = [threads, max_waiting] {
    return new ConnectionPool(threads, max_waiting);
  };
  server.set_payload_max_length(options.max_body_bytes);
  server.set_tcp_nodelay(true);  // else small answers wait ~40 ms for delayed ACKs (Nagle)
  server.set_read_timeout(options.read_timeout_s, 0);
  server.set_write_timeout(options.write_timeout_s, 0);
  server.set_keep_alive_timeout(options.keep_alive_timeout_s);
  server.set_keep_alive_max_count(options.keep_alive_max_requests);
  const auto dispatch = [this](const httplib::Request& request, httplib::Response& response) {
    write_response(impl_->handler(to_request(request)), response);
  };
  for (const char* pattern : {".*"}) {
    server.Get(pattern, dispatch);
    server.Post(pattern, dispatch);
    server.Put(pattern, dispatch);
    server.Delete(pattern, dispatch);
    server.Patch(pattern, dispatch);
    server.Options(pattern, dispatch);
  }
  server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&,
                                                                   httplib::Response& response) {
    if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    response.set_content(nlohmann::json{{"error", library_error_message(response.status)}}.dump(),
                         "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  // Handlers never throw (they map errors to statuses); this is the last line of defence.
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
        response.status = 500;
        response.set_content(R"({"error":"internal error"})", "application/json");
      });
  // cpp-httplib listens with a backlog of 5: a load balancer or benchmark opening dozens of
  // connections at once overflows it and some connections fail. The listening socket is
  // remembered while binding and given the system's maximum backlog afterwards (calling listen()
  // again on a listening socket only changes its backlog).
  int listening_socket = -1;
  server.set_socket_options([&listening_socket](socket_t socket) {
    httplib::default_socket_options(socket);
    listening_socket = socket;
  });
  if (options.port == 0) {
    impl_->port = server.bind_to_any_port(options.host);
    if (impl_->port < 0) fail("cannot bind {} on any port", options.host);
  } else {
    if (!server.bind_to_port(options.host, options.port)) {
      fail(
          "cannot listen on {}:{} (in use, or not an address of this machine); pick another "
          "--port/--host",
          options.host, options.port);
    }
    impl_->port = options.port;
  }
  server.set_socket_options(httplib::default_socket_options);
  if (listening_socket >= 0) ::listen(listening_socket, SOMAXCONN);
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::port() const { return impl_->port; }

void HttpServer::run() {
  impl_->run_entered = true;
  if (!impl_->stopping) impl_->server.listen_after_bind();
  impl_->run_finished = true;
}

void HttpServer::stop() {
  impl_->stopping = true;
  if (!impl_->run_entered) return;  // run() will see `stopping` and return at once
  while (!impl_->run_finished && !impl_->server.is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  impl_->server.stop();
}

}  // namespace garmentnet
