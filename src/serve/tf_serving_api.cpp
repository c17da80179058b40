// TF-Serving REST API: model status, metadata, :predict (row and columnar formats), plus the
// image route :classify-image and a model list at /v1/models.
#include <spdlog/spdlog.h>

#include "serve/service.h"

namespace garmentnet {
namespace {

struct ModelPath {
  std::string name;
  std::optional<int64_t> version;
  bool metadata = false;
  std::string verb;  // "predict", "classify-image", or "" for GET routes
};

// /v1/models/{name}[/versions/{v}][/metadata][:verb]
ModelPath parse_model_path(std::vector<std::string> segments) {
  ModelPath out;
  std::string& last = segments.back();
  if (const size_t colon = last.rfind(':'); colon != std::string::npos && segments.size() > 2) {
    out.verb = last.substr(colon + 1);
    last.resize(colon);
  }
  out.name = segments[2];
  size_t i = 3;
  if (i < segments.size() && segments[i] == "versions") {
    if (i + 1 >= segments.size()) throw HttpError(404, "missing version number after /versions/");
    out.version = parse_version_segment(segments[i + 1]);
    i += 2;
  }
  if (i < segments.size() && segments[i] == "metadata") {
    out.metadata = true;
    ++i;
  }
  if (i != segments.size() || out.name.empty())
    throw HttpError(404, "unknown route under /v1/models/");
  return out;
}

// The status route is open (no API key), so load errors show no server paths.
nlohmann::json version_status_json(const VersionStatus& status,
                                   const ModelRegistryOptions& models) {
  return {{"version", std::to_string(status.version)},
          {"state", to_string(status.state)},
          {"status",
           {{"error_code", status.error.empty() ? "OK" : "UNKNOWN"},
            {"error_message", hide_server_paths(status.error, models)}}}};
}

HttpResponse model_status(const Service& service, const ModelPath& path) {
  if (path.name != service.options().model_name)
    service.find_model(path.name, std::nullopt);  // 404
  nlohmann::json versions = nlohmann::json::array();
  for (const VersionStatus& status : service.registry().statuses()) {
    if (!path.version || status.version == *path.version)
      versions.push_back(version_status_json(status, service.options().models));
  }
  if (path.version && versions.empty()) {
    throw HttpError(
        404, fmt::format("model \"{}\" has no version {}", client_text(path.name), *path.version));
  }
  return json_response(200, {{"model_version_status", versions}});
}

nlohmann::json tensor_info(const std::string& dtype, std::vector<int64_t> dims) {
  nlohmann::json dim = nlohmann::json::array();
  for (int64_t d : dims) dim.push_back({{"size", std::to_string(d)}, {"name", ""}});
  return {{"dtype", dtype}, {"tensor_shape", {{"dim", dim}, {"unknown_rank", false}}}};
}

HttpResponse model_metadata(const Service& service, const ModelPath& path) {
  const auto model = service.find_model(path.name, path.version);
  const Predictor& predictor = *model->predictor;
  nlohmann::json outputs = nlohmann::json::object();
  nlohmann::json heads = nlohmann::json::array();
  for (const HeadSpec& head : predictor.spec().heads) {
    outputs[head.name] = tensor_info("DT_FLOAT", {-1, static_cast<int64_t>(head.num_outputs())});
    outputs[head.name]["name"] = head.name;
    nlohmann::json entry = {{"name", head.name},
                            {"kind", head.kind == HeadKind::Softmax ? "softmax" : "multi_label"},
                            {"classes", head.classes}};
    if (head.kind == HeadKind::MultiLabel) entry["thresholds"] = predictor.thresholds(head.name);
    heads.push_back(entry);
  }
  nlohmann::json input = tensor_info("DT_FLOAT", {-1, -1, -1, 3});
  input["name"] = kImagesInput;
  const nlohmann::json signature = {{"inputs", {{kImagesInput, input}}},
                                    {"outputs", outputs},
                                    {"method_name", "tensorflow/serving/predict"}};
  return json_response(
      200,
      {{"model_spec",
        {{"name", path.name}, {"signature_name", ""}, {"version", std::to_string(model->version)}}},
       {"metadata",
        {{"signature_def", {{"signature_def", {{"serving_default", signature}}}}},
         {"garmentnet",
          {{"heads", heads},
           {"preprocessing", predictor.preprocessing().to_json()},
           {"input",
            "instances: {\"b64\": JPEG/PNG/WebP} or H×W×3 arrays (floats in [0,1] or ints 0–255), "
            "any size"},
           {"model_file", predictor.document().value("metadata", nlohmann::json::object())}}}}}});
}

HttpResponse predict(Service& service, const HttpRequest& request, const ModelPath& path) {
  auto [model, arrival, deadline] =
      service.open_prediction(request, path.name, path.version,
                              "JSON with \"instances\" (row format) or \"inputs\" (columnar)");
  const PredictBody body = parse_predict_body(request.body, service.options().limits);
  if (!body.signature_name.empty() && body.signature_name != "serving_default") {
    throw HttpError(400,
                    fmt::format("unknown signature_name \"{}\"; this model has \"serving_default\"",
                                client_text(body.signature_name)));
  }
  const size_t rows = body.instances.size();
  const HeadProbabilities probabilities = service.infer(
      std::move(arrival), *model,
      service.decode_instances(body.instances, *model->predictor, deadline), deadline);
  HttpResponse response;
  if (body.columnar) {
    nlohmann::json outputs = nlohmann::json::object();
    for (const auto& [head, values] : probabilities) {
      const size_t width = values.size() / rows;
      nlohmann::json& list = outputs[head] = nlohmann::json::array();
      for (size_t r = 0; r < rows; ++r)
        list.push_back(
            std::vector<float>(values.begin() + r * width, values.begin() + (r + 1) * width));
    }
    response = json_response(200, {{"outputs", outputs}});
  } else {
    nlohmann::json predictions = nlohmann::json::array();
    for (size_t r = 0; r < rows; ++r) {
      nlohmann::json row = nlohmann::json::object();
      for (const auto& [head, values] : probabilities) {
        const size_t width = values.size() / rows;
        row[head] =
            std::vector<float>(values.begin() + r * width, values.begin() + (r + 1) * width);
      }
      predictions.push_back(std::move(row));
    }
    response = json_response(200, {{"predictions", predictions}});
  }
  response.headers.emplace("X-Model-Version", std::to_string(model->version));
  return response;
}

}  // namespace

HttpResponse handle_tf_serving(Service& service, const HttpRequest& request,
                               std::string& route_label) {
  const std::vector<std::string> segments = split_path(request.path);
  route_label = "unknown";
  if (segments.size() < 2 || segments[1] != "models")
    throw HttpError(404, "unknown route under /v1/");
  if (segments.size() == 2) {
    route_label = "model_status";
    nlohmann::json models = nlohmann::json::array();
    const auto model = service.registry().current();
    models.push_back(
        {{"name", service.options().model_name},
         {"version", model ? nlohmann::json(model->version) : nlohmann::json(nullptr)}});
    return json_response(200, {{"models", models}});
  }
  const ModelPath path = parse_model_path(segments);
  if (path.verb.empty()) {
    if (request.method != "GET") throw HttpError(405, "use GET for model status and metadata");
    route_label = path.metadata ? "metadata" : "model_status";
    return path.metadata ? model_metadata(service, path) : model_status(service, path);
  }
  if (request.method != "POST")
    throw HttpError(405, fmt::format(":{} needs POST", client_text(path.verb)));
  if (path.metadata) throw HttpError(404, "unknown route under /v1/models/");
  if (path.verb == "predict") {
    route_label = "predict";
    return predict(service, request, path);
  }
  if (path.verb == "classify-image") {
    route_label = "classify_image";
    return handle_classify_image(service, request, path.name, path.version);
  }
  throw HttpError(404,
                  fmt::format("unknown method :{}; this server has :predict and :classify-image",
                              client_text(path.verb)));
}

}  // namespace garmentnet
