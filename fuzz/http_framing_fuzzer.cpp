// libFuzzer target: the bytes of one client connection through the request framing the server
// applies before cpp-httplib sees them (serve/http_framing.h): heads found and checked, bodies
// followed by Content-Length or chunk by chunk, request after request. Built and run by
// scripts/fuzz.sh (clang). Only HttpFramingError may come out, and the framing never claims more
// bytes than it was given; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "serve/http_framing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view connection(reinterpret_cast<const char*>(data), size);
  // Small limits, so that every refusal is reachable within the fuzzer's input sizes.
  const garmentnet::HttpFramingLimits limits{
      .max_head_bytes = 4096, .max_headers = 20, .max_body_bytes = 4096};
  try {
    while (!connection.empty()) {
      const size_t end = garmentnet::find_head_end(connection, limits);
      if (end == std::string_view::npos) return 0;
      if (end > connection.size()) __builtin_trap();
      const std::string head = garmentnet::in_origin_form(connection.substr(0, end));
      if (head.size() > end) __builtin_trap();
      const garmentnet::BodyFraming framing = garmentnet::parse_request_head(head, limits).body;
      connection.remove_prefix(end);
      if (framing.kind == garmentnet::BodyFraming::Kind::Length) {
        if (framing.length > limits.max_body_bytes) __builtin_trap();
        if (framing.length > connection.size()) return 0;
        connection.remove_prefix(framing.length);
      } else if (framing.kind == garmentnet::BodyFraming::Kind::Chunked) {
        // Fed in pieces of varying size, as the bytes arrive from a socket.
        garmentnet::ChunkedBodyTracker chunks(limits.max_body_bytes);
        size_t piece = 1;
        while (!chunks.done() && !connection.empty()) {
          const std::string_view given = connection.substr(0, piece);
          const size_t taken = chunks.feed(given);
          if (taken > given.size() || (taken < given.size() && !chunks.done())) __builtin_trap();
          connection.remove_prefix(taken);
          piece = piece % 7 * 3 + 1;
        }
        if (!chunks.done()) return 0;
      }
    }
  } catch (const garmentnet::HttpFramingError& error) {
    if (error.status != 400 && error.status != 413 && error.status != 415 && error.status != 431)
      __builtin_trap();
  }
  return 0;
}
