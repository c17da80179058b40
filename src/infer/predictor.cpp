#include "infer/predictor.h"

#include <mutex>

#include "core/thread_pool.h"
#include "model/input.h"
#include "model/model_file.h"

namespace garmentnet {

struct Predictor::Impl {
  std::filesystem::path path;
  ModelBundle bundle;
  nlohmann::json document;
  std::map<std::string, std::vector<double>> thresholds;
  std::mutex mutex;  // one forward pass at a time: torch already uses every core for it
};

Predictor::Predictor(const std::filesystem::path& model_file, const PredictorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  torch::set_num_threads(options.threads > 0 ? options.threads : default_thread_count());
  impl_->path = model_file;
  impl_->bundle = load_model_file(model_file);
  impl_->document = read_model_file_document(model_file);
  impl_->bundle.model->eval();
  for (const auto& head : impl_->bundle.model->spec().heads) {
    if (head.kind == HeadKind::MultiLabel)
      impl_->thresholds[head.name] = impl_->bundle.thresholds(head.name);
  }
}

Predictor::~Predictor() = default;

const TaskSpec& Predictor::spec() const { return impl_->bundle.model->spec(); }
const Preprocessing& Predictor::preprocessing() const { return impl_->bundle.preprocessing; }
const nlohmann::json& Predictor::document() const { return impl_->document; }
const std::filesystem::path& Predictor::path() const { return impl_->path; }

const std::vector<double>& Predictor::thresholds(const std::string& head) const {
  return impl_->thresholds.at(spec().head(head).name);
}

HeadProbabilities Predictor::predict(const std::vector<cv::Mat>& resized) const {
  HeadProbabilities result;
  if (resized.empty()) return result;
  const at::Tensor input = make_input_batch(resized, preprocessing());
  std::lock_guard lock(impl_->mutex);
  torch::InferenceMode guard;
  const HeadOutputs probabilities = head_probabilities(spec(), impl_->bundle.model->forward(input));
  for (const auto& [name, tensor] : probabilities) {
    const at::Tensor contiguous = tensor.contiguous();
    const float* data = contiguous.data_ptr<float>();
    result[name].assign(data, data + contiguous.numel());
  }
  return result;
}

}  // namespace garmentnet
