// Turns request bodies into images: JSON with limits, TF-Serving instances ({"b64": ...} or
// H×W×3 pixel arrays), base64. Torch-free and HTTP-free so it can be fuzzed on its own.
#pragma once

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/image.h"

namespace garmentnet {

// The name of the model's one input (TF-Serving signature, KServe tensor).
inline constexpr const char* kImagesInput = "images";

struct RequestLimits {
  size_t max_instances = 64;  // images in one request
  int max_json_depth = 12;    // deeper JSON is refused before it is parsed (an image array is 3)
  ImageLimits image{.max_pixels = 40'000'000, .max_file_bytes = 10 << 20};  // per image
  int64_t max_request_pixels = 100'000'000;   // all images of one request, from their headers
  int64_t max_decoding_pixels = 200'000'000;  // images being decoded, all requests together
};

// A client's text as it may appear in an error message: at most `max_bytes` of it (cut on a
// character boundary, the rest counted), control characters and NUL written as \xNN, so that an
// error never echoes more than a short, printable excerpt of what a client sent.
std::string client_text(std::string_view text, size_t max_bytes = 64);

// Parses a JSON body; InputError for empty, malformed or too deeply nested JSON (the message
// quotes at most a short excerpt of the body).
nlohmann::json parse_json_body(std::string_view body, const RequestLimits& limits);

// Decodes standard or URL-safe base64 (padding optional, whitespace ignored); InputError naming
// `where` for any other character.
std::string decode_base64(std::string_view text, std::string_view where);
std::string encode_base64(std::string_view bytes);

// An H×W×3 nested array of numbers as an RGB uint8 image. Integers are 0–255; floats are read
// as [0, 1] when none exceeds 1, else as 0–255. InputError naming `where` for a wrong shape,
// value type or range, or more pixels than the limit.
cv::Mat image_from_pixel_array(const nlohmann::json& array, std::string_view where,
                               const ImageLimits& limits);

// One TF-Serving instance before its image is decoded: the encoded bytes of a {"b64": ...}
// instance, or the RGB image of a pixel array (already in memory, so read at once).
struct InstanceImage {
  std::optional<std::string> encoded;  // JPEG/PNG/WebP bytes of a {"b64": ...} instance
  cv::Mat pixels;                      // RGB uint8, for a pixel array
};

// Reads one TF-Serving instance: {"b64": "<JPEG/PNG/WebP>"} (no other key), an H×W×3 pixel array,
// or {"images": one of those} (the model's one input; another name is an InputError, as in
// TF-Serving). InputError naming `where` for any other shape.
InstanceImage read_instance(const nlohmann::json& instance, std::string_view where,
                            const RequestLimits& limits);

// read_instance, then the image decoded: an RGB uint8 image at its original size, or
// for a JPEG much larger than `target_side` reduced as decode_image does (pass the model's
// shorter input side, as load_resized_images does, so the service sees the pixels `predict` sees).
cv::Mat decode_instance(const nlohmann::json& instance, std::string_view where,
                        const RequestLimits& limits, int target_side = 0);

// The instances of a TF-Serving :predict body, not yet decoded.
struct PredictBody {
  std::vector<nlohmann::json> instances;  // one per image
  bool columnar = false;                  // sent as "inputs": answer with "outputs"
  std::string signature_name;             // as sent ("" when absent)
};

// Reads "instances" (row format) or "inputs" (columnar: the batch, or {"images": batch}) and
// "signature_name"; InputError for any other top-level key, shape or input name, an empty list
// or more instances than the limit.
PredictBody parse_predict_body(std::string_view body, const RequestLimits& limits);

}  // namespace garmentnet
