#include "serve/http_framing.h"

#include <fmt/format.h>
#include <strings.h>

#include <algorithm>
#include <limits>
#include <optional>

namespace garmentnet {

// Here rather than with the server, so that the framing builds alone (fuzz/http_framing_fuzzer).
bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
  return ::strcasecmp(a.c_str(), b.c_str()) < 0;
}

namespace {

constexpr std::string_view kCrlf = "\r\n";

size_t skip_leading_empty_lines(std::string_view text) {
  size_t at = 0;
  while (text.substr(at, 2) == kCrlf) at += 2;
  return at;
}

std::string_view trim(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// A token (RFC 9110 §5.6.2): one or more of the letters, digits and !#$%&'*+-.^_`|~.
bool is_token(std::string_view text) {
  constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           kSymbols.find(c) != std::string_view::npos;
  });
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// A Content-Length field value: one number, or a list of equal numbers ("5, 5"). Numbers beyond
// 2^64 saturate: they are too large either way.
uint64_t content_length_value(std::string_view value) {
  std::optional<uint64_t> result;
  size_t start = 0;
  while (start <= value.size()) {
    const size_t comma = std::min(value.find(',', start), value.size());
    const std::string_view element = trim(value.substr(start, comma - start));
    if (element.empty() || element.find_first_not_of("0123456789") != std::string_view::npos) {
      throw HttpFramingError(
          400, fmt::format("Content-Length \"{}\" is not a byte count", std::string(value)));
    }
    uint64_t number = 0;
    for (const char digit : element) {
      const auto d = static_cast<uint64_t>(digit - '0');
      number = number > (std::numeric_limits<uint64_t>::max() - d) / 10
                   ? std::numeric_limits<uint64_t>::max()
                   : number * 10 + d;
    }
    if (result && *result != number)
      throw HttpFramingError(400, "the request has different Content-Length values");
    result = number;
    start = comma + 1;
  }
  return *result;
}

}  // namespace

size_t find_head_end(std::string_view received, const HttpFramingLimits& limits) {
  const size_t start = skip_leading_empty_lines(received);
  const size_t blank = received.find("\r\n\r\n", start);
  const size_t end = blank == std::string_view::npos ? std::string_view::npos : blank + 4;
  const std::string_view head = received.substr(0, std::min(end, received.size()));
  for (size_t lf = head.find('\n'); lf != std::string_view::npos; lf = head.find('\n', lf + 1)) {
    if (lf == 0 || head[lf - 1] != '\r')
      throw HttpFramingError(400, "request head lines must end with CRLF, not a bare LF");
  }
  if (head.size() > limits.max_head_bytes) {
    throw HttpFramingError(431, fmt::format("request headers larger than {} bytes; send fewer",
                                            limits.max_head_bytes));
  }
  // Lines after the request line, not counting the blank line that ends the head.
  size_t lines = 0;
  for (size_t at = head.find(kCrlf, start); at != std::string_view::npos;
       at = head.find(kCrlf, at + 2))
    ++lines;
  const size_t headers = lines < 2 ? 0 : lines - (end == std::string_view::npos ? 1 : 2);
  if (headers > limits.max_headers) {
    throw HttpFramingError(
        431, fmt::format("more than {} request header fields; send fewer", limits.max_headers));
  }
  return end;
}

std::string in_origin_form(std::string_view head) {
  head.remove_prefix(skip_leading_empty_lines(head));
  const size_t target = head.find(' ') + 1;
  const size_t line_end = head.find(kCrlf);
  if (target == 0 || target > line_end) return std::string(head);
  const std::string_view request_line = head.substr(0, line_end);
  for (const std::string_view scheme : {"http://", "https://"}) {
    if (!equals_ignoring_case(request_line.substr(target, scheme.size()), scheme)) continue;
    // The authority ends at the path's '/', or at the '?' or the space before the version.
    const size_t authority = target + scheme.size();
    size_t path = request_line.find_first_of("/? ", authority);
    if (path == std::string_view::npos) path = request_line.size();
    std::string out(request_line.substr(0, target));
    if (path >= request_line.size() || request_line[path] != '/') out += '/';
    out += head.substr(path);
    return out;
  }
  return std::string(head);
}

RequestHead parse_request_head(std::string_view head, const HttpFramingLimits& limits) {
  RequestHead out;
  const size_t line_end = head.find(kCrlf);
  const std::string_view request_line = head.substr(0, line_end);
  const size_t method_end = request_line.find(' ');
  const size_t target_end = request_line.rfind(' ');
  if (method_end == std::string_view::npos || target_end <= method_end + 1)
    throw HttpFramingError(400, "malformed request line (method, target, HTTP version)");
  out.method = request_line.substr(0, method_end);
  out.target = request_line.substr(method_end + 1, target_end - method_end - 1);
  size_t at = line_end;
  std::optional<uint64_t> length;
  bool chunked = false;
  while (at != std::string_view::npos && at + 2 < head.size()) {
    const size_t next_line_end = head.find(kCrlf, at + 2);
    const std::string_view line = head.substr(at + 2, next_line_end - at - 2);
    at = next_line_end;
    if (line.empty()) break;
    const size_t colon = line.find(':');
    const std::string_view name = line.substr(0, colon);
    if (colon == std::string_view::npos || !is_token(name)) {
      throw HttpFramingError(
          400,
          "malformed request header line (a field name of letters, digits and !#$%&'*+-.^_`|~, "
          "then a colon)");
    }
    const std::string_view value = trim(line.substr(colon + 1));
    out.headers.emplace(std::string(name), std::string(value));
    if (equals_ignoring_case(name, "Content-Encoding")) {
      if (!equals_ignoring_case(value, "identity")) {
        throw HttpFramingError(
            415,
            "request bodies with a Content-Encoding are not accepted; send the body "
            "uncompressed (images are compressed already)");
      }
    } else if (equals_ignoring_case(name, "Content-Length")) {
      const uint64_t number = content_length_value(value);
      if (length && *length != number)
        throw HttpFramingError(400, "the request has different Content-Length values");
      length = number;
    } else if (equals_ignoring_case(name, "Transfer-Encoding")) {
      if (chunked || !equals_ignoring_case(value, "chunked")) {
        throw HttpFramingError(400, "the only Transfer-Encoding accepted is one \"chunked\"");
      }
      chunked = true;
    }
  }
  if (chunked && length)
    throw HttpFramingError(400, "a request cannot have both Content-Length and Transfer-Encoding");
  if (chunked) {
    out.body = {.kind = BodyFraming::Kind::Chunked, .length = 0};
  } else if (length) {
    if (*length > limits.max_body_bytes) {
      throw HttpFramingError(413, fmt::format("request body of {} bytes is larger than the limit "
                                              "of {} bytes (--max-body-mib)",
                                              *length, limits.max_body_bytes));
    }
    out.body = {.kind = BodyFraming::Kind::Length, .length = *length};
  }
  return out;
}

size_t ChunkedBodyTracker::feed(std::string_view bytes) {
  constexpr size_t kMaxLineBytes = 4096;  // a chunk-size line's extensions
  const auto malformed = [](std::string_view what) {
    return HttpFramingError(400, fmt::format("malformed chunked request body: {}", what));
  };
  size_t at = 0;
  while (at < bytes.size() && state_ != State::Done) {
    if (state_ == State::Data) {
      const auto take = static_cast<size_t>(std::min<uint64_t>(chunk_left_, bytes.size() - at));
      at += take;
      chunk_left_ -= take;
      if (chunk_left_ == 0) state_ = State::DataCr;
      continue;
    }
    const char c = bytes[at++];
    switch (state_) {
      case State::Size: {
        const int digit = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                 : -1;
        if (digit >= 0) {
          chunk_size_ = chunk_size_ * 16 + static_cast<uint64_t>(digit);
          ++size_digits_;
          if (decoded_ + chunk_size_ > max_body_bytes_) {
            throw HttpFramingError(
                413, fmt::format("chunked request body larger than the limit of {} bytes "
                                 "(--max-body-mib)",
                                 max_body_bytes_));
          }
          break;
        }
        if (size_digits_ == 0) throw malformed("a chunk does not start with its size in hex");
        if (c == '\r') {
          state_ = State::SizeLf;
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::Extension;
          line_bytes_ = 0;
        } else {
          throw malformed("unexpected character after a chunk size");
        }
        break;
      }
      case State::Extension:
        if (c == '\r') {
          state_ = State::SizeLf;
        } else if (c == '\n' || ++line_bytes_ > kMaxLineBytes) {
          throw malformed("chunk extension too long or not ended by CRLF");
        }
        break;
      case State::SizeLf:
        if (c != '\n') throw malformed("a chunk size line does not end with CRLF");
        decoded_ += chunk_size_;
        chunk_left_ = chunk_size_;
        state_ = chunk_size_ == 0 ? State::Trailer : State::Data;
        chunk_size_ = 0;
        size_digits_ = 0;
        line_bytes_ = 0;
        break;
      case State::DataCr:
        if (c != '\r') throw malformed("chunk data longer than its size");
        state_ = State::DataLf;
        break;
      case State::DataLf:
        if (c != '\n') throw malformed("chunk data not followed by CRLF");
        state_ = State::Size;
        break;
      case State::Trailer:
        // cpp-httplib 0.11 takes no trailer fields: refused here with a clear message.
        if (c != '\r') throw malformed("trailer fields after the last chunk are not accepted");
        state_ = State::TrailerLf;
        break;
      case State::TrailerLf:
        if (c != '\n') throw malformed("the last chunk is not followed by CRLF");
        state_ = State::Done;
        break;
      case State::Data:
      case State::Done:
        break;
    }
  }
  return at;
}

}  // namespace garmentnet
