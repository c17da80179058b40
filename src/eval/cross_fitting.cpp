#include "eval/cross_fitting.h"

#include <array>

#include "core/error.h"

namespace garmentnet {

CrossFittedTagScores cross_fitted_tag_scores(std::span<const float> probabilities,
                                             std::span<const int64_t> labels,
                                             const std::vector<std::string>& tag_names) {
  const size_t tags = tag_names.size();
  if (tags == 0 || probabilities.size() != labels.size() || labels.size() % tags != 0)
    fail("cross-fitted tag scores: {} probabilities and {} labels for {} tags",
         probabilities.size(), labels.size(), tags);
  std::array<std::vector<float>, 2> half_probabilities;
  std::array<std::vector<int64_t>, 2> half_labels;
  for (size_t row = 0; row * tags < labels.size(); ++row) {
    const auto from = static_cast<long>(row * tags), to = static_cast<long>((row + 1) * tags);
    half_probabilities[row % 2].insert(half_probabilities[row % 2].end(),
                                       probabilities.begin() + from, probabilities.begin() + to);
    half_labels[row % 2].insert(half_labels[row % 2].end(), labels.begin() + from,
                                labels.begin() + to);
  }
  std::array<std::vector<double>, 2> thresholds;  // tuned on the other half
  for (const size_t half : {0u, 1u})
    for (const TunedThreshold& tuned :
         tune_tag_thresholds(half_probabilities[1 - half], half_labels[1 - half], tag_names))
      thresholds[half].push_back(tuned.threshold);
  // Every probability shifted by its row's threshold to 0.5, so that one call decides each row at
  // its own half's threshold and counts and averages the decisions as everywhere else.
  std::vector<float> shifted(probabilities.begin(), probabilities.end());
  for (size_t i = 0; i < shifted.size(); ++i)
    shifted[i] += static_cast<float>(kDefaultTagThreshold - thresholds[(i / tags) % 2][i % tags]);
  const MultiLabelMetrics decided = multilabel_metrics(
      shifted, labels, tag_names, std::vector<double>(tags, kDefaultTagThreshold));
  CrossFittedTagScores scores{.macro_f1 = decided.macro_f1};
  for (const TagMetrics& tag : decided.tags) scores.tags.push_back(tag.at_threshold);
  return scores;
}

}  // namespace garmentnet
