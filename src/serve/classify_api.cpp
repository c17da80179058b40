// POST /v1/models/{name}[/versions/{v}]:classify-image — for people and simple scripts: a raw
// image body or a multipart upload in, named top-2 categories and tags out.
#include "core/error.h"
#include "eval/metrics.h"
#include "serve/service.h"

namespace garmentnet {
namespace {

// The uploaded image bytes: the first non-empty multipart part, else the raw body.
std::string_view image_bytes(const HttpRequest& request) {
  for (const FormPart& part : request.parts) {
    if (!part.content.empty()) return part.content;
  }
  if (!request.parts.empty())
    fail("the multipart upload holds no file; send the image in a form field named \"image\"");
  if (request.header("Content-Type").starts_with("application/json")) {
    fail("this route takes the image itself (raw body or multipart upload); JSON goes to :predict");
  }
  return request.body;
}

}  // namespace

nlohmann::json softmax_head_json(const HeadSpec& head, const std::vector<float>& p) {
  nlohmann::json out = nlohmann::json::array();
  const std::array<int64_t, 2> top = top2_classes(p, p.size()).front();
  for (size_t k = 0; k < top.size() && top[k] >= 0; ++k) {
    const auto index = static_cast<size_t>(top[k]);
    out.push_back({{"rank", k + 1},
                   {"index", index},
                   {"name", head.classes[index]},
                   {"probability", p[index]}});
  }
  return out;
}

nlohmann::json tag_head_json(const HeadSpec& head, const std::vector<float>& p,
                             const std::vector<double>& thresholds) {
  const std::vector<int64_t> present = decide_tags(p, thresholds);
  nlohmann::json out = nlohmann::json::array();
  for (size_t t = 0; t < p.size(); ++t) {
    out.push_back({{"name", head.classes[t]},
                   {"probability", p[t]},
                   {"threshold", thresholds[t]},
                   {"present", present[t] == 1}});
  }
  return out;
}

HttpResponse handle_classify_image(Service& service, const HttpRequest& request,
                                   const std::string& name, std::optional<int64_t> version) {
  const auto started = std::chrono::steady_clock::now();
  auto [model, arrival, deadline] =
      service.open_prediction(request, name, version, "the image bytes (JPEG, PNG or WebP)");
  const Predictor& predictor = *model->predictor;
  std::vector<RequestImage> upload(1);
  upload[0].encoded = image_bytes(request);
  const HeadProbabilities probabilities = service.infer(
      std::move(arrival), *model,
      service.prepare_images(std::move(upload), "uploaded image", predictor, deadline), deadline);
  nlohmann::json heads = nlohmann::json::object();
  for (const HeadSpec& head : predictor.spec().heads) {
    const std::vector<float>& p = probabilities.at(head.name);
    heads[head.name] = head.kind == HeadKind::Softmax
                           ? softmax_head_json(head, p)
                           : tag_head_json(head, p, predictor.thresholds(head.name));
  }
  nlohmann::json body = {{"model", {{"name", name}, {"version", model->version}}},
                         {"heads", heads}};
  // The task's category and tag heads also appear under fixed names, so clients need not know them.
  if (const HeadSpec* category = predictor.spec().category_head())
    body["categories"] = heads[category->name];
  if (const HeadSpec* tags = predictor.spec().tag_head()) body["tags"] = heads[tags->name];
  body["latency_ms"] =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return json_response(200, body);
}

}  // namespace garmentnet
