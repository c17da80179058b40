// Request framing over a raw socket (what an HTTP client library would not send): chunked bodies
// past the body limit, huge or malformed Content-Length, header floods, conflicting lengths. Each
// is answered at once with the right status, the server's memory stays bounded, and valid
// chunked and pipelined requests still work.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>

#include "serve_fixture.h"

namespace garmentnet::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string head(const std::string& path, const std::string& headers) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + "\r\n";
}

// Sends `head` and then chunks of `chunk_bytes` until the server answers (or `total` is sent);
// returns the answer and how many body bytes had been sent by then.
std::pair<std::string, size_t> send_chunked_until_answered(int port, const std::string& path,
                                                           size_t chunk_bytes, size_t total) {
  RawConnection connection(port);
  connection.send(head(path, "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"));
  const std::string chunk =
      fmt::format("{:x}\r\n{}\r\n", chunk_bytes, std::string(chunk_bytes, '['));
  size_t sent = 0;
  while (sent < total && !connection.answer_waiting() && connection.send(chunk))
    sent += chunk_bytes;
  return {connection.receive(), sent};
}

constexpr size_t kLimit = 1 << 20;

ServeOptions limited_options() {
  ServeOptions options = quick_serve_options();
  options.http.max_body_bytes = kLimit;
  return options;
}

TEST(ServeFraming, ChunkedBodiesPastTheLimitGet413AtOnceWithBoundedMemory) {
  RunningServer server(limited_options());
  const size_t total = 128 << 20;  // per request; without the limit the server would hold it all
  const size_t before = resident_bytes();
  std::vector<std::future<std::pair<std::string, size_t>>> requests;
  for (const char* path : {"/v1/models/garments:predict", "/v1/models/garments:classify-image",
                           "/v2/models/garments/infer", "/v1/models/garments:predict"}) {
    requests.push_back(std::async(std::launch::async, [&, path] {
      return send_chunked_until_answered(server.port(), path, 64 << 10, total);
    }));
  }
  for (auto& request : requests) {
    const auto [answer, sent] = request.get();
    EXPECT_EQ(status_of(answer), 413) << answer;
    EXPECT_NE(answer.find("--max-body-mib"), std::string::npos) << answer;
    // Answered once the limit was crossed: what was sent beyond it sat in socket buffers.
    EXPECT_LT(sent, 32u << 20) << "bytes sent before the 413 arrived";
  }
  const size_t growth = resident_bytes() - std::min(before, resident_bytes());
  std::printf("server RSS growth after 4 chunked uploads of %zu MiB each: %.1f MiB\n", total >> 20,
              static_cast<double>(growth) / (1 << 20));
  EXPECT_LT(growth, 48u << 20);
  // A chunked body within the limit is read and answered as usual, and the connection stays
  // usable for the next request.
  RawConnection connection(server.port());
  const std::string body = predict_body({b64_instance(sample_jpeg(0))});
  const std::string half = body.substr(0, body.size() / 2);
  const std::string rest = body.substr(body.size() / 2);
  connection.send(head("/v1/models/garments:predict", "Transfer-Encoding: chunked\r\n") +
                  fmt::format("{:x};ext=1\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n", half.size(), half,
                              rest.size(), rest) +
                  "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const std::string answers = connection.receive(std::chrono::milliseconds(1000));
  EXPECT_EQ(status_of(answers), 200) << answers;
  EXPECT_NE(answers.find("\"predictions\""), std::string::npos) << answers;
  EXPECT_NE(answers.find("alive"), std::string::npos) << answers;
  // Trailer fields are refused with a message saying so (the HTTP library takes none).
  RawConnection trailer(server.port());
  trailer.send(head("/v1/models/garments:predict", "Transfer-Encoding: chunked\r\n") +
               "2\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n");
  const std::string refused = trailer.receive(std::chrono::milliseconds(1000));
  EXPECT_EQ(status_of(refused), 400) << refused;
  EXPECT_NE(refused.find("trailer"), std::string::npos) << refused;
}

TEST(ServeFraming, ContentLengthIsCheckedBeforeAnyBodyArrives) {
  ServeOptions options = limited_options();
  options.http.read_timeout_s = 10;
  RunningServer server(options);
  const struct {
    std::string length;
    int status;
  } cases[] = {{"209715200", 413},
               {"18446744073709551616", 413},
               {"99999999999999999999999999", 413},
               {"-5", 400},
               {"12abc", 400},
               {"", 400},
               {"0x10", 400}};
  for (const auto& c : cases) {
    RawConnection connection(server.port());
    const auto started = Clock::now();
    connection.send(
        head("/v1/models/garments:predict", fmt::format("Content-Length: {}\r\n", c.length)));
    const std::string answer = connection.receive();
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    EXPECT_EQ(status_of(answer), c.status) << "Content-Length: " << c.length << "\n" << answer;
    EXPECT_LT(seconds, 2.0) << "Content-Length: " << c.length << " waited for the body";
  }
}

TEST(ServeFraming, ConflictingLengthsAndHeaderFloodsAreRefused) {
  RunningServer server(limited_options());
  const std::string body = R"({"instances": []})";
  const auto answer_to = [&](const std::string& headers) {
    RawConnection connection(server.port());
    connection.send(head("/v1/models/garments:predict", headers) + body);
    return connection.receive(std::chrono::milliseconds(1000));
  };
  const std::string length = fmt::format("Content-Length: {}\r\n", body.size());
  EXPECT_EQ(status_of(answer_to(length + "Content-Length: 5\r\n")), 400);
  EXPECT_EQ(status_of(answer_to(fmt::format("Content-Length: {0}, {1}\r\n", body.size(), 4))), 400);
  EXPECT_EQ(status_of(answer_to(length + "Transfer-Encoding: chunked\r\n")), 400);
  EXPECT_EQ(status_of(answer_to("Transfer-Encoding: gzip\r\n")), 400);
  EXPECT_EQ(status_of(answer_to("Bad Header : 1\r\n" + length)), 400);
  // The same length twice is one length: the body is read (and refused for having no instances).
  const std::string same = answer_to(length + length);
  EXPECT_EQ(status_of(same), 400);
  EXPECT_NE(same.find("no instances"), std::string::npos) << same;
  // Without Content-Length or chunked coding a request has no body (RFC 9112 §6.3): answered at
  // once, not after waiting for the client to close.
  const std::string bodiless = answer_to("");
  EXPECT_NE(bodiless.find("empty request body"), std::string::npos) << bodiless;

  // A flood of headers is cut off at the limit, long before it is all sent.
  RawConnection flood(server.port());
  flood.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  size_t sent = 0;
  const std::string header = "X-Flood: 1234567890\r\n";
  while (sent < (11u << 20) && !flood.answer_waiting() && flood.send(header)) sent += header.size();
  EXPECT_EQ(status_of(flood.receive()), 431);
  EXPECT_LT(sent, 8u << 20);
  std::string many;
  for (int i = 0; i <= 100; ++i) many += fmt::format("X-{}: 1\r\n", i);
  EXPECT_EQ(status_of(answer_to(many)), 431);  // 102 fields with Host: the limit is 100
  EXPECT_EQ(status_of(answer_to("X-Long: " + std::string(70 << 10, 'a') + "\r\n")), 431);

  // Every answer of the HTTP layer itself is counted, with the URI-too-long one of the library.
  auto client = server.client();
  EXPECT_EQ(client->Get("/" + std::string(9000, 'a'))->status, 414);
  const std::string metrics = client->Get("/metrics")->body;
  for (const char* code : {"400", "414", "431"}) {
    EXPECT_NE(metrics.find(fmt::format(
                  "garmentnet_http_requests_total{{code=\"{}\",route=\"refused\"}}", code)),
              std::string::npos)
        << code << "\n"
        << metrics;
  }
}

TEST(ServeFraming, RefusedBodiesAreCountedInTheRequestMetrics) {
  RunningServer server(limited_options());
  RawConnection connection(server.port());
  connection.send(head("/v1/models/garments:predict", "Content-Length: 209715200\r\n"));
  EXPECT_EQ(status_of(connection.receive()), 413);
  const std::string metrics = server.client()->Get("/metrics")->body;
  EXPECT_NE(metrics.find(R"(garmentnet_http_requests_total{code="413",route="refused"} 1)"),
            std::string::npos)
      << metrics;
}

}  // namespace
}  // namespace garmentnet::testing
