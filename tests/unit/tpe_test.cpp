// TPE's proposals move toward the better options of a synthetic objective.
#include "train/tpe.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

namespace garmentnet {
namespace {

// 10 random trials, then 30 proposed by TPE, each scored by `score`; the last 15 proposals.
std::vector<nlohmann::json> late_proposals(
    const std::vector<SearchParameter>& space,
    const std::function<double(const nlohmann::json&)>& score) {
  std::mt19937_64 rng(7);
  std::vector<ScoredConfig> history;
  for (int trial = 0; trial < kTpeStartupTrials; ++trial) {
    nlohmann::json config;
    for (const SearchParameter& parameter : space) config[parameter.name] = parameter.draw(rng);
    history.push_back({.config = config, .score = score(config)});
  }
  std::vector<nlohmann::json> late;
  for (int trial = 0; trial < 30; ++trial) {
    const nlohmann::json config = propose_tpe(space, history, rng);
    if (trial >= 15) late.push_back(config);
    history.push_back({.config = config, .score = score(config)});
  }
  return late;
}

TEST(Tpe, ProposalsConcentrateWhereTheScoresAreBest) {
  const std::vector<SearchParameter> space = parse_search_space({
      {"head_lr", {{"log_uniform", {1e-5, 1.0}}}},
      {"augment", {{"choice", {"none", "light", "standard"}}}},
      {"epochs", 6},
  });
  // A learning rate is best at 10^-2.5: random draws over 10^-5..1 are 1.25 decades from it on
  // average.
  const auto distance = [](const nlohmann::json& config) {
    return std::abs(std::log10(config["head_lr"].get<double>()) + 2.5);
  };
  double late_distance = 0;
  for (const nlohmann::json& config :
       late_proposals(space, [&](const nlohmann::json& config) { return -distance(config); })) {
    EXPECT_EQ(config["epochs"], 6);
    EXPECT_GE(config["head_lr"].get<double>(), 1e-5);
    EXPECT_LE(config["head_lr"].get<double>(), 1.0);
    late_distance += distance(config) / 15;
  }
  EXPECT_LT(late_distance, 0.6);
  // Light augmentation is best.
  int light = 0;
  for (const nlohmann::json& config : late_proposals(space, [](const nlohmann::json& config) {
         return config["augment"] == "light" ? 1.0 : 0.0;
       }))
    light += config["augment"] == "light" ? 1 : 0;
  EXPECT_GE(light, 12);
}

TEST(Tpe, PrunedTrialsCountAsBad) {
  const std::vector<SearchParameter> space =
      parse_search_space({{"optimizer", {{"choice", {"adamw", "sgd"}}}}});
  std::vector<ScoredConfig> history;
  for (int trial = 0; trial < 12; ++trial) {
    // Every sgd trial was pruned; adamw ones finished.
    const bool sgd = trial % 2 == 0;
    history.push_back({.config = {{"optimizer", sgd ? "sgd" : "adamw"}}, .score = 0.5, .bad = sgd});
  }
  std::mt19937_64 rng(1);
  int adamw = 0;
  for (int trial = 0; trial < 20; ++trial)
    adamw += propose_tpe(space, history, rng)["optimizer"] == "adamw" ? 1 : 0;
  EXPECT_EQ(adamw, 20);
}

}  // namespace
}  // namespace garmentnet
