// Base64 of `{"b64": ...}` request instances: standard and URL-safe letters, with or without
// padding, MIME line breaks; anything else is a clear error.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "serve/request_parsing.h"
#include "test_support.h"

namespace garmentnet {
namespace {

std::string random_bytes(size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
  return bytes;
}

// MIME wraps base64 at 76 characters per line.
std::string with_line_breaks(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); i += 76) out += text.substr(i, 76) + "\r\n";
  return out;
}

TEST(Base64, DecodesWhatWasEncodedInEveryForm) {
  for (size_t size = 0; size <= 300; ++size) {
    const std::string bytes = random_bytes(size, static_cast<unsigned>(size));
    const std::string text = encode_base64(bytes);
    EXPECT_EQ(decode_base64(text, "x"), bytes) << size;
    EXPECT_EQ(decode_base64(with_line_breaks(text), "x"), bytes) << size;
    std::string unpadded = text;
    while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
    EXPECT_EQ(decode_base64(unpadded, "x"), bytes) << size;
    std::string url_safe = text;
    for (char& c : url_safe) c = c == '+' ? '-' : c == '/' ? '_' : c;
    EXPECT_EQ(decode_base64(url_safe, "x"), bytes) << size;
  }
}

TEST(Base64, RefusesWhatIsNotBase64) {
  EXPECT_NE(testing::error_of([] {
              decode_base64("QUJD!EVG", "instance 0");
            }).find("instance 0: not valid base64 (unexpected character '!')"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              decode_base64("QQ==QUJD", "instance 0");
            }).find("unexpected character 'Q'"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              decode_base64("QUJDR", "instance 0");
            }).find("instance 0: not valid base64 (truncated)"),
            std::string::npos);
}

}  // namespace
}  // namespace garmentnet
