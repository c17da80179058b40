#include "eval/suspect_labels.h"

#include <algorithm>
#include <optional>

#include "core/error.h"

namespace garmentnet {

std::vector<double> confident_thresholds(std::span<const float> probabilities,
                                         std::span<const int64_t> labels, size_t classes) {
  if (classes == 0 || probabilities.size() != labels.size() * classes)
    fail_internal("{} probabilities for {} rows of {} classes", probabilities.size(), labels.size(),
                  classes);
  std::vector<double> sums(classes, 0.0), counts(classes, 0.0);
  for (size_t row = 0; row < labels.size(); ++row) {
    if (labels[row] < 0) continue;
    const auto label = static_cast<size_t>(labels[row]);
    sums[label] += probabilities[row * classes + label];
    counts[label] += 1;
  }
  std::vector<double> thresholds(classes, 2.0);
  for (size_t j = 0; j < classes; ++j)
    if (counts[j] > 0) thresholds[j] = sums[j] / counts[j];
  return thresholds;
}

std::vector<SuspectLabel> find_suspect_labels(std::span<const float> probabilities,
                                              std::span<const int64_t> labels, size_t classes) {
  const std::vector<double> thresholds = confident_thresholds(probabilities, labels, classes);
  std::vector<SuspectLabel> suspects;
  for (size_t row = 0; row < labels.size(); ++row) {
    if (labels[row] < 0) continue;
    const float* p = probabilities.data() + row * classes;
    std::optional<size_t> confident;
    for (size_t j = 0; j < classes; ++j)
      if (p[j] >= thresholds[j] && (!confident || p[j] > p[*confident])) confident = j;
    if (!confident || static_cast<int64_t>(*confident) == labels[row]) continue;
    suspects.push_back({.row = row,
                        .given = labels[row],
                        .predicted = static_cast<int64_t>(*confident),
                        .confidence = p[*confident],
                        .given_probability = p[labels[row]]});
  }
  std::stable_sort(suspects.begin(), suspects.end(), [](const auto& a, const auto& b) {
    return a.given_probability < b.given_probability;
  });
  return suspects;
}

}  // namespace garmentnet
