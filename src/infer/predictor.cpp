#include "infer/predictor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <optional>

#include "core/error.h"
#include "infer/torchscript_export.h"
#include "model/input.h"
#include "model/model_file.h"
#include "model/quantized_backbone.h"

namespace garmentnet {
namespace {

// Images in the load-time check of the optimised graph. Not the traced batch size (2), so the
// check also proves the graph did not bake the batch size in.
constexpr int64_t kProbeBatch = 3;

// The model traced, frozen and optimised for the CPU, or nullopt (with a warning saying why) if
// that fails or its probabilities differ from the eager model's by more than `tolerance` on a
// random probe batch.
std::optional<torch::jit::Module> build_optimized(ModelBundle& bundle, double tolerance,
                                                  const std::filesystem::path& path) {
  const TaskSpec& spec = bundle.model->spec();
  const Preprocessing& pre = bundle.preprocessing;
  try {
    torch::jit::Module optimized = optimize_traced_model(trace_model(bundle.model, pre), {});
    torch::InferenceMode guard;
    auto generator = at::detail::createCPUGenerator(/*seed_val=*/7);
    const torch::Tensor probe =
        at::randn({kProbeBatch, 3, pre.height, pre.width}, generator, torch::kFloat);
    const HeadOutputs eager = head_probabilities(spec, bundle.model->forward(probe));
    const double difference = max_abs_difference(eager, run_traced_model(optimized, spec, probe));
    if (!(difference <= tolerance)) {
      spdlog::warn(
          "{}: the optimised graph's probabilities differ from the eager model's by {:.3g} "
          "(more than {:.3g}); running the eager model instead (slower, same results)",
          path.string(), difference, tolerance);
      return std::nullopt;
    }
    return optimized;
  } catch (const std::exception& error) {
    spdlog::warn(
        "{}: could not build the optimised graph ({}); running the eager model instead (slower, "
        "same results)",
        path.string(), error.what());
    return std::nullopt;
  }
}

}  // namespace

// One model of the file (an ensemble file has several).
struct PredictorMember {
  ModelBundle bundle;
  std::optional<torch::jit::Module> optimized;  // the fast graph; nullopt = run the eager model
};

struct Predictor::Impl {
  std::filesystem::path path;
  std::vector<PredictorMember> members;
  nlohmann::json document;
  std::map<std::string, std::vector<double>> thresholds;
  std::mutex mutex;  // one forward pass at a time: torch already uses every core for it
};

Predictor::Predictor(const std::filesystem::path& model_file, const PredictorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = model_file;
  impl_->document = read_model_file_document(model_file);
  std::vector<ModelBundle> bundles = load_model_members(model_file);
  for (const auto& head : bundles.front().model->spec().heads) {
    if (head.kind == HeadKind::MultiLabel)
      impl_->thresholds[head.name] = mean_thresholds(bundles, head.name);
  }
  for (ModelBundle& bundle : bundles) {
    PredictorMember& member = impl_->members.emplace_back(PredictorMember{std::move(bundle)});
    // An int8 model is its own optimised form (fused int8 operators); it is not traced again.
    if (options.optimize && !is_quantized(member.bundle.model->backbone()))
      member.optimized = build_optimized(member.bundle, options.optimized_tolerance, model_file);
  }
}

Predictor::~Predictor() = default;

const TaskSpec& Predictor::spec() const { return impl_->members.front().bundle.model->spec(); }
const Preprocessing& Predictor::preprocessing() const {
  return impl_->members.front().bundle.preprocessing;
}
const nlohmann::json& Predictor::document() const { return impl_->document; }
const std::filesystem::path& Predictor::path() const { return impl_->path; }

int64_t Predictor::parameter_count() const {
  int64_t count = 0;
  for (const PredictorMember& member : impl_->members)
    for (const auto& parameter : member.bundle.model->parameters()) count += parameter.numel();
  return count;
}

const std::vector<double>& Predictor::thresholds(const std::string& head) const {
  return impl_->thresholds.at(spec().head(head).name);
}

HeadProbabilities Predictor::predict(const std::vector<cv::Mat>& resized) const {
  HeadProbabilities result;
  if (resized.empty()) return result;
  const at::Tensor input = make_input_batch(resized, preprocessing());
  std::lock_guard lock(impl_->mutex);
  torch::InferenceMode guard;
  // An ensemble's probabilities are its members' mean.
  HeadOutputs sum;
  for (PredictorMember& member : impl_->members) {
    const HeadOutputs probabilities =
        member.optimized ? run_traced_model(*member.optimized, spec(), input)
                         : head_probabilities(spec(), member.bundle.model->forward(input));
    for (const auto& [name, tensor] : probabilities)
      sum[name] = sum.contains(name) ? sum[name] + tensor : tensor;
  }
  for (auto& [name, tensor] : sum) {
    const at::Tensor mean =
        (impl_->members.size() == 1 ? tensor : tensor / double(impl_->members.size())).contiguous();
    const float* data = mean.data_ptr<float>();
    result[name].assign(data, data + mean.numel());
  }
  return result;
}

bool Predictor::optimized() const {
  return std::all_of(impl_->members.begin(), impl_->members.end(),
                     [](const PredictorMember& member) { return member.optimized.has_value(); });
}

}  // namespace garmentnet
