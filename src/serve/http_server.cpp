#include <fcntl.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/admission_budget.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "serve/http.h"
#include "serve/http_framing.h"

namespace garmentnet {

std::string HttpRequest::header(const std::string& name) const {
  const auto found = headers.find(name);
  return found == headers.end() ? std::string() : found->second;
}

namespace {

using Clock = std::chrono::steady_clock;

// The connection worker threads. A connection is queued here once a request head has arrived
// whole, and a worker keeps it while it reads the body, answers, and finds the next head arriving
// at once; otherwise the connection goes back to the front end's event loop. The queue holds at
// most one entry per open connection, so HttpServerOptions::max_connections bounds it.
class ConnectionPool {
 public:
  explicit ConnectionPool(size_t threads) {
    workers_.reserve(threads);
    for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  ~ConnectionPool() { shutdown(); }
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  void enqueue(std::function<void()> connection) {
    {
      std::lock_guard lock(mutex_);
      waiting_.push_back(std::move(connection));
    }
    has_work_.notify_one();
  }

  // Serves the connections already queued, then ends the workers.
  void shutdown() {
    {
      std::lock_guard lock(mutex_);
      if (shutting_down_) return;
      shutting_down_ = true;
    }
    has_work_.notify_all();
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
      connection();
    }
  }

  std::mutex mutex_;
  std::condition_variable has_work_;
  std::deque<std::function<void()>> waiting_;
  bool shutting_down_ = false;
  std::vector<std::thread> workers_;
};

// The thread's connection while it is served: cpp-httplib's error handler (below) is only given
// the request and response, and must know whether the framing already refused the request.
class FramedConnection;
thread_local const FramedConnection* connection_of_this_thread = nullptr;

// The reason phrases of the statuses the framing and the head check answer.
const char* reason_phrase(int status) {
  switch (status) {
    case 401:
      return "Unauthorized";
    case 408:
      return "Request Timeout";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Bad Request";
  }
}

// A refusal answered by the HTTP layer itself: {"error": message} with `status`.
HttpResponse json_refusal(int status, const std::string& message, HttpHeaders headers = {}) {
  return {.status = status,
          .content_type = "application/json",
          .body = nlohmann::json{{"error", message}}.dump(),
          .headers = std::move(headers)};
}

int milliseconds_until(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, std::numeric_limits<int>::max()));
}

// The bytes of a refusal: the response, and the connection closes after it.
std::string refusal_text(const HttpResponse& response) {
  std::string extra_headers;
  for (const auto& [name, value] : response.headers)
    extra_headers += fmt::format("{}: {}\r\n", name, value);
  return fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}"
      "Connection: close\r\n\r\n{}",
      response.status, reason_phrase(response.status), response.content_type, response.body.size(),
      extra_headers, response.body);
}

// What a request head that did not arrive whole in time gets.
HttpResponse head_timeout_refusal(const HttpServerOptions& options) {
  return json_refusal(408, fmt::format("the request head did not arrive within {} s of its first "
                                       "byte: send it whole",
                                       options.read_timeout_s));
}

// Whether `received` holds a request head whole, or enough of one to refuse it (too large,
// malformed): either way it is the workers' to answer.
bool head_ready(std::string_view received, const HttpFramingLimits& limits) {
  try {
    return find_head_end(received, limits) != std::string_view::npos;
  } catch (const HttpFramingError&) {
    return true;
  }
}

HttpFramingLimits framing_limits(const HttpServerOptions& options) {
  return {.max_head_bytes = options.max_head_bytes,
          .max_headers = options.max_headers,
          .max_body_bytes = options.max_body_bytes};
}

// One client connection as cpp-httplib's Stream, with the framing of http_framing.h between the
// socket and the library: each request's head is read and checked here first, and the library is
// then given exactly that request's bytes — the head, then no more body than Content-Length or
// the chunked framing says, which stops at the body limit. A request refused by its framing is
// answered here, and the connection closes; so is a request whose head the head check refuses.
// It starts with the bytes the event loop received (a whole head, at least).
class FramedConnection final : public httplib::Stream {
 public:
  FramedConnection(socket_t socket, std::string received, const HttpServerOptions& options,
                   const HttpRefusalObserver& on_refused, const HttpHeadCheck& check_head,
                   AdmissionBudget& body_bytes_in_flight)
      : socket_(socket),
        options_(options),
        limits_(framing_limits(options)),
        on_refused_(on_refused),
        check_head_(check_head),
        body_bytes_in_flight_(body_bytes_in_flight),
        buffer_(std::move(received)) {}

  // Whether the next request's head is here whole (or can be refused already), after waiting up
  // to `wait_ms` for the rest of it. False also when the client closed (see client_closed()).
  bool has_next_head(int wait_ms) {
    const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(wait_ms);
    while (!head_ready(unread_bytes(), limits_)) {
      if (!wait_for(POLLIN, milliseconds_until(deadline))) return false;
      if (!receive()) {
        client_closed_ = true;
        return false;
      }
    }
    return true;
  }
  bool client_closed() const { return client_closed_; }

  // Reads the next request's head, which has_next_head() found. False when the request was
  // refused (answered here) and the connection should end.
  bool next_request() {
    head_.clear();
    head_read_ = 0;
    try {
      const size_t end = find_head_end(unread_bytes(), limits_);
      if (end == std::string_view::npos) fail_internal("next_request before a whole head");
      head_ = in_origin_form(unread_bytes().substr(0, end));
      buffer_read_ += end;
      RequestHead head = parse_request_head(head_, limits_);
      framing_ = head.body;
      if (!admit_body(std::move(head))) return false;
    } catch (const HttpFramingError& e) {
      refuse(json_refusal(e.status, e.what()));
      return false;
    }
    body_left_ = framing_.length;
    chunks_ = ChunkedBodyTracker(limits_.max_body_bytes);
    const double body_bytes = static_cast<double>(
        framing_.kind == BodyFraming::Kind::Chunked ? limits_.max_body_bytes : framing_.length);
    body_deadline_ = Clock::now() + std::chrono::seconds(options_.read_timeout_s) +
                     std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(body_bytes / kMinBodyBytesPerSecond));
    return true;
  }

  // Whether the library read all of the request (else the rest would be taken for the next one).
  bool request_finished() const {
    switch (framing_.kind) {
      case BodyFraming::Kind::None:
        return head_read_ == head_.size();
      case BodyFraming::Kind::Length:
        return body_left_ == 0;
      case BodyFraming::Kind::Chunked:
        return chunks_.done();
    }
    return false;
  }
  bool refused() const { return refused_; }
  // The current request has been answered: its body no longer counts as in flight.
  void request_answered() { body_share_ = {}; }
  // The bytes received past the current request (the start of the next one), taken away.
  std::string take_unread() {
    std::string rest = buffer_.substr(buffer_read_);
    buffer_.clear();
    buffer_read_ = 0;
    return rest;
  }

  // Ends the connection. After a refusal the client may still be sending its body; reading (and
  // dropping) it for a moment lets the client see the answer instead of a connection reset.
  void close() {
    if (refused_) {
      ::shutdown(socket_, SHUT_WR);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      char sink[16 << 10];
      while (std::chrono::steady_clock::now() < deadline && wait_for(POLLIN, 100) &&
             ::recv(socket_, sink, sizeof sink, 0) > 0) {
      }
    }
    ::shutdown(socket_, SHUT_RDWR);
    ::close(socket_);
  }

  bool is_readable() const override {
    return head_read_ < head_.size() || unread() > 0 ||
           wait_for(POLLIN, options_.read_timeout_s * 1000);
  }
  bool is_writable() const override { return wait_for(POLLOUT, options_.write_timeout_s * 1000); }

  ssize_t read(char* out, size_t size) override {
    if (refused_) return -1;
    if (head_read_ < head_.size()) {
      const size_t n = std::min(size, head_.size() - head_read_);
      std::memcpy(out, head_.data() + head_read_, n);
      head_read_ += n;
      return static_cast<ssize_t>(n);
    }
    if (request_finished()) return 0;
    if (unread() == 0) {
      // A client silent for the read timeout, or past the body's deadline, gets 408.
      const int wait_ms =
          std::min(options_.read_timeout_s * 1000, milliseconds_until(body_deadline_));
      if (!wait_for(POLLIN, wait_ms)) {
        refuse(json_refusal(
            408, fmt::format("the request body did not arrive in time (it may pause at most {} s, "
                             "and must come at {} KiB/s at least)",
                             options_.read_timeout_s, kMinBodyBytesPerSecond / 1024)));
        return -1;
      }
      if (!receive()) return -1;
    }
    size_t n = std::min(size, unread());
    if (framing_.kind == BodyFraming::Kind::Length) {
      n = static_cast<size_t>(std::min<uint64_t>(n, body_left_));
      body_left_ -= n;
    } else {
      try {
        n = chunks_.feed(unread_bytes().substr(0, n));
      } catch (const HttpFramingError& e) {
        refuse(json_refusal(e.status, e.what()));
        return -1;
      }
    }
    std::memcpy(out, buffer_.data() + buffer_read_, n);
    buffer_read_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* data, size_t size) override {
    if (refused_ || !is_writable()) return -1;
    return ::send(socket_, data, size, MSG_NOSIGNAL);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    address_of(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    address_of(::getsockname, ip, port);
  }
  socket_t socket() const override { return socket_; }

  // Answers the current request (or the connection) at once, before any body is read, and marks
  // the connection for closing.
  void refuse(const HttpResponse& response) {
    refused_ = true;
    on_refused_(response.status);
    const std::string answer = refusal_text(response);
    for (size_t sent = 0; sent < answer.size() && is_writable();) {
      const ssize_t n = ::send(socket_, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
  }

 private:
  size_t unread() const { return buffer_.size() - buffer_read_; }
  std::string_view unread_bytes() const { return std::string_view(buffer_).substr(buffer_read_); }

  bool wait_for(short events, int timeout_ms) const {
    pollfd entry{.fd = socket_, .events = events, .revents = 0};
    int ready = 0;
    do {
      ready = ::poll(&entry, 1, timeout_ms);
    } while (ready < 0 && errno == EINTR);
    return ready > 0;
  }

  // Appends what the socket has (at most 16 KiB); false when the peer closed or failed.
  bool receive() {
    if (buffer_read_ == buffer_.size()) {
      buffer_.clear();
      buffer_read_ = 0;
    }
    const size_t old_size = buffer_.size();
    buffer_.resize(old_size + (16 << 10));
    const ssize_t n = ::recv(socket_, buffer_.data() + old_size, 16 << 10, 0);
    buffer_.resize(old_size + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    return n > 0;
  }

  // Whether the body of the request with `head` may be read: a request without a body always; one
  // with a body when the head check lets it through and it fits in the bytes in flight (its share
  // is then held until it is answered). Otherwise it is refused here.
  bool admit_body(RequestHead head) {
    if (framing_.kind == BodyFraming::Kind::None ||
        (framing_.kind == BodyFraming::Kind::Length && framing_.length == 0))
      return true;
    HttpRequest request{.method = std::move(head.method),
                        .path = head.target.substr(0, head.target.find('?')),
                        .headers = std::move(head.headers)};
    int port = 0;
    get_remote_ip_and_port(request.remote_address, port);
    if (std::optional<HttpResponse> answer = check_head_(request)) {
      refuse(*answer);
      return false;
    }
    const uint64_t body_bytes =
        framing_.kind == BodyFraming::Kind::Chunked ? limits_.max_body_bytes : framing_.length;
    std::optional<AdmissionBudget::Share> share =
        body_bytes_in_flight_.try_take(static_cast<int64_t>(body_bytes));
    if (!share) {
      refuse(json_refusal(429,
                          fmt::format("the server holds {} bytes of other requests; this one's {} "
                                      "do not fit beside them (--max-mib-in-flight): retry later",
                                      body_bytes_in_flight_.taken(), body_bytes),
                          {{"Retry-After", "1"}}));
      return false;
    }
    body_share_ = std::move(*share);
    return true;
  }

  template <typename Query>
  void address_of(Query query, std::string& ip, int& port) const {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    ip.clear();
    port = 0;
    if (query(socket_, reinterpret_cast<sockaddr*>(&address), &length) != 0) return;
    char host[NI_MAXHOST];
    char service[NI_MAXSERV];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&address), length, host, sizeof host, service,
                      sizeof service, NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
      ip = host;
      port = std::atoi(service);
    }
  }

  socket_t socket_;
  const HttpServerOptions& options_;
  HttpFramingLimits limits_;
  const HttpRefusalObserver& on_refused_;
  const HttpHeadCheck& check_head_;
  AdmissionBudget& body_bytes_in_flight_;
  AdmissionBudget::Share body_share_;  // of the current request's body
  std::string buffer_;                 // bytes received and not yet handed on (from buffer_read_)
  size_t buffer_read_ = 0;
  std::string head_;  // the current request's head, handed to the library first
  size_t head_read_ = 0;
  BodyFraming framing_;
  uint64_t body_left_ = 0;  // of a Content-Length body
  Clock::time_point body_deadline_;
  ChunkedBodyTracker chunks_{0};
  bool refused_ = false;
  bool client_closed_ = false;
};

// The open connections of each client address, against
// HttpServerOptions::max_connections_per_client.
class ConnectionsPerClient {
 public:
  explicit ConnectionsPerClient(size_t limit) : limit_(std::max<size_t>(1, limit)) {}
  size_t limit() const { return limit_; }

  // Counts a connection from `address`; false, not counted, when the address has the limit open.
  bool open(const std::string& address) {
    std::lock_guard lock(mutex_);
    size_t& count = open_[address];
    if (count >= limit_) return false;
    ++count;
    return true;
  }
  void close(const std::string& address) {
    std::lock_guard lock(mutex_);
    if (--open_[address] == 0) open_.erase(address);
  }

 private:
  const size_t limit_;
  std::mutex mutex_;
  std::map<std::string, size_t> open_;
};

// A connection waiting in the event loop: for its next request head (new, between keep-alive
// requests, or with part of a head received), or, refused, for its client to stop sending.
struct ParkedConnection {
  socket_t socket = INVALID_SOCKET;
  std::string client;          // its address
  std::string received;        // the start of its next request
  size_t served = 0;           // requests answered on it so far
  Clock::time_point deadline;  // idle: keep-alive timeout; part of a head: head deadline
  bool closing = false;        // refused: what it still sends is dropped until the deadline
};

// cpp-httplib's request processing behind an event-driven front end. One thread (serve()'s loop)
// accepts connections and waits on all of them with epoll until a request head has arrived whole;
// only then does a connection take a worker, which reads the body, answers through the library, and
// keeps the connection while the next head arrives at once. A connection that goes quiet goes
// back to the event loop, so idle keep-alive connections and heads trickling in (slowloris) hold
// no thread. The loop enforces the head deadline (408), the keep-alive timeout, the connections
// per client (503) and in all (accepting pauses at max_connections).
class FramedServer final : public httplib::Server {
 public:
  FramedServer(const HttpServerOptions& options, HttpRefusalObserver on_refused,
               HttpHeadCheck check_head)
      : options_(options),
        limits_(framing_limits(options)),
        on_refused_(std::move(on_refused)),
        check_head_(std::move(check_head)),
        body_bytes_in_flight_(static_cast<int64_t>(options.max_body_bytes_in_flight)),
        clients_(options.max_connections_per_client),
        epoll_(::epoll_create1(EPOLL_CLOEXEC)),
        wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (epoll_ < 0 || wake_ < 0)
      fail("cannot set up the HTTP event loop: {}", std::strerror(errno));
  }
  ~FramedServer() override {
    stop_serving();
    if (svr_sock_ != INVALID_SOCKET) ::close(svr_sock_);
    ::close(epoll_);
    ::close(wake_);
  }

  // Serves until stop_serving(); returns once the requests in flight are answered. The event loop
  // runs on a thread of its own at the connection threads' low priority (the model's come first).
  void serve() {
    std::thread loop([this] {
      run_current_thread_in_background();
      run_event_loop();
    });
    loop.join();
  }

  // Callable from any thread, also before serve().
  void stop_serving() {
    stopping_ = true;
    wake();
  }

 private:
  // A worker keeps a connection this long for its next request head: clients of a busy server
  // send their next request within tens of milliseconds, and handing the connection to the event
  // loop and back costs more than the wait. Longer quiet connections wait in the loop.
  static constexpr int kNextHeadWaitMs = 100;

  void run_event_loop() {
    const socket_t listening = svr_sock_;
    ::fcntl(listening, F_SETFL, ::fcntl(listening, F_GETFL) | O_NONBLOCK);
    watch(listening);
    watch(wake_);
    std::vector<epoll_event> events(256);
    while (!stopping_) {
      const int ready =
          ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), next_timeout_ms());
      for (int i = 0; i < ready; ++i) {
        const int fd = events[static_cast<size_t>(i)].data.fd;
        if (fd == listening) {
          accept_connections(listening);
        } else if (fd == wake_) {
          uint64_t count = 0;
          [[maybe_unused]] const ssize_t n = ::read(wake_, &count, sizeof count);
        } else {
          receive(fd);
        }
      }
      park_returned();
      expire(Clock::now());
      if (!accepting_ && open_ < options_.max_connections && Clock::now() >= accept_again_) {
        accepting_ = true;
        watch(listening);
      }
    }
    ::close(svr_sock_.exchange(INVALID_SOCKET));
    for (auto& [fd, parked] : parked_) close_connection(parked.socket, parked.client);
    parked_.clear();
    workers_.shutdown();
    park_returned();  // connections the workers handed back while stopping: closed there
  }

  void watch(int fd) {
    epoll_event event{.events = EPOLLIN, .data = {.fd = fd}};
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event);
  }
  void wake() {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_, &one, sizeof one);
  }

  // Accepts what the listening socket has, up to max_connections open (then accepting pauses, and
  // further clients wait in the kernel's listen backlog).
  void accept_connections(socket_t listening) {
    for (;;) {
      if (open_ >= options_.max_connections) {
        pause_accepting(listening);
        return;
      }
      sockaddr_storage address{};
      socklen_t length = sizeof address;
      const socket_t socket =
          ::accept4(listening, reinterpret_cast<sockaddr*>(&address), &length, SOCK_CLOEXEC);
      if (socket < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE) {
          // Out of descriptors: try again in a moment, not at once (the socket stays readable).
          accept_again_ = Clock::now() + std::chrono::milliseconds(100);
          pause_accepting(listening);
        }
        return;
      }
      const int on = 1;
      ::setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);  // no 40 ms Nagle delays
      const std::string client = numeric_host(address, length);
      ParkedConnection parked{
          .socket = socket,
          .client = client,
          .deadline = Clock::now() + std::chrono::seconds(options_.keep_alive_timeout_s)};
      if (!clients_.open(client)) {
        refuse(std::move(parked),
               json_refusal(503,
                            fmt::format("{} has {} connections open to this server already "
                                        "(--max-connections-per-client): send on those, or retry "
                                        "later",
                                        client, clients_.limit()),
                            {{"Retry-After", "1"}}),
               /*counted=*/false);
        continue;
      }
      ++open_;
      park(std::move(parked));
    }
  }

  void pause_accepting(socket_t listening) {
    accepting_ = false;
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, listening, nullptr);
  }

  // Puts a connection in the event loop, or hands it to a worker when its next head is here.
  void park(ParkedConnection parked) {
    if (!parked.closing && head_ready(parked.received, limits_)) {
      dispatch(std::move(parked));
      return;
    }
    watch(parked.socket);
    parked_.emplace(parked.socket, std::move(parked));
  }

  // Reads what a parked connection sent: the start of a head (whose deadline starts with its first
  // byte), or, refused, bytes to drop.
  void receive(int fd) {
    const auto found = parked_.find(fd);
    if (found == parked_.end()) return;
    ParkedConnection& parked = found->second;
    char chunk[16 << 10];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      forget(found);
      return;
    }
    if (parked.closing) return;
    if (parked.received.empty())
      parked.deadline = Clock::now() + std::chrono::seconds(options_.read_timeout_s);
    parked.received.append(chunk, static_cast<size_t>(n));
    if (!head_ready(parked.received, limits_)) return;
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    ParkedConnection ready = std::move(parked);
    parked_.erase(found);
    dispatch(std::move(ready));
  }

  // Past their deadline: a head not whole gets 408, an idle connection closes, a refused one too.
  void expire(Clock::time_point now) {
    for (auto it = parked_.begin(); it != parked_.end();) {
      if (now < it->second.deadline) {
        ++it;
      } else if (it->second.closing || it->second.received.empty()) {
        it = forget(it);
      } else {
        ParkedConnection late = std::move(it->second);
        ::epoll_ctl(epoll_, EPOLL_CTL_DEL, late.socket, nullptr);
        it = parked_.erase(it);
        refuse(std::move(late), head_timeout_refusal(options_), /*counted=*/true);
      }
    }
  }

  // Answers a connection from the event loop and keeps it for a second, dropping what the client
  // still sends, so that the client reads the answer instead of a reset. `counted`: the connection
  // counts in open_ and its client's connections.
  void refuse(ParkedConnection parked, const HttpResponse& response, bool counted) {
    on_refused_(response.status);
    const std::string answer = refusal_text(response);
    [[maybe_unused]] const ssize_t sent =
        ::send(parked.socket, answer.data(), answer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(parked.socket, SHUT_WR);
    if (!counted) {
      // Not counted, so not kept: an address over its share must not hold descriptors either.
      // What it sent already is read first, so that closing sends no reset over the answer.
      char sink[16 << 10];
      while (::recv(parked.socket, sink, sizeof sink, MSG_DONTWAIT) > 0) {
      }
      ::close(parked.socket);
      return;
    }
    parked.closing = true;
    parked.received.clear();
    parked.deadline = Clock::now() + std::chrono::seconds(1);
    park(std::move(parked));
  }

  std::unordered_map<int, ParkedConnection>::iterator forget(
      std::unordered_map<int, ParkedConnection>::iterator parked) {
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, parked->first, nullptr);
    close_connection(parked->second.socket, parked->second.client);
    return parked_.erase(parked);
  }

  int next_timeout_ms() const {
    const Clock::time_point now = Clock::now();
    Clock::time_point next = now + std::chrono::seconds(1);
    if (!accepting_ && accept_again_ > now) next = accept_again_;
    for (const auto& [fd, parked] : parked_) next = std::min(next, parked.deadline);
    return milliseconds_until(next) + 1;
  }

  // A worker serves the connection's requests while each next head arrives at once.
  void dispatch(ParkedConnection parked) {
    workers_.enqueue(
        [this, parked = std::move(parked)]() mutable { serve_connection(std::move(parked)); });
  }

  void serve_connection(ParkedConnection parked) {
    FramedConnection connection(parked.socket, std::move(parked.received), options_, on_refused_,
                                check_head_, body_bytes_in_flight_);
    connection_of_this_thread = &connection;
    bool wait_in_loop = false;
    while (connection.next_request()) {
      const bool last = ++parked.served >= options_.keep_alive_max_requests;
      bool client_closed = false;
      const bool answered = process_request(connection, last, client_closed, nullptr);
      connection.request_answered();
      if (!answered || client_closed || last || !connection.request_finished() || stopping_) break;
      if (!connection.has_next_head(kNextHeadWaitMs)) {
        wait_in_loop = !connection.client_closed();
        break;
      }
    }
    connection_of_this_thread = nullptr;
    if (wait_in_loop && !stopping_) {
      parked.received = connection.take_unread();
      parked.deadline = Clock::now() + std::chrono::seconds(parked.received.empty()
                                                                ? options_.keep_alive_timeout_s
                                                                : options_.read_timeout_s);
      {
        std::lock_guard lock(returned_mutex_);
        returned_.push_back(std::move(parked));
      }
      wake();
      return;
    }
    connection.close();
    clients_.close(parked.client);
    connection_closed();
  }

  // Connections the workers handed back, into the event loop (closed once it stops).
  void park_returned() {
    std::vector<ParkedConnection> returned;
    {
      std::lock_guard lock(returned_mutex_);
      returned.swap(returned_);
    }
    for (ParkedConnection& parked : returned) {
      if (stopping_) {
        close_connection(parked.socket, parked.client);
      } else {
        park(std::move(parked));
      }
    }
  }

  void close_connection(socket_t socket, const std::string& client) {
    ::close(socket);
    clients_.close(client);
    connection_closed();
  }

  void connection_closed() {
    --open_;
    if (!accepting_) wake();
  }

  static std::string numeric_host(const sockaddr_storage& address, socklen_t length) {
    char host[NI_MAXHOST];
    if (::getnameinfo(reinterpret_cast<const sockaddr*>(&address), length, host, sizeof host,
                      nullptr, 0, NI_NUMERICHOST) != 0)
      return "";
    return host;
  }

  const HttpServerOptions options_;
  const HttpFramingLimits limits_;
  const HttpRefusalObserver on_refused_;
  const HttpHeadCheck check_head_;
  AdmissionBudget body_bytes_in_flight_;
  ConnectionsPerClient clients_;
  const int epoll_;
  const int wake_;  // an eventfd: wakes the loop (stop, a connection handed back or closed)
  std::atomic<bool> stopping_{false};
  std::atomic<bool> accepting_{true};
  Clock::time_point accept_again_;  // after running out of descriptors: accept from then on
  std::atomic<size_t> open_{0};     // connections counted against max_connections
  std::unordered_map<int, ParkedConnection> parked_;  // the event loop's alone
  std::mutex returned_mutex_;
  std::vector<ParkedConnection> returned_;
  ConnectionPool workers_{static_cast<size_t>(std::max(1, options_.threads))};
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
    case 414:
      return "request URI too long";
    case 400:
      return "malformed HTTP request";
    default:
      return "HTTP error " + std::to_string(status);
  }
}

}  // namespace

struct HttpServer::Impl {
  Impl(const HttpServerOptions& options, HttpRefusalObserver on_refused, HttpHeadCheck check_head)
      : server(options, std::move(on_refused), std::move(check_head)) {}
  FramedServer server;
  HttpHandler handler;
  int port = 0;
};

HttpServer::HttpServer(const HttpServerOptions& options, HttpHandler handler,
                       HttpRefusalObserver on_refused, HttpHeadCheck check_head)
    : impl_(std::make_unique<Impl>(options, on_refused, std::move(check_head))) {
  impl_->handler = std::move(handler);
  httplib::Server& server = impl_->server;
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
  // The library's own refusals (a malformed request line, a URI over 8 KiB) are counted and get
  // a JSON body; a read failing because the framing refused the request was answered already.
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [on_refused](const httplib::Request&, httplib::Response& response) {
        if (!response.body.empty() || connection_of_this_thread->refused())
          return httplib::Server::HandlerResponse::Unhandled;
        on_refused(response.status);
        response.set_content(
            nlohmann::json{{"error", library_error_message(response.status)}}.dump(),
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

void HttpServer::run() { impl_->server.serve(); }

void HttpServer::stop() { impl_->server.stop_serving(); }

}  // namespace garmentnet
