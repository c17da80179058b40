// Hostile clients, round 2 (issue 22), over a real socket: a request built to make an error message
// explode, compressed bodies, the API key checked before the body, slow clients, and the small ones
// (the web page's own path, absolute-form request lines, bare LF line ends, header names that are
// not tokens, unknown top-level keys, a NUL in a model name).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <opencv2/imgcodecs.hpp>
#include <thread>

#include "serve/service.h"
#include "serve_fixture.h"

namespace garmentnet::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kPredict = "/v1/models/garments:predict";

std::string repeated(std::string_view piece, size_t times) {
  std::string out;
  out.reserve(piece.size() * times);
  for (size_t i = 0; i < times; ++i) out += piece;
  return out;
}

// The head of a JSON :predict request declaring a body of `length` bytes, with `extra_headers`
// (each ending in CRLF); the body is the caller's to send, or not.
std::string predict_head(size_t length, const std::string& extra_headers = "") {
  return fmt::format(
      "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}Content-Type: application/json\r\n"
      "Content-Length: {}\r\n\r\n",
      kPredict, extra_headers, length);
}

// The body of an HTTP answer (after the blank line).
std::string body_of(const std::string& received) {
  const size_t blank = received.find("\r\n\r\n");
  return blank == std::string::npos ? std::string() : received.substr(blank + 4);
}

void expect_serving(const RunningServer& server) {
  const auto result = server.client()->Post(kPredict, predict_body({b64_instance(sample_jpeg(0))}),
                                            "application/json");
  ASSERT_TRUE(result) << "the server no longer answers";
  EXPECT_EQ(result->status, 200) << result->body;
}

TEST(ServeHostile, ErrorsQuoteOnlyAShortExcerptOfWhatTheClientSent) {
  RunningServer server(quick_serve_options());
  auto client = server.client();
  // Unterminated JSON whose last token is 100 KB of "/a" pairs: it crashed the server (a
  // backtracking regex over the echoed token overflowed the stack); then a 5 MB malformed body.
  for (const std::string& body :
       {"{\"instances\": [\" " + repeated("/a", 50'000), "[" + repeated("1,", 2'500'000) + "x"}) {
    const auto result = client->Post(kPredict, body, "application/json");
    ASSERT_TRUE(result) << "no answer to a " << body.size() << "-byte body";
    EXPECT_EQ(result->status, 400);
    EXPECT_LT(result->body.size(), 1024u) << result->body.substr(0, 200);
    EXPECT_NE(result->body.find("malformed JSON at byte"), std::string::npos) << result->body;
  }
  // A long model name and an unknown verb are quoted in part, and a NUL does not cut the text.
  const auto long_name = client->Get("/v1/models/" + repeated("x", 4000));
  ASSERT_TRUE(long_name);
  EXPECT_EQ(long_name->status, 404);
  EXPECT_LT(long_name->body.size(), 1024u);
  const auto nul = client->Get("/v1/models/gar%00ments");
  ASSERT_TRUE(nul);
  EXPECT_EQ(nul->status, 404);
  const std::string message = nlohmann::json::parse(nul->body)["error"];
  EXPECT_NE(message.find("gar\\x00ments\" (this server serves \"garments\")"), std::string::npos)
      << message;
  expect_serving(server);
}

TEST(ServeHostile, ServerPathsAreCutInOnePassWhateverTheText) {
  EXPECT_EQ(without_absolute_paths("cannot read /srv/models/3/model.gnm: bad"),
            "cannot read model.gnm: bad");
  EXPECT_EQ(without_absolute_paths("path=/home/a/b.txt and '/x/y/' (/top)"),
            "path=b.txt and 'y/' (/top)");
  EXPECT_EQ(without_absolute_paths("a/b/c stays, so does http://host/x"),
            "a/b/c stays, so does http://host/x");
  const std::string hostile = "\" " + repeated("/a", 1'000'000);
  EXPECT_EQ(without_absolute_paths(hostile), "\" a");
}

TEST(ServeHostile, CompressedBodiesGet415BeforeTheyAreRead) {
  RunningServer server(quick_serve_options());
  for (const char* encoding : {"gzip", "deflate", "br", "GZIP", "gzip, identity"}) {
    RawConnection connection(server.port());
    const auto started = Clock::now();
    // The head declares 5 MB; not a byte of the body is sent.
    connection.send(predict_head(5'000'000, fmt::format("Content-Encoding: {}\r\n", encoding)));
    const std::string answer = connection.receive(std::chrono::milliseconds(2000));
    EXPECT_EQ(status_of(answer), 415) << encoding << ": " << answer;
    EXPECT_LT(Clock::now() - started, std::chrono::seconds(3)) << encoding;
    EXPECT_NE(body_of(answer).find("send the body uncompressed"), std::string::npos) << answer;
  }
  // "identity" is no encoding at all.
  const std::string body = predict_body({b64_instance(sample_jpeg(0))});
  const auto result =
      server.client()->Post(kPredict, {{"Content-Encoding", "identity"}}, body, "application/json");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
}

TEST(ServeHostile, TheApiKeyIsCheckedBeforeTheBodyIsRead) {
  ServeOptions options = quick_serve_options();
  options.api_key = "s3cret";
  RunningServer server(options);
  for (const char* authorization : {"", "Authorization: Bearer wrong\r\n"}) {
    RawConnection connection(server.port());
    const auto started = Clock::now();
    connection.send(predict_head(5'000'000, authorization));
    const std::string answer = connection.receive(std::chrono::milliseconds(2000));
    EXPECT_EQ(status_of(answer), 401) << answer;
    EXPECT_NE(answer.find("WWW-Authenticate: Bearer"), std::string::npos) << answer;
    EXPECT_LT(Clock::now() - started, std::chrono::seconds(3));
  }
  const std::string body = predict_body({b64_instance(sample_jpeg(0))});
  const auto result = server.client()->Post(kPredict, {{"Authorization", "Bearer s3cret"}}, body,
                                            "application/json");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
}

TEST(ServeHostile, WebPathAbsoluteFormBareLfAndHeaderNames) {
  RunningServer server(quick_serve_options());
  auto client = server.client();
  for (const char* path : {"/", "/web", "/web/", "/web/index.html"}) {
    const auto get = client->Get(path);
    ASSERT_TRUE(get) << path;
    EXPECT_EQ(get->status, 200) << path << ": " << get->body;
    const auto head = client->Head(path);
    ASSERT_TRUE(head) << path;
    EXPECT_EQ(head->status, 200) << path;
  }
  EXPECT_EQ(client->Get("/web/missing.js")->status, 404);

  const std::string body = predict_body({b64_instance(sample_jpeg(0))});
  const auto request = [&](const std::string& request_line, const std::string& headers) {
    RawConnection connection(server.port());
    connection.send(request_line + "\r\nHost: 127.0.0.1\r\n" + headers +
                    "Content-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    return connection.receive(std::chrono::milliseconds(3000));
  };
  // Absolute form (RFC 9112 §3.2.2), with and without a port, scheme in any case.
  for (const char* target : {"http://127.0.0.1/v1/models/garments:predict",
                             "HTTP://example.com:8501/v1/models/garments:predict"}) {
    const std::string answer = request(fmt::format("POST {} HTTP/1.1", target), "");
    EXPECT_EQ(status_of(answer), 200) << target << ": " << answer.substr(0, 300);
  }
  // Header names that are not tokens: 400, every time.
  for (const char* line :
       {"X Bad: 1\r\n", "Caf\xc3\xa9: 1\r\n", " Leading: 1\r\n", ": empty\r\n"}) {
    const std::string answer = request(fmt::format("POST {} HTTP/1.1", kPredict), line);
    EXPECT_EQ(status_of(answer), 400) << line << answer.substr(0, 300);
  }
  // Bare LF line ends: 400 at once instead of waiting for a CRLF that never comes.
  RawConnection bare_lf(server.port());
  const auto started = Clock::now();
  bare_lf.send("GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n");
  const std::string answer = bare_lf.receive(std::chrono::milliseconds(3000));
  EXPECT_EQ(status_of(answer), 400) << answer;
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(3));
}

TEST(ServeHostile, UnknownTopLevelKeysAreRefusedByName) {
  RunningServer server(quick_serve_options());
  auto client = server.client();
  nlohmann::json body = {{"instances", {b64_instance(sample_jpeg(0))}}, {"instancez", 1}};
  auto result = client->Post(kPredict, body.dump(), "application/json");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400);
  EXPECT_NE(result->body.find("unknown key \\\"instancez\\\""), std::string::npos) << result->body;
  // 500,000 of them: one short answer naming the first.
  std::string flood = R"({"instances": [], )";
  for (int i = 0; i < 500'000; ++i) flood += fmt::format(R"("k{}": 0, )", i);
  flood += R"("last": 0})";
  result = client->Post(kPredict, flood, "application/json");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400);
  EXPECT_LT(result->body.size(), 1024u);
  EXPECT_NE(result->body.find("unknown key"), std::string::npos) << result->body;
  expect_serving(server);
}

// A lossless WebP of one colour: a few hundred bytes that decode to width × height pixels.
std::string flat_webp(int width, int height) {
  const cv::Mat rgb(height, width, CV_8UC3, cv::Scalar(40, 120, 200));
  std::vector<uchar> bytes;
  cv::imencode(".webp", rgb, bytes, {cv::IMWRITE_WEBP_QUALITY, 101});
  return {bytes.begin(), bytes.end()};
}

TEST(ServeHostile, PixelBombsGet413Or429AtOnceAndTheDeadlineCoversDecoding) {
  const std::string bomb = flat_webp(2000, 2000);  // 4 Mpx
  ASSERT_LT(bomb.size(), 4096u);
  ServeOptions options = quick_serve_options();
  options.limits.max_request_pixels = 20'000'000;
  options.limits.max_decoding_pixels = 20'000'000;
  RunningServer server(options);
  auto client = server.client();
  const auto request_of = [&](size_t images) {
    return predict_body(std::vector<nlohmann::json>(images, b64_instance(bomb)));
  };
  // Over the request's own limit: 413 before any image is decoded.
  const auto started = Clock::now();
  const auto over = client->Post(kPredict, request_of(6), "application/json");
  ASSERT_TRUE(over);
  EXPECT_EQ(over->status, 413) << over->body;
  EXPECT_NE(over->body.find("--max-request-pixels"), std::string::npos) << over->body;
  EXPECT_LT(Clock::now() - started, std::chrono::milliseconds(500));

  // Sixteen requests of 16 Mpx at once: as many as fit are decoded, the rest get 429 at once, and
  // every one is answered.
  std::vector<std::future<int>> answers;
  for (int i = 0; i < 16; ++i) {
    answers.push_back(std::async(std::launch::async, [&] {
      const auto result = server.client()->Post(kPredict, request_of(4), "application/json");
      return result ? result->status : 0;
    }));
  }
  int served = 0;
  int refused = 0;
  for (auto& answer : answers) {
    const int status = answer.get();
    served += status == 200;
    refused += status == 429;
    EXPECT_TRUE(status == 200 || status == 429) << status;
  }
  EXPECT_GE(served, 1);
  EXPECT_GE(refused, 1);
}

TEST(ServeHostile, DecodingPastTheRequestTimeoutGets504) {
  const std::string bomb = flat_webp(2000, 2000);
  ServeOptions options = quick_serve_options();
  options.request_timeout = std::chrono::milliseconds(30);
  options.decode_threads = 1;
  RunningServer server(options);
  const auto result = server.client()->Post(
      kPredict, predict_body(std::vector<nlohmann::json>(16, b64_instance(bomb))),
      "application/json");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 504) << result->body;
  EXPECT_NE(result->body.find("not decoded within 30 ms"), std::string::npos) << result->body;
}

// Slow clients (slowloris): a head or body trickling in a byte at a time meets a deadline from its
// first byte (408), and one address cannot hold more than its share of the connection threads
// (503 at once), while clients from other addresses are served.
TEST(ServeHostile, SlowClientsMeetADeadlineAndOneAddressHoldsOnlyItsShareOfThreads) {
  ServeOptions options = quick_serve_options();
  options.http.threads = 6;
  options.http.read_timeout_s = 2;
  options.http.max_connections_per_client = 3;
  RunningServer server(options);
  const auto started = Clock::now();
  // Four connections from one address trickle a head; one is over the address's share.
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 4; ++i) {
    slow.push_back(std::make_unique<RawConnection>(server.port()));
    slow.back()->send("POST / HTTP/1.1\r\n");
  }
  RawConnection slow_body(server.port(), "127.0.0.3");
  slow_body.send(predict_head(100));
  std::atomic<bool> trickling = true;
  std::thread trickle([&] {
    for (int tick = 0; tick < 24 && trickling; ++tick) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      for (auto& connection : slow) connection->send("X");
      slow_body.send(" ");
    }
  });

  RawConnection other_client(server.port(), "127.0.0.2");
  other_client.send("GET /v1/models/garments HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(other_client.receive(std::chrono::milliseconds(1500))), 200);

  std::map<int, int> statuses;
  for (auto& connection : slow) {
    const std::string answer = connection->receive(std::chrono::milliseconds(4000));
    ++statuses[status_of(answer)];
    if (status_of(answer) == 408)
      EXPECT_NE(answer.find("did not arrive within 2 s"), std::string::npos) << answer;
    else
      EXPECT_NE(answer.find("--max-connections-per-client"), std::string::npos) << answer;
  }
  EXPECT_EQ(statuses, (std::map<int, int>{{408, 3}, {503, 1}}));
  EXPECT_EQ(status_of(slow_body.receive(std::chrono::milliseconds(4000))), 408);
  // Bytes kept coming every 250 ms: only the deadline from the first byte ended them.
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - started).count(), 4.5);
  trickling = false;
  trickle.join();
  // Once they are gone (the server drains a refused connection for a moment), their address is
  // served again.
  slow.clear();
  int status = 0;
  for (int attempt = 0; attempt < 20 && status != 200; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto result = server.client()->Get("/v1/models/garments");
    status = result ? result->status : 0;
  }
  EXPECT_EQ(status, 200);
}

// Connections waiting for a request head (heads trickling in from many addresses, idle keep-alive
// connections) wait in the event loop: with two worker threads and 24 such connections open, other
// clients are answered at once, and an idle connection is served again when it sends.
TEST(ServeHostile, ConnectionsWaitingForAHeadHoldNoThread) {
  ServeOptions options = quick_serve_options();
  options.http.threads = 2;
  options.http.read_timeout_s = 3;
  RunningServer server(options);
  const std::string get = "GET /v1/models/garments HTTP/1.1\r\nHost: a\r\n\r\n";
  std::vector<std::unique_ptr<RawConnection>> trickling, idle;
  for (int i = 0; i < 16; ++i) {
    trickling.push_back(
        std::make_unique<RawConnection>(server.port(), fmt::format("127.0.0.{}", 1 + i % 4)));
    trickling.back()->send("POST / HTTP/1.1\r\nHost: a\r\n");
  }
  for (int i = 0; i < 8; ++i) {
    idle.push_back(std::make_unique<RawConnection>(server.port(), "127.0.0.6"));
    idle.back()->send(get);
    ASSERT_EQ(status_of(idle.back()->receive(std::chrono::milliseconds(300))), 200);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (auto& connection : trickling) connection->send("X");

  for (int request = 0; request < 3; ++request) {
    const auto sent = Clock::now();
    RawConnection other(server.port(), "127.0.0.5");
    other.send("GET /v1/models/garments HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(status_of(other.receive(std::chrono::milliseconds(1000))), 200);
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - sent).count(), 0.5);
  }
  idle.front()->send(get);
  EXPECT_EQ(status_of(idle.front()->receive(std::chrono::milliseconds(300))), 200);
  // The trickling heads still meet their deadline.
  for (auto& connection : trickling)
    EXPECT_EQ(status_of(connection->receive(std::chrono::milliseconds(4000))), 408);
}

// --max-connections: past it the server stops accepting; a client waits in the listen backlog
// (unanswered, not refused) until a connection closes, and is then served.
TEST(ServeHostile, PastTheOpenConnectionsCapANewClientWaitsUntilOneCloses) {
  ServeOptions options = quick_serve_options();
  options.http.max_connections = 2;
  RunningServer server(options);
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 2; ++i) held.push_back(std::make_unique<RawConnection>(server.port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RawConnection waiting(server.port(), "127.0.0.2");
  waiting.send("GET /v1/models/garments HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(waiting.receive(std::chrono::milliseconds(500)), "");
  held.pop_back();
  EXPECT_EQ(status_of(waiting.receive(std::chrono::milliseconds(2000))), 200);
}

TEST(ServeHostile, BodiesInFlightAreBoundedAndABurstGivesItsMemoryBack) {
  ServeOptions options = quick_serve_options();
  options.http.max_body_bytes_in_flight = 1 << 20;
  RunningServer server(options);
  // A request declaring 800 KB holds its share while its body is on its way...
  RawConnection slow(server.port());
  slow.send(predict_head(800'000));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // ... so another one of 800 KB gets 429 at once, without its body being read.
  RawConnection second(server.port());
  second.send(predict_head(800'000));
  const std::string refused = second.receive(std::chrono::milliseconds(2000));
  EXPECT_EQ(status_of(refused), 429) << refused;
  EXPECT_NE(refused.find("Retry-After: 1"), std::string::npos) << refused;
  // Small requests still fit beside it, and once the slow one is answered its share is back.
  expect_serving(server);
  slow.send(std::string(800000, ' '));
  EXPECT_EQ(status_of(slow.receive(std::chrono::milliseconds(2000))), 400);
  const std::string large =
      predict_body({pixel_array(cv::Mat(180, 180, CV_8UC3, cv::Scalar(9, 99, 199)), false)});
  ASSERT_GT(large.size(), 300'000u);
  const auto after = server.client()->Post(kPredict, large, "application/json");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200) << after->body.substr(0, 200);
}

TEST(ServeHostile, ABurstOfLargeRequestsGivesItsMemoryBack) {
  RunningServer server(quick_serve_options());
  // 700×700 pixels as JSON integers: ~4 MB of text that parses into ~50 MB of JSON values.
  const std::string body =
      predict_body({pixel_array(cv::Mat(700, 700, CV_8UC3, cv::Scalar(9, 99, 199)), false)});
  const auto settled_rss = [] {
    // The server gives memory back after a second without requests.
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    return resident_bytes();
  };
  ASSERT_EQ(server.client()->Post(kPredict, body, "application/json")->status, 200);
  const size_t before = settled_rss();
  size_t peak = 0;
  {
    std::vector<std::future<int>> answers;
    for (int i = 0; i < 16; ++i) {
      answers.push_back(std::async(std::launch::async, [&] {
        const auto result = server.client()->Post(kPredict, body, "application/json");
        return result ? result->status : 0;
      }));
    }
    for (auto& answer : answers) EXPECT_EQ(answer.get(), 200);
    peak = resident_bytes();
  }
  const size_t after = settled_rss();
  std::cout << "RSS before the burst " << (before >> 20) << " MiB, at its end " << (peak >> 20)
            << " MiB, settled " << (after >> 20) << " MiB\n";
  EXPECT_LT(static_cast<double>(after), 1.1 * static_cast<double>(before));
}

}  // namespace
}  // namespace garmentnet::testing
