// Where an HTTP/1.1 request's head and body end, checked before the HTTP library reads them:
// header count and size, Content-Length (one value, digits only, within the body limit) or
// chunked transfer coding, and the decoded size of a chunked body as it arrives. Debian's
// cpp-httplib 0.11 (a compiled library) has no header limits, reads a chunked body whole and
// waits for a too-large Content-Length body before answering; http_server.cpp puts this framing
// between the socket and the library. Socket-free, so it can be fuzzed on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "serve/http.h"

namespace garmentnet {

struct HttpFramingLimits {
  size_t max_head_bytes = 64 << 10;  // request line + headers; larger heads get 431
  size_t max_headers = 100;          // header fields; more get 431
  size_t max_body_bytes = 10 << 20;  // larger bodies (declared, or chunks as they come) get 413
};

// A request refused by its framing; `status` is the HTTP answer (400, 413, 415, 431).
class HttpFramingError : public std::runtime_error {
 public:
  HttpFramingError(int status, const std::string& message)
      : std::runtime_error(message), status(status) {}
  int status;
};

struct BodyFraming {
  enum class Kind { None, Length, Chunked };
  Kind kind = Kind::None;
  uint64_t length = 0;  // for Kind::Length
};

// Where the head ends in `received` (the bytes read so far from a request): the offset just past
// the blank line, or npos while incomplete. HttpFramingError 431 when the head is already longer
// than the limit or holds more header lines than it; 400 at once for a line ended by a bare LF
// (RFC 9112 §2.2 allows refusing it; waiting for a CRLF that never comes would hold the
// connection). Leading empty lines are part of the head (RFC 9112 §2.2 lets a server ignore them).
size_t find_head_end(std::string_view received, const HttpFramingLimits& limits);

// A complete head (as found by find_head_end) as the HTTP library is to see it: leading empty
// lines dropped, and a request target in absolute form ("POST http://host/v1/... HTTP/1.1", which
// RFC 9112 §3.2.2 says a server must accept) reduced to its origin form ("/v1/...").
std::string in_origin_form(std::string_view head);

// What the framing reads of a head in origin form, before any of the body is read.
struct RequestHead {
  std::string method;
  std::string target;  // path and query, as sent
  HttpHeaders headers;
  BodyFraming body;
};

// Parses a head in origin form. HttpFramingError 400 for a malformed request line, a header line
// without a colon or whose name is not a token (RFC 9110 §5.1: no spaces, no UTF-8), a
// Content-Length that is not a plain number, several different Content-Length values, a
// Transfer-Encoding other than "chunked" or together with Content-Length; 413 for a
// Content-Length beyond the body limit; 415 for a Content-Encoding other than "identity" (bodies
// are never inflated, so a small compressed body cannot become a large one).
RequestHead parse_request_head(std::string_view head, const HttpFramingLimits& limits);

// Follows a chunked body (RFC 9112 §7.1) as its bytes arrive, without copying them, so that the
// request ends exactly where the body ends and the decoded size is known at every chunk.
class ChunkedBodyTracker {
 public:
  explicit ChunkedBodyTracker(size_t max_body_bytes) : max_body_bytes_(max_body_bytes) {}
  // How many of `bytes` belong to the body (all of them unless it ends inside them).
  // HttpFramingError 400 for malformed framing or trailer fields (the HTTP library takes none),
  // 413 as soon as a chunk size takes the decoded body past the limit.
  size_t feed(std::string_view bytes);
  bool done() const { return state_ == State::Done; }

 private:
  enum class State { Size, Extension, SizeLf, Data, DataCr, DataLf, Trailer, TrailerLf, Done };
  size_t max_body_bytes_;
  State state_ = State::Size;
  uint64_t chunk_size_ = 0;
  uint64_t chunk_left_ = 0;
  size_t size_digits_ = 0;
  size_t line_bytes_ = 0;  // of the current chunk extension
  uint64_t decoded_ = 0;
};

}  // namespace garmentnet
