// TPE, the tree-structured Parzen estimator (Bergstra et al. 2011; Optuna's default sampler): the
// options of `tune --strategy tpe`'s trials after its first random ones. Torch-free.
#pragma once

#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "train/tuning.h"

namespace garmentnet {

inline constexpr int kTpeStartupTrials = 10;

// A finished trial as TPE learns from it: its options and mean score; pruned and failed trials
// count among the bad ones.
struct ScoredConfig {
  nlohmann::json config;
  double score = 0;
  bool bad = false;  // pruned or failed: below every scored trial
};

// The next options by the tree-structured Parzen estimator (Bergstra et al. 2011; Optuna's
// default sampler), each option on its own: the trials so far are split into the best quarter
// and the rest; each side's values make a density (Gaussian kernels, on the logarithm for
// log_uniform, plus a broad prior; counts for choices); of 24 candidates drawn from the good
// density, the one with the highest ratio good / bad density is proposed. Fixed options keep
// their value.
nlohmann::json propose_tpe(const std::vector<SearchParameter>& space,
                           const std::vector<ScoredConfig>& history, std::mt19937_64& rng);

}  // namespace garmentnet
