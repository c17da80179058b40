#include "train/feature_cache.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "core/progress.h"
#include "core/stop_signals.h"
#include "model/input.h"

namespace garmentnet {
namespace {

// FNV-1a over the bytes of every parameter and buffer of the backbone.
uint64_t weights_fingerprint(const Backbone& backbone) {
  uint64_t hash = 1469598103934665603ULL;
  const auto mix = [&](const torch::Tensor& tensor) {
    const torch::Tensor t = tensor.detach().contiguous();
    const auto* bytes = static_cast<const unsigned char*>(t.data_ptr());
    const size_t size = static_cast<size_t>(t.numel()) * t.element_size();
    for (size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 1099511628211ULL;
  };
  for (const auto& p : backbone->parameters()) mix(p);
  for (const auto& b : backbone->buffers()) mix(b);
  return hash;
}

}  // namespace

torch::Tensor FeatureCache::features(MultiTaskModel& model, const std::vector<cv::Mat>& images,
                                     const std::vector<std::filesystem::path>& paths,
                                     const Preprocessing& pre, const Augmentation& augmentation,
                                     int view, uint64_t seed, const std::string& progress_label,
                                     const std::atomic<bool>* stop) {
  const std::string key =
      fmt::format("{:016x} {} {}", weights_fingerprint(model->backbone()), pre.to_json().dump(),
                  view == 0 ? std::string("plain")
                            : fmt::format("{} {} {}", augmentation.to_json().dump(), seed, view));
  auto& cache = by_key_[key];
  std::vector<size_t> missing;
  for (size_t i = 0; i < paths.size(); ++i) {
    if (!cache.count(paths[i])) missing.push_back(i);
  }
  if (!missing.empty()) {
    torch::InferenceMode guard;
    model->eval();
    Progress progress(progress_label, static_cast<int64_t>(missing.size()), "img");
    constexpr size_t batch_size = 256;
    for (size_t start = 0; start < missing.size(); start += batch_size) {
      stop_if_requested(stop, progress_label);
      const size_t end = std::min(missing.size(), start + batch_size);
      std::vector<cv::Mat> batch;
      for (size_t k = start; k < end; ++k) {
        const size_t i = missing[k];
        if (view == 0) {
          batch.push_back(images[i]);
        } else {
          std::mt19937 rng(
              static_cast<uint32_t>(seed * 1000003 + static_cast<uint64_t>(view) * 7919 +
                                    std::hash<std::string>{}(paths[i].filename().string())));
          batch.push_back(augment(images[i], augmentation, rng));
        }
      }
      const torch::Tensor computed = model->features(make_input_batch(batch, pre));
      for (size_t k = start; k < end; ++k)
        cache[paths[missing[k]]] = computed[static_cast<int64_t>(k - start)].clone();
      computed_ += static_cast<int64_t>(end - start);
      progress.advance(static_cast<int64_t>(end - start));
    }
  }
  std::vector<torch::Tensor> rows;
  rows.reserve(paths.size());
  for (const auto& path : paths) rows.push_back(cache.at(path));
  return torch::stack(rows);
}

}  // namespace garmentnet
