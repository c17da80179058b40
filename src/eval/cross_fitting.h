// Tag decisions scored at thresholds never tuned on the rows they decide (cross-fitting). Tuning
// thresholds and scoring them on the same rows is optimistic; `quantize` compares precisions with
// this instead.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "eval/metrics.h"

namespace garmentnet {

struct CrossFittedTagScores {
  std::vector<BinaryScores> tags;  // in tag order
  double macro_f1 = 0;             // over the tags with an actual or predicted positive
};

// The rows ([rows × tag_names.size()], labels 0, 1 or -1) are split by position into two halves
// (even, odd); each half is decided at the thresholds `tune_tag_thresholds` picks on the other,
// and the counts of both halves give each tag's scores: an honest estimate of how thresholds tuned
// on such data score on new rows. InputError for shapes that do not match.
CrossFittedTagScores cross_fitted_tag_scores(std::span<const float> probabilities,
                                             std::span<const int64_t> labels,
                                             const std::vector<std::string>& tag_names);

}  // namespace garmentnet
