#include "infer/quantize.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "core/error.h"
#include "core/text_table.h"
#include "core/thread_pool.h"
#include "data/dataset.h"
#include "data/image_loader.h"
#include "eval/cross_fitting.h"
#include "eval/metrics.h"
#include "infer/batch_predict.h"
#include "model/input.h"
#include "model/model_file.h"
#include "model/quantized_backbone.h"

namespace garmentnet {
namespace {

namespace fs = std::filesystem;

// Normalised input batches of the calibration images; InputError naming an unreadable one.
std::vector<at::Tensor> calibration_batches(const std::vector<fs::path>& paths,
                                            const Preprocessing& pre, int batch_size,
                                            ThreadPool& pool) {
  const LoadedImages loaded = load_resized_images(paths, pre, {}, pool, "calibration images");
  if (!loaded.failed.empty())
    fail("calibration image {} cannot be used: {}", paths[loaded.failed.front()].string(),
         loaded.errors.front());
  std::vector<at::Tensor> batches;
  for (size_t begin = 0; begin < loaded.images.size(); begin += size_t(batch_size)) {
    const size_t end = std::min(loaded.images.size(), begin + size_t(batch_size));
    batches.push_back(make_input_batch(
        {loaded.images.begin() + long(begin), loaded.images.begin() + long(end)}, pre));
  }
  return batches;
}

// Scores one model file on the validation rows. Its thresholds: fp32 keeps the model's, int8's are
// re-tuned on all the rows (`retune`); its tag F1, for both alike, is cross-fitted (each half of
// the rows decided at thresholds tuned on the other half), never scored on the rows it was tuned
// on.
PrecisionScores score(const fs::path& model, const LabelledDataset& data, const TaskSpec& spec,
                      const QuantizeOptions& options, bool retune,
                      std::vector<std::array<int64_t, 2>>* top2_out,
                      std::vector<double>* thresholds_out) {
  const Predictor predictor(model);
  const StreamedPredictions streamed = predict_images(predictor, data.ids, data.images,
                                                      {.batch_size = options.batch_size,
                                                       .decode_threads = options.threads,
                                                       .stop_at_first_failure = true});
  PrecisionScores scores;
  scores.file_bytes = fs::file_size(model);
  if (const HeadSpec* category = spec.category_head()) {
    const auto& p = streamed.probabilities.at(category->name);
    const SoftmaxMetrics m = softmax_metrics(p, data.labels.at(category->name), category->classes);
    scores.top1 = m.top1_accuracy;
    scores.top2 = m.top2_accuracy;
    *top2_out = top2_classes(p, category->num_outputs());
  }
  if (const HeadSpec* tags = spec.tag_head()) {
    const auto& p = streamed.probabilities.at(tags->name);
    const auto& labels = data.labels.at(tags->name);
    scores.thresholds = predictor.thresholds(tags->name);
    if (retune) {
      scores.thresholds.clear();
      for (const auto& tuned : tune_tag_thresholds(p, labels, tags->classes))
        scores.thresholds.push_back(tuned.threshold);
    }
    const CrossFittedTagScores cross_fitted = cross_fitted_tag_scores(p, labels, tags->classes);
    scores.tag_macro_f1 = cross_fitted.macro_f1;
    for (const BinaryScores& tag : cross_fitted.tags) scores.tag_f1.push_back(tag.f1);
    *thresholds_out = scores.thresholds;
  }
  return scores;
}

// Runs an int8 backbone at batch sizes 1, 8, 32 and 1 again, so the steps oneDNN fails at on this
// CPU are found (and routed around) now and can be named in the report.
std::vector<std::string> steps_routed_around(Backbone int8, const at::Tensor& images) {
  torch::InferenceMode guard;
  const at::Tensor batch = images.repeat({(32 + images.size(0) - 1) / images.size(0), 1, 1, 1});
  for (int64_t size : {1, 8, 32, 1}) int8->forward(batch.slice(0, 0, size));
  return int8_steps_routed_around(int8);
}

std::vector<RangeObserver> observers_of(const std::string& name) {
  if (name == "auto") return {RangeObserver::MinMax, RangeObserver::Percentile};
  for (RangeObserver observer : {RangeObserver::MinMax, RangeObserver::Percentile})
    if (name == name_of(observer)) return {observer};
  fail("--observer must be minmax, percentile or auto, not '{}'", name);
}

nlohmann::json scores_json(const PrecisionScores& s, const std::vector<std::string>& tags) {
  nlohmann::json per_tag = nlohmann::json::object();
  for (size_t i = 0; i < s.tag_f1.size() && i < tags.size(); ++i)
    per_tag[tags[i]] = {{"f1", s.tag_f1[i]}, {"threshold", s.thresholds[i]}};
  return {{"precision", s.precision},  {"top1_accuracy", s.top1},
          {"top2_accuracy", s.top2},   {"tag_macro_f1", s.tag_macro_f1},
          {"tags", per_tag},           {"top1_agreement_with_fp32", s.top1_agreement},
          {"file_bytes", s.file_bytes}};
}

}  // namespace

nlohmann::json QuantizeResult::to_json() const {
  nlohmann::json candidates = nlohmann::json::array();
  for (const auto& s : int8) candidates.push_back(scores_json(s, tags));
  return {{"fp32", scores_json(fp32, tags)},
          {"int8_candidates", candidates},
          {"chosen", int8.empty() ? nlohmann::json() : nlohmann::json(int8[chosen].precision)},
          {"calibration_images", calibration_images},
          {"validation_rows", validation_rows},
          {"fp32_program_max_difference", fp32_program_difference},
          {"top1_drop_points", top1_drop_points},
          {"steps_routed_around", steps_routed_around},
          {"fp32_layers", "the heads (linear layers after the pooled features)"}};
}

QuantizeResult quantize_model_file(const QuantizeOptions& options) {
  if (options.out.empty()) fail("--out is required: the int8 model file to write");
  const std::vector<RangeObserver> observers = observers_of(options.observer);
  const int threads = options.threads > 0 ? options.threads : default_thread_count();
  ModelBundle fp32 = load_model_file(options.model);
  const TaskSpec spec = fp32.model->spec();
  const Preprocessing pre = fp32.preprocessing;
  Calibration calibration(fp32.model->backbone(), pre.height, pre.width);

  // Which rows calibrate and which validate: a seeded shuffle of the calibration table.
  const LabelledDataset all = load_labelled_dataset(options.calibration / "data.parquet",
                                                    options.calibration / "images", spec, {});
  std::vector<size_t> order(all.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 rng(options.seed);
  std::shuffle(order.begin(), order.end(), rng);
  const size_t calibration_count = std::min(options.calibration_images, order.size());
  if (calibration_count == 0) fail("{} has no rows to calibrate on", options.calibration.string());
  const LabelledDataset calibration_data =
      all.subset({order.begin(), order.begin() + long(calibration_count)});
  LabelledDataset validation;
  if (options.validation.empty()) {
    const size_t end = std::min(order.size(), calibration_count + options.validation_rows);
    if (end == calibration_count)
      fail("{} has no rows left for validation after {} calibration images; pass --validation",
           options.calibration.string(), calibration_count);
    validation = all.subset({order.begin() + long(calibration_count), order.begin() + long(end)});
  } else {
    const fs::path images = options.validation_images.empty() ? options.calibration / "images"
                                                              : options.validation_images;
    validation = load_labelled_dataset(options.validation, images, spec, {});
  }

  QuantizeResult result;
  at::Tensor probe_images;  // run by the chosen int8 model at each batch size serving sees
  if (const HeadSpec* tags = spec.tag_head()) result.tags = tags->classes;
  result.calibration_images = calibration_count;
  result.validation_rows = validation.size();
  {
    ThreadPool pool(threads);
    spdlog::info("calibrating on {} images", calibration_count);
    const std::vector<at::Tensor> batches =
        calibration_batches(calibration_data.images, pre, options.batch_size, pool);
    for (const auto& batch : batches) calibration.observe(batch);
    probe_images = batches.front();
    torch::InferenceMode guard;
    result.fp32_program_difference =
        (calibration.fp32_features(batches.front()) - fp32.model->features(batches.front()))
            .abs()
            .max()
            .item<double>();
  }

  spdlog::info("scoring fp32 and int8 on {} validation rows", validation.size());
  std::vector<std::array<int64_t, 2>> fp32_top2;
  std::vector<double> fp32_thresholds;
  result.fp32 =
      score(options.model, validation, spec, options, false, &fp32_top2, &fp32_thresholds);
  result.fp32.precision = "fp32";
  std::vector<ModelBundle> candidates;
  for (RangeObserver observer : observers) {
    ModelBundle int8 = fp32;
    int8.model = MultiTaskModel(calibration.quantize(observer), spec, fp32.model->options());
    {
      torch::NoGradGuard no_grad;
      for (const auto& head : spec.heads) {
        int8.model->head(head.name)->weight.copy_(fp32.model->head(head.name)->weight);
        int8.model->head(head.name)->bias.copy_(fp32.model->head(head.name)->bias);
      }
    }
    int8.model->eval();
    int8.metadata["quantized_from"] = options.model.string();
    const fs::path candidate =
        options.out.parent_path() /
        fmt::format(".{}.{}.candidate", options.out.filename().string(), name_of(observer));
    save_model_file(int8, candidate);
    std::vector<std::array<int64_t, 2>> top2;
    std::vector<double> thresholds;
    PrecisionScores scores = score(candidate, validation, spec, options, true, &top2, &thresholds);
    fs::remove(candidate);
    scores.precision = fmt::format("int8 ({})", name_of(observer));
    size_t agree = 0;
    for (size_t i = 0; i < top2.size(); ++i) agree += top2[i][0] == fp32_top2[i][0] ? 1 : 0;
    scores.top1_agreement = top2.empty() ? 1.0 : double(agree) / double(top2.size());
    if (const HeadSpec* tags = spec.tag_head()) int8.tag_thresholds[tags->name] = thresholds;
    result.int8.push_back(std::move(scores));
    candidates.push_back(std::move(int8));
  }
  // The most accurate candidate: top-1, then tag macro F1.
  for (size_t i = 1; i < result.int8.size(); ++i) {
    const auto& best = result.int8[result.chosen];
    const auto& other = result.int8[i];
    if (other.top1 > best.top1 ||
        (other.top1 == best.top1 && other.tag_macro_f1 > best.tag_macro_f1))
      result.chosen = i;
  }
  PrecisionScores& chosen = result.int8[result.chosen];
  result.steps_routed_around =
      steps_routed_around(candidates[result.chosen].model->backbone(), probe_images);
  result.top1_drop_points = (result.fp32.top1 - chosen.top1) * 100;
  if (result.top1_drop_points > options.max_top1_drop && !options.force) {
    result.refusal = fmt::format(
        "the int8 model's top-1 accuracy is {:.2f} points below fp32's ({:.2f}% vs {:.2f}%), more "
        "than --max-top1-drop {:.2f}; nothing written. Try more --calibration-images or another "
        "--observer, or pass --force to write it anyway",
        result.top1_drop_points, chosen.top1 * 100, result.fp32.top1 * 100, options.max_top1_drop);
    return result;
  }
  ModelBundle& written = candidates[result.chosen];
  written.metrics["quantization"] = result.to_json();
  save_model_file(written, options.out);
  chosen.file_bytes = fs::file_size(options.out);
  result.written = true;
  return result;
}

std::string quantize_summary_text(const QuantizeResult& result) {
  std::vector<std::string> headers{"", result.fp32.precision};
  for (const auto& s : result.int8) headers.push_back(s.precision);
  const auto percent = [](double v) { return fmt::format("{:.2f}%", v * 100); };
  const auto number = [](double v) { return fmt::format("{:.4f}", v); };
  std::vector<std::vector<std::string>> rows;
  const auto row = [&](const std::string& name, auto value) {
    std::vector<std::string> cells{name, value(result.fp32)};
    for (const auto& s : result.int8) cells.push_back(value(s));
    rows.push_back(std::move(cells));
  };
  row("top-1 accuracy", [&](const PrecisionScores& s) { return percent(s.top1); });
  row("top-2 accuracy", [&](const PrecisionScores& s) { return percent(s.top2); });
  row("top-1 agreement with fp32",
      [&](const PrecisionScores& s) { return percent(s.top1_agreement); });
  row("tag macro F1", [&](const PrecisionScores& s) { return number(s.tag_macro_f1); });
  for (size_t t = 0; t < result.tags.size(); ++t)
    row(fmt::format("F1 {} (threshold)", result.tags[t]), [&](const PrecisionScores& s) {
      return t < s.tag_f1.size() ? fmt::format("{:.4f} ({:.3f})", s.tag_f1[t], s.thresholds[t])
                                 : std::string("-");
    });
  row("file size", [&](const PrecisionScores& s) {
    return s.file_bytes ? fmt::format("{:.2f} MB", double(s.file_bytes) / 1e6) : std::string("-");
  });
  std::string text = fmt::format(
      "Validation: {} rows; calibration: {} images; int8 thresholds re-tuned on the int8 "
      "outputs; tag F1 cross-fitted for every precision (each half of the rows decided at the "
      "thresholds tuned on the other half).\n\n",
      result.validation_rows, result.calibration_images);
  text += format_text_table(headers, rows);
  if (!result.int8.empty())
    text += fmt::format("\nChosen: {} (top-1 drop {:.2f} points); fp32 layers: the heads.\n",
                        result.int8[result.chosen].precision, result.top1_drop_points);
  if (!result.steps_routed_around.empty())
    text += fmt::format("Steps oneDNN failed at on this CPU, routed around: {}.\n",
                        fmt::join(result.steps_routed_around, "; "));
  return text;
}

}  // namespace garmentnet
