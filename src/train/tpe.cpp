#include "train/tpe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace garmentnet {
namespace {

using nlohmann::json;

// A Parzen density on [low, high]: a Gaussian kernel at each value and a broad prior at the middle.
struct ParzenDensity {
  std::vector<double> centers;
  double bandwidth = 1;
  double low = 0, high = 1;

  ParzenDensity(std::vector<double> values, double low_, double high_)
      : centers(std::move(values)), low(low_), high(high_) {
    // Scott's rule: the values' spread times n^(-1/5), kept between a fiftieth and a quarter of
    // the range (a single value: a tenth).
    const double range = std::max(high - low, 1e-12);
    const auto n = static_cast<double>(centers.size());
    double spread = range / 10;
    if (centers.size() >= 2) {
      const double mean = std::accumulate(centers.begin(), centers.end(), 0.0) / n;
      double squares = 0;
      for (const double c : centers) squares += (c - mean) * (c - mean);
      spread = std::sqrt(squares / (n - 1)) * std::pow(n, -0.2);
    }
    bandwidth = std::clamp(spread, range / 50, range / 4);
    centers.push_back((low + high) / 2);  // the prior
  }

  double log_density(double x) const {
    const double range = std::max(high - low, 1e-12);
    double sum = 0;
    for (size_t i = 0; i < centers.size(); ++i) {
      const double width = i + 1 == centers.size() ? range : bandwidth;  // the prior is broad
      const double z = (x - centers[i]) / width;
      sum += std::exp(-0.5 * z * z) / width;
    }
    return std::log(sum / static_cast<double>(centers.size()) + 1e-300);
  }

  double draw(std::mt19937_64& rng) const {
    const size_t i = std::uniform_int_distribution<size_t>(0, centers.size() - 1)(rng);
    const double width = i + 1 == centers.size() ? high - low : bandwidth;
    return std::clamp(std::normal_distribution<double>(centers[i], width)(rng), low, high);
  }
};

// An option's value as TPE models it: numbers (logarithms for log_uniform) or a choice's index.
double tpe_coordinate(const SearchParameter& parameter, const json& value) {
  if (parameter.kind == SearchParameter::Kind::Choice) {
    return static_cast<double>(std::find(parameter.values.begin(), parameter.values.end(), value) -
                               parameter.values.begin());
  }
  const double x = value.get<double>();
  return parameter.kind == SearchParameter::Kind::LogUniform ? std::log(x) : x;
}

json propose_choice(const SearchParameter& parameter, const std::vector<double>& good,
                    const std::vector<double>& bad, std::mt19937_64& rng) {
  const size_t n = parameter.values.size();
  // Counts with one pseudo-count each (the prior).
  std::vector<double> good_weight(n, 1.0), bad_weight(n, 1.0);
  for (const double index : good)
    if (index < static_cast<double>(n)) good_weight[static_cast<size_t>(index)] += 1;
  for (const double index : bad)
    if (index < static_cast<double>(n)) bad_weight[static_cast<size_t>(index)] += 1;
  const double good_total = std::accumulate(good_weight.begin(), good_weight.end(), 0.0);
  const double bad_total = std::accumulate(bad_weight.begin(), bad_weight.end(), 0.0);
  std::discrete_distribution<size_t> from_good(good_weight.begin(), good_weight.end());
  size_t best = from_good(rng);
  for (int candidate = 1; candidate < 24; ++candidate) {
    const size_t index = from_good(rng);
    const auto ratio = [&](size_t i) {
      return (good_weight[i] / good_total) / (bad_weight[i] / bad_total);
    };
    if (ratio(index) > ratio(best)) best = index;
  }
  return parameter.values[best];
}

json propose_number(const SearchParameter& parameter, const std::vector<double>& good,
                    const std::vector<double>& bad, std::mt19937_64& rng) {
  const bool log = parameter.kind == SearchParameter::Kind::LogUniform;
  const double low = log ? std::log(parameter.low) : parameter.low;
  const double high = log ? std::log(parameter.high) : parameter.high;
  const ParzenDensity good_density(good, low, high), bad_density(bad, low, high);
  double best = good_density.draw(rng);
  double best_ratio = good_density.log_density(best) - bad_density.log_density(best);
  for (int candidate = 1; candidate < 24; ++candidate) {
    const double x = good_density.draw(rng);
    const double ratio = good_density.log_density(x) - bad_density.log_density(x);
    if (ratio > best_ratio) {
      best = x;
      best_ratio = ratio;
    }
  }
  if (parameter.kind == SearchParameter::Kind::IntRange)
    return static_cast<int64_t>(std::lround(best));
  return log ? std::clamp(std::exp(best), parameter.low, parameter.high) : best;
}

}  // namespace

json propose_tpe(const std::vector<SearchParameter>& space,
                 const std::vector<ScoredConfig>& history, std::mt19937_64& rng) {
  // The best quarter (at least one) of the scored trials is good; the rest and every bad one not.
  std::vector<const ScoredConfig*> ranked;
  for (const ScoredConfig& trial : history) ranked.push_back(&trial);
  std::stable_sort(ranked.begin(), ranked.end(), [](const ScoredConfig* a, const ScoredConfig* b) {
    return !a->bad && (b->bad || a->score > b->score);
  });
  const auto scored = static_cast<size_t>(
      std::count_if(history.begin(), history.end(), [](const auto& trial) { return !trial.bad; }));
  const size_t good_count = std::max<size_t>(1, (scored + 3) / 4);
  json config = json::object();
  for (const SearchParameter& parameter : space) {
    if (parameter.kind == SearchParameter::Kind::Fixed) {
      config[parameter.name] = parameter.values.front();
      continue;
    }
    std::vector<double> good, bad;
    for (size_t i = 0; i < ranked.size(); ++i) {
      const json& value = ranked[i]->config.at(parameter.name);
      (i < good_count && !ranked[i]->bad ? good : bad).push_back(tpe_coordinate(parameter, value));
    }
    config[parameter.name] = parameter.kind == SearchParameter::Kind::Choice
                                 ? propose_choice(parameter, good, bad, rng)
                                 : propose_number(parameter, good, bad, rng);
  }
  return config;
}

}  // namespace garmentnet
