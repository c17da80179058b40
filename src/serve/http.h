// The HTTP layer behind a small interface: handlers see plain request/response structs, so the
// HTTP library (cpp-httplib's request processing today, behind an epoll front end and the request
// framing of http_framing.h) is an implementation detail of http_server.cpp and could be swapped
// without touching the routes.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace garmentnet {

// Header names compare case-insensitively (RFC 9110).
struct CaseInsensitiveLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using HttpHeaders = std::map<std::string, std::string, CaseInsensitiveLess>;

// One part of a multipart/form-data body.
struct FormPart {
  std::string name;          // form field name
  std::string filename;      // client-side file name (never used as a path)
  std::string content_type;  // as sent by the client
  std::string content;       // the bytes
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // decoded path without the query string
  HttpHeaders headers;
  std::string body;
  std::vector<FormPart> parts;  // multipart/form-data bodies, already split
  std::string remote_address;

  // The header's value, or "" when absent.
  std::string header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  HttpHeaders headers;  // extra headers
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
// Told the status of every request the HTTP layer answers itself, before or instead of the
// handler (a body or headers over the limits, malformed framing or request line).
using HttpRefusalObserver = std::function<void(int status)>;
// Shown each request with a non-empty body once its head is read, before the body: method, path
// (without the query string, not percent-decoded), headers and remote address. An answer it
// returns is sent at once, without reading the body, and the connection closes.
using HttpHeadCheck = std::function<std::optional<HttpResponse>(const HttpRequest& head)>;

// The slowest body upload the deadline of HttpServerOptions::read_timeout_s allows for.
inline constexpr double kMinBodyBytesPerSecond = 64 << 10;

struct HttpServerOptions {
  std::string host = "127.0.0.1";    // interface to bind; "0.0.0.0" for all
  int port = 8501;                   // 0 = any free port (see HttpServer::port)
  size_t max_body_bytes = 10 << 20;  // larger bodies get 413: declared, before they are read;
                                     // chunked, as soon as the chunks cross it
  size_t max_head_bytes = 64 << 10;  // request line + headers; larger get 431
  // Request bodies being read or handled, all connections together (a chunked body counts as
  // max_body_bytes): a request that does not fit beside the others gets 429 on its head. Parsed
  // JSON takes up to ~12× its text, so this bounds the memory of requests in flight.
  size_t max_body_bytes_in_flight = 128 << 20;
  size_t max_headers = 100;  // header fields; more get 431
  // Connection worker threads: requests whose head has arrived are read, handled and answered on
  // them. They mostly wait on the batcher, so this is sized for a load balancer's connection pool.
  // Connections waiting for a request head (idle keep-alive ones, slow clients) hold none.
  int threads = 128;
  // Open connections in all; beyond, accepting pauses and further clients wait in the kernel's
  // listen backlog.
  size_t max_connections = 1000;
  // A request's head must arrive whole within this long of its first byte, and its body within
  // this long plus its size at kMinBodyBytesPerSecond, however it trickles (slowloris): 408 past
  // the deadline. A client silent this long is dropped too.
  int read_timeout_s = 10;
  // Open connections from one client address; more are answered 503 at once and closed, so that
  // one client cannot hold every connection thread. Behind a load balancer every connection has
  // its address: give at least the size of its connection pool.
  size_t max_connections_per_client = 64;
  int write_timeout_s = 10;               // a client not reading this long is dropped
  int keep_alive_timeout_s = 5;           // idle keep-alive connections close after this
  size_t keep_alive_max_requests = 1000;  // requests per connection before it is closed
};

class HttpServer {
 public:
  // Binds the socket (InputError naming host:port when it cannot); serving starts with run().
  HttpServer(const HttpServerOptions& options, HttpHandler handler, HttpRefusalObserver on_refused,
             HttpHeadCheck check_head);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;  // the bound port (useful with port 0)
  // Serves until stop(); returns after in-flight requests have been answered.
  void run();
  // Stops accepting connections; callable from any thread, also before run().
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace garmentnet
