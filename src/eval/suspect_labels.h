// Rows whose given category is probably wrong, found from out-of-fold probabilities (each row
// predicted by a model that never trained on it), as confident learning does (Northcutt, Jiang and
// Chuang, 2021): class j's threshold is the mean probability of j over the rows labelled j; a row
// is confidently of class j when its probability of j reaches that threshold (the most probable
// such j when several do); a row confidently of a class other than its label is suspect.
// Torch-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace garmentnet {

struct SuspectLabel {
  size_t row = 0;
  int64_t given = 0;             // the label's class
  int64_t predicted = 0;         // the class the row is confidently of
  double confidence = 0;         // its probability of the predicted class
  double given_probability = 0;  // its probability of the given class
};

// `probabilities`: rows × `classes`, row-major; `labels`: the given class of each row (-1: none,
// never suspect). Most doubtful first (lowest probability of the given class).
std::vector<SuspectLabel> find_suspect_labels(std::span<const float> probabilities,
                                              std::span<const int64_t> labels, size_t classes);

// The per-class thresholds: the mean probability of class j over the rows labelled j (above 1,
// never reached, for a class no row has).
std::vector<double> confident_thresholds(std::span<const float> probabilities,
                                         std::span<const int64_t> labels, size_t classes);

}  // namespace garmentnet
