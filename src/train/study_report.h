// report.html of a `tune` study: the best trials with their options and fold spread, whether the
// best stands out of fold noise, the score against each searched option, how the best score
// improved trial after trial, and the pruning rungs. Torch-free.
#pragma once

#include <vector>

#include "train/tuning.h"

namespace garmentnet {

// Writes <options.out_dir>/report.html and its charts (plots/).
void write_study_report(const StudyResult& study, const TuneOptions& options,
                        const std::vector<SearchParameter>& space);

}  // namespace garmentnet
