// KServe v2 / Triton inference protocol: health, server and model metadata, readiness and /infer
// with an image tensor [N,H,W,3] (FP32 or UINT8) or a BYTES tensor of encoded images, in JSON or
// with the binary tensor data extension (raw bytes after the JSON header, both ways).
#include <bit>
#include <charconv>
#include <cstring>
#include <map>

#include "core/error.h"
#include "serve/service.h"

namespace garmentnet {
namespace {

nlohmann::json model_metadata(const Service& service, const LoadedModel& model) {
  nlohmann::json versions = nlohmann::json::array();
  for (const int64_t version : service.registry().served_versions())
    versions.push_back(std::to_string(version));
  nlohmann::json outputs = nlohmann::json::array();
  for (const HeadSpec& head : model.predictor->spec().heads) {
    outputs.push_back({{"name", head.name},
                       {"datatype", "FP32"},
                       {"shape", {-1, static_cast<int64_t>(head.num_outputs())}}});
  }
  return {{"name", service.options().model_name},
          {"versions", versions},
          {"platform", "garmentnet"},
          {"inputs", {{{"name", kImagesInput}, {"datatype", "UINT8"}, {"shape", {-1, -1, -1, 3}}}}},
          {"outputs", outputs}};
}

// The binary tensor data extension sends little-endian bytes; this server reads them in place.
static_assert(std::endian::native == std::endian::little,
              "binary tensors need a little-endian host");

constexpr const char* kHeaderLengthField = "Inference-Header-Content-Length";

// Appends the numbers of a flat or nested `data` list to `out`; only integers when `integers`.
void flatten_numbers(const nlohmann::json& data, bool integers, std::vector<double>& out) {
  for (const nlohmann::json& value : data) {
    if (value.is_array()) {
      flatten_numbers(value, integers, out);
    } else if (value.is_number_integer() || (value.is_number() && !integers)) {
      out.push_back(value.get<double>());
    } else {
      fail("input \"data\" holds {} {}, expected {}", value.type_name(), client_text(value.dump()),
           integers ? "integers (the datatype is an integer type)" : "numbers");
    }
  }
}

// The input's "shape": a list of integers.
std::vector<int64_t> tensor_shape(const nlohmann::json& input) {
  const nlohmann::json& shape = input.at("shape");
  for (const nlohmann::json& size : shape) {
    if (!size.is_number_integer())
      fail("input \"shape\" holds {}, expected integers", client_text(size.dump()));
  }
  return shape.get<std::vector<int64_t>>();
}

// The shape of an image batch tensor: [N,H,W,3] (or [H,W,3], read as N = 1).
struct ImageBatchShape {
  int64_t count = 0;
  int64_t height = 0;
  int64_t width = 0;
  size_t values() const { return static_cast<size_t>(count * height * width * 3); }
  std::string text() const { return fmt::format("[{}, {}, {}, 3]", count, height, width); }
};

ImageBatchShape image_batch_shape(const nlohmann::json& input, const RequestLimits& limits) {
  std::vector<int64_t> shape = tensor_shape(input);
  if (shape.size() == 3) shape.insert(shape.begin(), 1);
  if (shape.size() != 4 || shape[3] != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1) {
    fail("input shape must be [N, H, W, 3] with positive sizes");
  }
  if (static_cast<size_t>(shape[0]) > limits.max_instances) {
    fail("{} images in one request; the limit is {}", shape[0], limits.max_instances);
  }
  if (static_cast<double>(shape[1]) * static_cast<double>(shape[2]) >
      static_cast<double>(limits.image.max_pixels)) {
    fail("{}×{} pixels is more than the limit of {}", shape[2], shape[1], limits.image.max_pixels);
  }
  return {.count = shape[0], .height = shape[1], .width = shape[2]};
}

// N RGB uint8 images from shape.values() numbers; `value(i)` reads the i-th. Same value scales as
// :predict: 0–255, or [0, 1] for floating-point data whose values are all at most 1.
template <typename ValueAt>
std::vector<cv::Mat> images_from_values(const ImageBatchShape& shape, bool floating_point,
                                        ValueAt value) {
  double largest = 0;
  for (size_t i = 0; i < shape.values(); ++i) {
    const double v = value(i);
    if (!std::isfinite(v) || v < 0 || v > 255) fail("input value {} is outside 0–255", v);
    largest = std::max(largest, v);
  }
  const double scale = floating_point && largest <= 1.0 ? 255.0 : 1.0;
  std::vector<cv::Mat> images;
  const size_t per_image = shape.values() / static_cast<size_t>(shape.count);
  for (int64_t n = 0; n < shape.count; ++n) {
    cv::Mat image(static_cast<int>(shape.height), static_cast<int>(shape.width), CV_8UC3);
    uint8_t* out = image.ptr<uint8_t>();
    for (size_t i = 0; i < per_image; ++i) {
      out[i] =
          static_cast<uint8_t>(std::lround(value(static_cast<size_t>(n) * per_image + i) * scale));
    }
    images.push_back(image);
  }
  return images;
}

// A numeric tensor whose values are in the JSON "data" list (flat or nested).
std::vector<cv::Mat> images_from_json_tensor(const nlohmann::json& input,
                                             const std::string& datatype,
                                             const RequestLimits& limits) {
  const ImageBatchShape shape = image_batch_shape(input, limits);
  if (!input.contains("data") || !input["data"].is_array())
    fail("input \"data\" must be a list (or declare \"binary_data_size\" and send the bytes)");
  std::vector<double> values;
  flatten_numbers(input["data"], !datatype.starts_with("FP"), values);
  if (values.size() != shape.values())
    fail("input \"data\" has {} values; shape {} needs {}", values.size(), shape.text(),
         shape.values());
  return images_from_values(shape, datatype.starts_with("FP"), [&](size_t i) { return values[i]; });
}

// A numeric tensor sent as raw little-endian bytes (binary tensor data extension).
std::vector<cv::Mat> images_from_binary_tensor(const nlohmann::json& input,
                                               const std::string& datatype, std::string_view bytes,
                                               const RequestLimits& limits) {
  const ImageBatchShape shape = image_batch_shape(input, limits);
  const size_t element_bytes = datatype == "FP32" ? 4 : 1;
  if (bytes.size() != shape.values() * element_bytes) {
    fail("binary_data_size is {} bytes but shape {} of {} ({} byte(s) per value) needs {}",
         bytes.size(), shape.text(), datatype, element_bytes, shape.values() * element_bytes);
  }
  if (datatype == "UINT8") {
    return images_from_values(shape, false, [&](size_t i) {
      return static_cast<double>(static_cast<uint8_t>(bytes[i]));
    });
  }
  return images_from_values(shape, true, [&](size_t i) {
    float value = 0;
    std::memcpy(&value, bytes.data() + i * 4, 4);
    return static_cast<double>(value);
  });
}

// The number of elements a BYTES tensor's shape holds: [N] or [N, 1].
size_t bytes_tensor_elements(const nlohmann::json& input, const RequestLimits& limits) {
  const std::vector<int64_t> shape = tensor_shape(input);
  if (shape.empty() || shape.size() > 2 || shape[0] < 1 || (shape.size() == 2 && shape[1] != 1))
    fail("a BYTES input has shape [N] (or [N, 1]): one encoded image per element");
  if (static_cast<size_t>(shape[0]) > limits.max_instances)
    fail("{} images in one request; the limit is {}", shape[0], limits.max_instances);
  return static_cast<size_t>(shape[0]);
}

// A BYTES tensor in JSON: each element is a base64-encoded JPEG/PNG/WebP.
std::vector<nlohmann::json> instances_from_json_bytes(const nlohmann::json& input,
                                                      const RequestLimits& limits) {
  const nlohmann::json& data = input.contains("data") ? input["data"] : nlohmann::json();
  if (!data.is_array() || data.empty())
    fail("BYTES input \"data\" must be a non-empty list of base64 strings");
  const size_t expected = bytes_tensor_elements(input, limits);
  if (data.size() != expected)
    fail("the BYTES input holds {} element(s) but its shape says {}", data.size(), expected);
  std::vector<nlohmann::json> instances;
  for (const nlohmann::json& element : data) {
    if (!element.is_string()) fail("BYTES input elements must be base64 strings of encoded images");
    instances.push_back({{"b64", element}});
  }
  return instances;
}

// A BYTES tensor in binary: each element is a 4-byte little-endian length, then that many bytes.
std::vector<std::string_view> elements_from_binary_bytes(std::string_view bytes, size_t expected) {
  std::vector<std::string_view> elements;
  size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 4)
      fail("BYTES element {} is cut off in its 4-byte length prefix", elements.size());
    uint32_t length = 0;
    std::memcpy(&length, bytes.data() + at, 4);
    at += 4;
    if (length > bytes.size() - at) {
      fail("BYTES element {} declares {} bytes but only {} remain of binary_data_size",
           elements.size(), length, bytes.size() - at);
    }
    elements.push_back(bytes.substr(at, length));
    at += length;
  }
  if (elements.size() != expected)
    fail("the BYTES input holds {} element(s) but its shape says {}", elements.size(), expected);
  return elements;
}

// An /infer request: the JSON header and, with the binary tensor data extension, the bytes after
// it.
struct InferRequest {
  nlohmann::json header;
  std::string_view binary;  // everything after the JSON header ("" without the extension)
};

InferRequest split_infer_request(const HttpRequest& request, const RequestLimits& limits) {
  const std::string declared = request.header(kHeaderLengthField);
  std::string_view json_text = request.body;
  std::string_view binary;
  if (!declared.empty()) {
    size_t length = 0;
    const auto [end, error] =
        std::from_chars(declared.data(), declared.data() + declared.size(), length);
    if (error != std::errc() || end != declared.data() + declared.size())
      fail("{} must be a byte count, got \"{}\"", kHeaderLengthField, client_text(declared));
    if (length > request.body.size()) {
      fail("{} is {} but the body has only {} bytes", kHeaderLengthField, length,
           request.body.size());
    }
    json_text = json_text.substr(0, length);
    binary = std::string_view(request.body).substr(length);
  }
  return {.header = parse_json_body(json_text, limits), .binary = binary};
}

// The "binary_data_size" parameter of an input, when it has one.
std::optional<size_t> binary_data_size(const nlohmann::json& input) {
  if (!input.contains("parameters") || !input["parameters"].is_object() ||
      !input["parameters"].contains("binary_data_size"))
    return std::nullopt;
  const nlohmann::json& size = input["parameters"]["binary_data_size"];
  if (!size.is_number_unsigned()) fail("\"binary_data_size\" must be a non-negative integer");
  return size.get<size_t>();
}

// A boolean request or output parameter; `fallback` when absent.
bool bool_parameter(const nlohmann::json& object, const char* name, bool fallback) {
  if (!object.is_object() || !object.contains("parameters") || !object["parameters"].is_object())
    return fallback;
  const nlohmann::json& parameters = object["parameters"];
  if (!parameters.contains(name)) return fallback;
  if (!parameters[name].is_boolean()) fail("parameter \"{}\" must be true or false", name);
  return parameters[name].get<bool>();
}

std::vector<RequestImage> encoded_images(const std::vector<std::string_view>& files) {
  std::vector<RequestImage> out(files.size());
  for (size_t i = 0; i < files.size(); ++i) out[i].encoded = files[i];
  return out;
}

std::vector<RequestImage> decoded_images(std::vector<cv::Mat> images) {
  std::vector<RequestImage> out(images.size());
  for (size_t i = 0; i < images.size(); ++i) out[i].pixels = std::move(images[i]);
  return out;
}

std::vector<cv::Mat> decode_input(Service& service, const LoadedModel& model,
                                  const nlohmann::json& input, std::string_view binary,
                                  std::chrono::steady_clock::time_point deadline) {
  const RequestLimits& limits = service.options().limits;
  const std::string datatype = input["datatype"].get<std::string>();
  const std::optional<size_t> declared = binary_data_size(input);
  if (!declared) {
    if (!binary.empty()) {
      fail("{} bytes follow the JSON header but no input declares \"binary_data_size\"",
           binary.size());
    }
    if (datatype == "BYTES")
      return service.decode_instances(instances_from_json_bytes(input, limits), *model.predictor,
                                      deadline);
    if (datatype == "FP32" || datatype == "FP64" || datatype == "UINT8" || datatype == "INT32" ||
        datatype == "INT64") {
      return service.prepare_images(
          decoded_images(images_from_json_tensor(input, datatype, limits)), "image",
          *model.predictor, deadline);
    }
    fail(
        "datatype {} is not supported; send FP32 or UINT8 pixels [N,H,W,3] or BYTES of encoded "
        "images",
        datatype);
  }
  if (*declared != binary.size()) {
    fail("input declares binary_data_size {} but {} bytes follow the JSON header{}", *declared,
         binary.size(),
         binary.empty() ? fmt::format(" (is the {} header missing?)", kHeaderLengthField) : "");
  }
  if (input.contains("data"))
    fail("an input with \"binary_data_size\" sends its values after the JSON, not in \"data\"");
  if (datatype == "BYTES") {
    return service.prepare_images(
        encoded_images(elements_from_binary_bytes(binary, bytes_tensor_elements(input, limits))),
        "image", *model.predictor, deadline);
  }
  if (datatype == "FP32" || datatype == "UINT8") {
    return service.prepare_images(
        decoded_images(images_from_binary_tensor(input, datatype, binary, limits)), "image",
        *model.predictor, deadline);
  }
  fail(
      "binary datatype {} is not supported; send FP32 or UINT8 pixels [N,H,W,3] or BYTES of "
      "encoded images",
      datatype);
}

HttpResponse infer(Service& service, const HttpRequest& request, const std::string& name,
                   std::optional<int64_t> version) {
  auto [model, arrival, deadline] = service.open_prediction(
      request, name, version, "a KServe v2 inference request (JSON, or JSON then binary tensors)");
  const InferRequest parsed = split_infer_request(request, service.options().limits);
  const nlohmann::json& body = parsed.header;
  if (!body.is_object() || !body.contains("inputs") || !body["inputs"].is_array() ||
      body["inputs"].size() != 1) {
    fail("the request needs \"inputs\": a list with one tensor (an image batch)");
  }
  const nlohmann::json& input = body["inputs"][0];
  if (!input.is_object() || !input.contains("datatype") || !input.contains("shape") ||
      !input["datatype"].is_string() || !input["shape"].is_array()) {
    fail("the input tensor needs \"name\", \"shape\", \"datatype\" and \"data\"");
  }
  std::vector<cv::Mat> resized;
  try {
    resized = decode_input(service, *model, input, parsed.binary, deadline);
  } catch (const nlohmann::json::exception& e) {
    fail("bad input tensor: {}", e.what());
  }
  // Which heads to answer, and which of them as binary data.
  const bool binary_by_default = bool_parameter(body, "binary_data_output", false);
  std::map<std::string, bool> wanted;  // head → as binary
  if (body.contains("outputs")) {
    if (!body["outputs"].is_array()) fail("\"outputs\" must be a list of {{\"name\": ...}}");
    for (const nlohmann::json& output : body["outputs"]) {
      if (!output.is_object() || !output.contains("name") || !output["name"].is_string())
        fail("each requested output needs a \"name\"");
      const std::string head = output["name"];
      if (!model->predictor->spec().find_head(head)) {
        fail("no output \"{}\"; this model's outputs are its heads (see GET /v2/models/{})",
             client_text(head), client_text(name));
      }
      wanted[head] = bool_parameter(output, "binary_data", binary_by_default);
    }
  }
  const size_t rows = resized.size();
  const HeadProbabilities probabilities =
      service.infer(std::move(arrival), *model, std::move(resized), deadline);
  nlohmann::json outputs = nlohmann::json::array();
  std::string binary_outputs;
  for (const HeadSpec& head : model->predictor->spec().heads) {
    const auto requested = wanted.find(head.name);
    if (!wanted.empty() && requested == wanted.end()) continue;
    const bool as_binary = requested == wanted.end() ? binary_by_default : requested->second;
    const std::vector<float>& values = probabilities.at(head.name);
    nlohmann::json output = {
        {"name", head.name}, {"datatype", "FP32"}, {"shape", {rows, head.num_outputs()}}};
    if (as_binary) {
      const size_t size = values.size() * sizeof(float);
      output["parameters"] = {{"binary_data_size", size}};
      binary_outputs.append(reinterpret_cast<const char*>(values.data()), size);
    } else {
      output["data"] = values;
    }
    outputs.push_back(std::move(output));
  }
  nlohmann::json answer = {{"model_name", name},
                           {"model_version", std::to_string(model->version)},
                           {"outputs", outputs}};
  if (body.contains("id")) answer["id"] = body["id"];
  HttpResponse response = json_response(200, answer);
  if (!binary_outputs.empty()) {
    response.headers.emplace(kHeaderLengthField, std::to_string(response.body.size()));
    response.content_type = "application/octet-stream";
    response.body += binary_outputs;
  }
  return response;
}

}  // namespace

HttpResponse handle_kserve(Service& service, const HttpRequest& request, std::string& route_label) {
  const std::vector<std::string> s = split_path(request.path);
  route_label = "kserve";
  const bool get = request.method == "GET";
  if (s.size() == 1 && get) {
    return json_response(200, {{"name", "garmentnet"},
                               {"version", "0.1.0"},
                               {"extensions", nlohmann::json::array({"binary_tensor_data"})}});
  }
  if (s.size() == 3 && s[1] == "health" && get && (s[2] == "live" || s[2] == "ready")) {
    route_label = "health";
    const bool ok = s[2] == "live" || service.registry().current() != nullptr;
    return json_response(ok ? 200 : 503, {{s[2], ok}});
  }
  if (s.size() >= 3 && s[1] == "models") {
    const std::string& name = s[2];
    size_t i = 3;
    std::optional<int64_t> version;
    if (i + 1 < s.size() && s[i] == "versions") {
      version = parse_version_segment(s[i + 1]);
      i += 2;
    }
    const std::string verb = i < s.size() ? s[i] : "";
    if (i + (verb.empty() ? 0 : 1) != s.size())
      throw HttpError(404, "unknown route under /v2/models/");
    if (verb.empty() && get) {
      route_label = "kserve_metadata";
      return json_response(200, model_metadata(service, *service.find_model(name, version)));
    }
    if (verb == "ready" && get) {
      route_label = "health";
      try {
        service.find_model(name, version);
      } catch (const HttpError& e) {
        if (e.status == 404) throw;
        return json_response(503, {{"name", name}, {"ready", false}});
      }
      return json_response(200, {{"name", name}, {"ready", true}});
    }
    if (verb == "infer" && request.method == "POST") {
      route_label = "kserve_infer";
      return infer(service, request, name, version);
    }
  }
  throw HttpError(404, fmt::format("no route {} {}; see docs/serving.md",
                                   client_text(request.method), client_text(request.path)));
}

}  // namespace garmentnet
