// KServe v2 / Triton inference protocol (JSON): health, server and model metadata, readiness
// and /infer with an image tensor [N,H,W,3] (FP32 or UINT8) or a BYTES tensor of encoded images.
#include "core/error.h"
#include "serve/service.h"

namespace garmentnet {
namespace {

constexpr const char* kInputName = "images";

nlohmann::json model_metadata(const Service& service, const LoadedModel& model) {
  nlohmann::json outputs = nlohmann::json::array();
  for (const HeadSpec& head : model.predictor->spec().heads) {
    outputs.push_back({{"name", head.name},
                       {"datatype", "FP32"},
                       {"shape", {-1, static_cast<int64_t>(head.num_outputs())}}});
  }
  return {{"name", service.options().model_name},
          {"versions", {std::to_string(model.version)}},
          {"platform", "garmentnet"},
          {"inputs", {{{"name", kInputName}, {"datatype", "UINT8"}, {"shape", {-1, -1, -1, 3}}}}},
          {"outputs", outputs}};
}

// Appends the numbers of a flat or nested `data` list to `out`.
void flatten_numbers(const nlohmann::json& data, std::vector<double>& out) {
  for (const nlohmann::json& value : data) {
    if (value.is_array()) {
      flatten_numbers(value, out);
    } else if (value.is_number()) {
      out.push_back(value.get<double>());
    } else {
      fail("input \"data\" holds a {}, expected numbers", value.type_name());
    }
  }
}

// A [N,H,W,3] (or [H,W,3]) numeric tensor as N RGB uint8 images; same value scales as :predict.
std::vector<cv::Mat> images_from_tensor(const nlohmann::json& input, const std::string& datatype,
                                        const RequestLimits& limits) {
  std::vector<int64_t> shape = input.at("shape").get<std::vector<int64_t>>();
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
  const nlohmann::json& data = input.at("data");
  if (!data.is_array()) fail("input \"data\" must be a list");
  std::vector<double> values;
  flatten_numbers(data, values);
  const size_t expected = static_cast<size_t>(shape[0] * shape[1] * shape[2] * 3);
  if (values.size() != expected)
    fail("input \"data\" has {} values; shape {} needs {}", values.size(),
         nlohmann::json(shape).dump(), expected);
  double largest = 0;
  for (const double v : values) {
    if (!std::isfinite(v) || v < 0 || v > 255) fail("input value {} is outside 0–255", v);
    largest = std::max(largest, v);
  }
  const double scale = datatype.starts_with("FP") && largest <= 1.0 ? 255.0 : 1.0;
  std::vector<cv::Mat> images;
  const size_t per_image = expected / static_cast<size_t>(shape[0]);
  for (int64_t n = 0; n < shape[0]; ++n) {
    cv::Mat image(static_cast<int>(shape[1]), static_cast<int>(shape[2]), CV_8UC3);
    uint8_t* out = image.ptr<uint8_t>();
    for (size_t i = 0; i < per_image; ++i) {
      out[i] =
          static_cast<uint8_t>(std::lround(values[static_cast<size_t>(n) * per_image + i] * scale));
    }
    images.push_back(image);
  }
  return images;
}

// A BYTES tensor: each element is a base64-encoded JPEG/PNG/WebP (JSON cannot carry raw bytes).
std::vector<nlohmann::json> instances_from_bytes(const nlohmann::json& input,
                                                 const RequestLimits& limits) {
  const nlohmann::json& data = input.at("data");
  if (!data.is_array() || data.empty())
    fail("BYTES input \"data\" must be a non-empty list of base64 strings");
  if (data.size() > limits.max_instances)
    fail("{} images in one request; the limit is {}", data.size(), limits.max_instances);
  std::vector<nlohmann::json> instances;
  for (const nlohmann::json& element : data) {
    if (!element.is_string()) fail("BYTES input elements must be base64 strings of encoded images");
    instances.push_back({{"b64", element}});
  }
  return instances;
}

HttpResponse infer(Service& service, const HttpRequest& request, const std::string& name,
                   std::optional<int64_t> version) {
  service.check_api_key(request);
  const auto model = service.find_model(name, version);
  const nlohmann::json body = parse_json_body(request.body, service.options().limits);
  if (!body.is_object() || !body.contains("inputs") || !body["inputs"].is_array() ||
      body["inputs"].size() != 1) {
    fail("the request needs \"inputs\": a list with one tensor (an image batch)");
  }
  const nlohmann::json& input = body["inputs"][0];
  if (!input.is_object() || !input.contains("datatype") || !input.contains("shape") ||
      !input.contains("data") || !input["datatype"].is_string() || !input["shape"].is_array()) {
    fail("the input tensor needs \"name\", \"shape\", \"datatype\" and \"data\"");
  }
  const std::string datatype = input["datatype"].get<std::string>();
  std::vector<cv::Mat> resized;
  try {
    if (datatype == "BYTES") {
      resized = service.decode_instances(instances_from_bytes(input, service.options().limits),
                                         *model->predictor);
    } else if (datatype == "FP32" || datatype == "FP64" || datatype == "UINT8" ||
               datatype == "INT32" || datatype == "INT64") {
      resized = service.resize_images(images_from_tensor(input, datatype, service.options().limits),
                                      *model->predictor);
    } else {
      fail(
          "datatype {} is not supported; send FP32 or UINT8 pixels [N,H,W,3] or BYTES of encoded "
          "images",
          datatype);
    }
  } catch (const nlohmann::json::exception& e) {
    fail("bad input tensor: {}", e.what());
  }
  const size_t rows = resized.size();
  const HeadProbabilities probabilities = service.infer(*model, std::move(resized));
  std::vector<std::string> wanted;
  if (body.contains("outputs") && body["outputs"].is_array()) {
    for (const nlohmann::json& output : body["outputs"]) {
      if (output.is_object() && output.contains("name") && output["name"].is_string())
        wanted.push_back(output["name"]);
    }
  }
  nlohmann::json outputs = nlohmann::json::array();
  for (const HeadSpec& head : model->predictor->spec().heads) {
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), head.name) == wanted.end())
      continue;
    outputs.push_back({{"name", head.name},
                       {"datatype", "FP32"},
                       {"shape", {rows, head.num_outputs()}},
                       {"data", probabilities.at(head.name)}});
  }
  nlohmann::json answer = {{"model_name", name},
                           {"model_version", std::to_string(model->version)},
                           {"outputs", outputs}};
  if (body.contains("id")) answer["id"] = body["id"];
  return json_response(200, answer);
}

}  // namespace

HttpResponse handle_kserve(Service& service, const HttpRequest& request, std::string& route_label) {
  const std::vector<std::string> s = split_path(request.path);
  route_label = "kserve";
  const bool get = request.method == "GET";
  if (s.size() == 1 && get) {
    return json_response(
        200,
        {{"name", "garmentnet"}, {"version", "0.1.0"}, {"extensions", nlohmann::json::array()}});
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
  throw HttpError(404,
                  fmt::format("no route {} {}; see docs/serving.md", request.method, request.path));
}

}  // namespace garmentnet
