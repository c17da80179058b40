#include "serve/request_parsing.h"

#include <array>
#include <cmath>

#include "core/error.h"

namespace garmentnet {
namespace {

// Deepest nesting of arrays/objects in `text`, stopping early past `limit`. A linear scan that
// skips strings, so hostile nesting is refused before the JSON parser recurses into it.
int json_depth_exceeding(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return 0;
}

constexpr std::array<int8_t, 256> base64_table() {
  std::array<int8_t, 256> table{};
  for (auto& v : table) v = -1;
  constexpr std::string_view letters =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  for (size_t i = 0; i < letters.size(); ++i)
    table[static_cast<unsigned char>(letters[i])] = static_cast<int8_t>(i);
  table['+'] = table['-'] = 62;
  table['/'] = table['_'] = 63;
  return table;
}

// The value of {"images": value}, the model's one named input.
const nlohmann::json& named_input(const nlohmann::json& object, std::string_view where) {
  if (object.size() != 1 || !object.contains(kImagesInput)) {
    std::vector<std::string> keys;
    for (const auto& item : object.items()) keys.push_back(item.key());
    fail(
        "{}: expected {{\"b64\": \"...\"}}, a pixel array or {{\"{}\": ...}} (the model's one "
        "input), got an object with {} key(s): {}",
        where, kImagesInput, keys.size(), client_text(nlohmann::json(keys).dump()));
  }
  return object.at(kImagesInput);
}

}  // namespace

std::string client_text(std::string_view text, size_t max_bytes) {
  size_t end = std::min(text.size(), max_bytes);
  // Not inside a UTF-8 sequence: back up over continuation bytes (10xxxxxx).
  while (end < text.size() && end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
    --end;
  std::string out;
  out.reserve(end + 16);
  for (const char c : text.substr(0, end)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) {
      out += fmt::format("\\x{:02X}", byte);
    } else {
      out += c;
    }
  }
  if (end < text.size()) out += fmt::format("… ({} more bytes)", text.size() - end);
  return out;
}

nlohmann::json parse_json_body(std::string_view body, const RequestLimits& limits) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos)
    fail("empty request body; send JSON");
  if (json_depth_exceeding(body, limits.max_json_depth) > 0) {
    fail("JSON nested deeper than {} levels", limits.max_json_depth);
  }
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& error) {
    // The library's message ends with "; last read: '<the token>'", which can be the whole body:
    // the reason is kept, and a short excerpt of the body before the error replaces the token.
    const std::string message = error.what();
    const std::string reason = message.substr(0, message.find("; last read:"));
    const size_t at = std::min<size_t>(error.byte, body.size());
    const size_t from = at > 32 ? at - 32 : 0;
    fail("malformed JSON at byte {}: {}; the body there reads \"{}\"", error.byte,
         client_text(reason, 200), client_text(body.substr(from, at - from)));
  } catch (const nlohmann::json::exception& error) {  // e.g. a number too large for a double
    fail("unusable JSON: {}", client_text(error.what(), 200));
  }
}

std::string decode_base64(std::string_view text, std::string_view where) {
  static constexpr auto table = base64_table();
  const auto value_of = [](char c) { return table[static_cast<unsigned char>(c)]; };
  std::string out(text.size() / 4 * 3 + 3, '\0');
  size_t length = 0;
  // Whole groups of four letters, three bytes each, up to the first line break, padding or error.
  size_t start = 0;
  for (; start + 4 <= text.size(); start += 4) {
    const int a = value_of(text[start]);
    const int b = value_of(text[start + 1]);
    const int c = value_of(text[start + 2]);
    const int d = value_of(text[start + 3]);
    if ((a | b | c | d) < 0) break;
    const uint32_t group = static_cast<uint32_t>(a << 18 | b << 12 | c << 6 | d);
    out[length++] = static_cast<char>(group >> 16);
    out[length++] = static_cast<char>((group >> 8) & 0xFF);
    out[length++] = static_cast<char>(group & 0xFF);
  }
  // The rest a character at a time.
  uint32_t buffer = 0;
  int bits = 0;
  bool padding = false;
  for (const char c : text.substr(start)) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    const int8_t value = value_of(c);
    if (value < 0 || padding) fail("{}: not valid base64 (unexpected character '{}')", where, c);
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[length++] = static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  if (bits >= 6) fail("{}: not valid base64 (truncated)", where);
  out.resize(length);
  return out;
}

std::string encode_base64(std::string_view bytes) {
  static constexpr std::string_view letters =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) |
                       (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    for (int shift : {18, 12, 6, 0}) out.push_back(letters[(v >> shift) & 63]);
  }
  if (i < bytes.size()) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out.push_back(letters[(v >> 18) & 63]);
    out.push_back(letters[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? letters[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

cv::Mat image_from_pixel_array(const nlohmann::json& array, std::string_view where,
                               const ImageLimits& limits) {
  const size_t height = array.size();
  if (!array.is_array() || height == 0 || !array[0].is_array() || array[0].empty()) {
    fail("{}: expected an H×W×3 array of pixels", where);
  }
  const size_t width = array[0].size();
  if (static_cast<double>(height) * static_cast<double>(width) >
      static_cast<double>(limits.max_pixels)) {
    fail("{}: {}×{} pixels is more than the limit of {}", where, width, height, limits.max_pixels);
  }
  // First pass: check the shape and the value types, find the scale.
  bool any_float = false;
  double largest = 0;
  for (size_t y = 0; y < height; ++y) {
    const nlohmann::json& row = array[y];
    if (!row.is_array() || row.size() != width) {
      fail("{}: row {} has {} pixels where row 0 has {}; every row needs the same width", where, y,
           row.is_array() ? row.size() : 0, width);
    }
    for (size_t x = 0; x < width; ++x) {
      const nlohmann::json& pixel = row[x];
      if (!pixel.is_array() || pixel.size() != 3) {
        fail("{}: pixel [{}][{}] must be an array of 3 channel values (RGB)", where, y, x);
      }
      for (const nlohmann::json& value : pixel) {
        if (!value.is_number())
          fail("{}: pixel [{}][{}] holds a {}, not a number", where, y, x, value.type_name());
        const double v = value.get<double>();
        if (!std::isfinite(v) || v < 0 || v > 255)
          fail("{}: pixel [{}][{}] value {} is outside 0–255", where, y, x, v);
        any_float = any_float || value.is_number_float();
        largest = std::max(largest, v);
      }
    }
  }
  const double scale = any_float && largest <= 1.0 ? 255.0 : 1.0;
  cv::Mat image(static_cast<int>(height), static_cast<int>(width), CV_8UC3);
  for (size_t y = 0; y < height; ++y) {
    auto* out = image.ptr<uint8_t>(static_cast<int>(y));
    for (const nlohmann::json& pixel : array[y]) {
      for (const nlohmann::json& value : pixel) {
        *out++ =
            static_cast<uint8_t>(std::lround(std::clamp(value.get<double>() * scale, 0.0, 255.0)));
      }
    }
  }
  return image;
}

InstanceImage read_instance(const nlohmann::json& instance, std::string_view where,
                            const RequestLimits& limits) {
  if (instance.is_object()) {
    if (const auto b64 = instance.find("b64"); b64 != instance.end()) {
      if (!b64->is_string())
        fail("{}: \"b64\" must be a string of base64-encoded image bytes", where);
      if (instance.size() != 1)
        fail("{}: an {{\"b64\": ...}} instance has no other keys, got {}", where, instance.size());
      const auto& text = b64->get_ref<const std::string&>();
      if (text.size() / 4 * 3 > limits.image.max_file_bytes)
        fail("{}: encoded image larger than the limit", where);
      return {.encoded = decode_base64(text, where), .pixels = {}};
    }
    return read_instance(named_input(instance, where), where, limits);
  }
  if (instance.is_array())
    return {.encoded = std::nullopt,
            .pixels = image_from_pixel_array(instance, where, limits.image)};
  fail("{}: expected {{\"b64\": \"...\"}} or an H×W×3 pixel array, got a {}", where,
       instance.type_name());
}

cv::Mat decode_instance(const nlohmann::json& instance, std::string_view where,
                        const RequestLimits& limits, int target_side) {
  InstanceImage image = read_instance(instance, where, limits);
  if (!image.encoded) return image.pixels;
  return decode_image(*image.encoded, where, limits.image, target_side);
}

PredictBody parse_predict_body(std::string_view body, const RequestLimits& limits) {
  nlohmann::json document = parse_json_body(body, limits);
  if (!document.is_object())
    fail("the request body must be a JSON object with \"instances\" or \"inputs\"");
  for (const auto& item : document.items()) {
    if (item.key() != "instances" && item.key() != "inputs" && item.key() != "signature_name") {
      fail(
          "unknown key \"{}\" in the request; a :predict body has \"instances\" or \"inputs\", "
          "and optionally \"signature_name\"",
          client_text(item.key()));
    }
  }
  PredictBody out;
  if (const auto signature = document.find("signature_name"); signature != document.end()) {
    if (!signature->is_string()) fail("\"signature_name\" must be a string");
    out.signature_name = signature->get<std::string>();
  }
  const auto instances = document.find("instances");
  const auto inputs = document.find("inputs");
  if ((instances == document.end()) == (inputs == document.end())) {
    fail(
        "the request needs exactly one of \"instances\" (row format) or \"inputs\" (columnar "
        "format)");
  }
  nlohmann::json list;
  if (instances != document.end()) {
    if (!instances->is_array()) fail("\"instances\" must be a list");
    list = std::move(*instances);
  } else {
    out.columnar = true;
    nlohmann::json& value = *inputs;
    // Columnar: the batch itself, one {"b64"} instance, or {"<input name>": batch}.
    if (value.is_object() && !value.contains("b64")) {
      list = std::move(const_cast<nlohmann::json&>(named_input(value, "\"inputs\"")));
    } else {
      list = std::move(value);
    }
    if (list.is_object()) list = nlohmann::json::array({std::move(list)});
    if (!list.is_array()) fail("\"inputs\" must hold a list of images");
  }
  if (list.empty()) fail("no instances to predict");
  if (list.size() > limits.max_instances) {
    fail("{} instances in one request; the limit is {}", list.size(), limits.max_instances);
  }
  out.instances.reserve(list.size());
  for (auto& instance : list) out.instances.push_back(std::move(instance));
  return out;
}

}  // namespace garmentnet
