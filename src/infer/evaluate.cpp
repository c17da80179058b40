#include "infer/evaluate.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <numeric>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "data/dataset.h"
#include "data/table.h"
#include "infer/prediction_shards.h"
#include "model/ensemble.h"

namespace garmentnet {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The rows of `values` ([rows × width], row-major) at `rows`, in that order.
template <typename T>
std::vector<T> select_rows(const std::vector<T>& values, size_t width,
                           const std::vector<size_t>& rows) {
  std::vector<T> out;
  out.reserve(rows.size() * width);
  for (size_t row : rows)
    out.insert(out.end(), values.begin() + long(row * width),
               values.begin() + long((row + 1) * width));
  return out;
}

// "a, b, c and 7 more" for error messages.
std::string list_some(const std::vector<std::string>& items, size_t shown = 5) {
  std::string text;
  for (size_t i = 0; i < items.size() && i < shown; ++i) text += (i ? ", '" : "'") + items[i] + "'";
  if (items.size() > shown) text += fmt::format(" and {} more", items.size() - shown);
  return text;
}

ModelFacts model_facts(const Predictor& predictor) {
  ModelFacts facts;
  facts.path = predictor.path();
  facts.file_bytes = fs::file_size(predictor.path());
  facts.parameters = predictor.parameter_count();
  const std::vector<json> members = model_documents(predictor.document());
  const json& backbone = members.at(0).at("architecture").at("backbone");
  facts.backbone = backbone.value("architecture", backbone.value("kind", std::string("unknown")));
  if (members.size() > 1)
    facts.backbone = fmt::format("ensemble of {} × {}", members.size(), facts.backbone);
  facts.input_width = predictor.preprocessing().width;
  facts.input_height = predictor.preprocessing().height;
  return facts;
}

// Per-head probabilities and labels of the rows that have a prediction.
struct ScoredRows {
  std::map<std::string, std::vector<float>> probabilities;
  std::map<std::string, std::vector<int64_t>> labels;
  std::vector<size_t> rows;  // their positions in the labelled dataset
};

ScoredRows scored_rows(const std::vector<const HeadSpec*>& heads,
                       const std::map<std::string, std::vector<float>>& probabilities,
                       const std::map<std::string, std::vector<int64_t>>& labels,
                       const std::vector<bool>& predicted) {
  ScoredRows out;
  for (size_t row = 0; row < predicted.size(); ++row) {
    if (predicted[row]) out.rows.push_back(row);
  }
  for (const HeadSpec* head : heads) {
    out.probabilities[head->name] =
        select_rows(probabilities.at(head->name), head->num_outputs(), out.rows);
    out.labels[head->name] = select_rows(
        labels.at(head->name), head->kind == HeadKind::Softmax ? 1 : head->num_outputs(), out.rows);
  }
  return out;
}

// The category head's wrong top-1 rows, most confident first (stable, so ties keep file order).
std::vector<Mistake> worst_mistakes(const HeadSpec& head, const LabelledDataset& data,
                                    const ScoredRows& scored, bool have_probabilities,
                                    size_t limit) {
  const size_t classes = head.num_outputs();
  const std::vector<float>& probabilities = scored.probabilities.at(head.name);
  const std::vector<int64_t>& labels = scored.labels.at(head.name);
  const auto top2 = top2_classes(probabilities, classes);
  std::vector<Mistake> mistakes;
  for (size_t i = 0; i < scored.rows.size(); ++i) {
    const int64_t label = labels[i];
    const int64_t predicted = top2[i][0];
    if (label == kMissingLabel || predicted == label) continue;
    const size_t row = scored.rows[i];
    mistakes.push_back(
        {data.ids[row], data.images[row], head.classes[size_t(label)],
         head.classes[size_t(predicted)],
         have_probabilities ? double(probabilities[i * classes + size_t(predicted)]) : -1.0});
  }
  std::stable_sort(mistakes.begin(), mistakes.end(), [](const Mistake& a, const Mistake& b) {
    return a.probability > b.probability;
  });
  if (mistakes.size() > limit) mistakes.resize(limit);
  return mistakes;
}

// Scores the heads of `heads` and fills the result's metrics, scored count and mistakes.
void score(EvaluationResult& result, const LabelledDataset& data,
           const std::vector<const HeadSpec*>& heads,
           const std::map<std::string, std::vector<float>>& probabilities,
           const std::vector<bool>& predicted,
           const std::map<std::string, std::vector<double>>& thresholds, size_t mistakes_limit) {
  const ScoredRows scored = scored_rows(heads, probabilities, data.labels, predicted);
  result.rows = data.size();
  result.scored = scored.rows.size();
  if (result.scored == 0)
    fail("no row of {} has a prediction: nothing to score", data.table_path.string());
  for (const HeadSpec* head : heads) {
    const auto& p = scored.probabilities.at(head->name);
    const auto& l = scored.labels.at(head->name);
    if (head->kind == HeadKind::Softmax) {
      result.softmax[head->name] = softmax_metrics(p, l, head->classes);
    } else {
      result.multilabel[head->name] =
          multilabel_metrics(p, l, head->classes, thresholds.at(head->name));
      if (result.ran_model)
        result.curves[head->name] = precision_recall_curves(p, l, head->classes);
    }
  }
  if (const HeadSpec* category = result.spec.category_head();
      category != nullptr && result.softmax.count(category->name)) {
    result.worst_mistakes =
        worst_mistakes(*category, data, scored, result.ran_model, mistakes_limit);
  }
}

// The benchmark module's figures (as `bench --quick`) on the evaluated images, or nullopt with a
// warning when they cannot be measured (e.g. no readable image): the scores stand without them.
std::optional<BenchmarkResult> measure_speed(const EvaluateOptions& options) {
  spdlog::info("measuring inference speed ({} s per measurement; --bench-seconds 0 skips this)",
               options.bench_seconds);
  BenchmarkOptions bench;
  bench.model = options.model;
  bench.images_dir = options.images_dir;
  bench.end_to_end_batch = options.stream.batch_size;
  bench.seconds = options.bench_seconds;
  bench.min_iterations = 1;
  bench.all_variants = false;
  bench.threads = options.threads;
  try {
    return run_benchmark(bench);
  } catch (const InputError& error) {
    spdlog::warn("inference speed not measured: {}", error.what());
    return std::nullopt;
  }
}

void run_model(EvaluationResult& result, const EvaluateOptions& options) {
  std::error_code error;
  if (options.images_dir.empty() || !fs::is_directory(options.images_dir, error)) {
    fail(
        "images folder '{}' does not exist; pass the folder holding the labelled images with "
        "--images",
        options.images_dir.string());
  }
  const Predictor predictor(options.model);
  result.ran_model = true;
  result.spec = predictor.spec();
  result.model = model_facts(predictor);
  // Image files are checked by decoding them, so a missing and a corrupt image are reported alike.
  const LabelledDataset data = load_labelled_dataset(options.labels, options.images_dir,
                                                     result.spec, {.check_images = false});
  const StreamedPredictions streamed =
      predict_images(predictor, data.ids, data.images, options.stream);
  write_table(prediction_table(predictor, data.ids, streamed, PredictionColumns::Full),
              options.out_dir / "predictions.parquet");
  result.failures = streamed.failures;
  result.seconds = streamed.seconds;
  result.images_per_second = streamed.images_per_second();
  result.batch_size = options.stream.batch_size;
  result.threads = options.threads > 0 ? options.threads : default_thread_count();

  std::vector<const HeadSpec*> heads;
  std::map<std::string, std::vector<double>> thresholds;
  for (const auto& head : result.spec.heads) {
    heads.push_back(&head);
    if (head.kind == HeadKind::MultiLabel) thresholds[head.name] = predictor.thresholds(head.name);
  }
  score(result, data, heads, streamed.probabilities, streamed.predicted, thresholds,
        options.worst_mistakes);
  if (options.bench_seconds > 0) result.benchmark = measure_speed(options);
}

// An int64 cell of the predictions file: nullopt for NULL, an error for anything not an integer.
std::optional<int64_t> integer_cell(const Column& column, size_t row, const fs::path& file) {
  const Value& value = column.values[row];
  if (is_null(value)) return std::nullopt;
  if (const auto* integer = std::get_if<int64_t>(&value)) return *integer;
  if (const auto* number = std::get_if<double>(&value);
      number != nullptr && *number == double(int64_t(*number))) {
    return int64_t(*number);
  }
  fail("{}: row {}: column '{}' holds '{}'; it must hold integers", file.string(), row + 1,
       column.name, to_display_string(value));
}

// The row of every id in a predictions table: a null id is refused, and so is a repeated id whose
// predictions differ.
std::unordered_map<std::string, size_t> rows_by_id(const Table& table, const Column& id_column,
                                                   const TaskSpec& spec, const std::string& file) {
  std::unordered_map<std::string, size_t> row_of_id;
  std::vector<std::string> conflicting;
  for (size_t row = 0; row < table.num_rows(); ++row) {
    if (is_null(id_column.values[row])) {
      fail("{}: row {}: column '{}' is null; every row needs an id", file, row + 1, spec.id_column);
    }
    const std::string id = to_display_string(id_column.values[row]);
    auto [seen, inserted] = row_of_id.try_emplace(id, row);
    if (inserted) continue;
    for (const Column& column : table.columns()) {
      if (to_display_string(column.values[row]) != to_display_string(column.values[seen->second])) {
        conflicting.push_back(id);
        break;
      }
    }
  }
  if (!conflicting.empty()) {
    fail("{}: {} id(s) appear more than once with different predictions: {}", file,
         conflicting.size(), list_some(conflicting));
  }
  return row_of_id;
}

// Refuses predictions that miss a labelled id, and predictions of ids that have no labels.
void check_ids_match(const LabelledDataset& data, const Column& id_column,
                     const std::unordered_map<std::string, size_t>& row_of_id,
                     const EvaluateOptions& options) {
  std::vector<std::string> only_in_labels;
  std::unordered_map<std::string, bool> in_labels;
  for (const auto& id : data.ids) {
    in_labels[id] = true;
    if (!row_of_id.count(id)) only_in_labels.push_back(id);
  }
  std::vector<std::string> only_in_predictions;
  for (size_t row = 0; row < id_column.values.size(); ++row) {
    const std::string id = to_display_string(id_column.values[row]);
    if (!in_labels.count(id) && row_of_id.at(id) == row) only_in_predictions.push_back(id);
  }
  if (!only_in_labels.empty()) {
    fail("{} id(s) of {} have no row in {}: {}. Predict every labelled id (or remove those labels)",
         only_in_labels.size(), options.labels.string(), options.predictions.string(),
         list_some(only_in_labels));
  }
  if (!only_in_predictions.empty()) {
    fail("{} id(s) of {} are not in the labels {}: {}. Score predictions of the labelled ids only",
         only_in_predictions.size(), options.predictions.string(), options.labels.string(),
         list_some(only_in_predictions));
  }
}

// Scores decisions read from a predictions file: category1/category2 become scores that rank
// category1 first and category2 second, tags their 0/1 decisions, so the shared metric code
// gives top-1/top-2 accuracy and P/R/F1 of exactly those decisions.
void score_predictions_file(EvaluationResult& result, const EvaluateOptions& options) {
  if (!options.model.empty()) {
    const Predictor predictor(options.model);
    result.spec = predictor.spec();
    result.model = model_facts(predictor);
  } else {
    result.spec = options.task.empty() ? TaskSpec::garments() : TaskSpec::load(options.task);
  }
  result.predictions = options.predictions;
  const TaskSpec& spec = result.spec;
  const LabelledDataset data =
      load_labelled_dataset(options.labels, options.images_dir, spec, {.check_images = false});
  // The parts of a sharded predict (a folder or glob of them) read as the file they merge into.
  const Table table = names_parts(options.predictions)
                          ? read_tables(find_parts(options.predictions))
                          : read_table(options.predictions);
  const fs::path& file = options.predictions;
  const Column& id_column = table.column(spec.id_column, file.string());

  const HeadSpec* category = spec.category_head();
  const HeadSpec* tags = spec.tag_head();
  std::vector<const HeadSpec*> heads;
  std::vector<const Column*> category_columns;
  std::vector<const Column*> tag_columns;
  if (category != nullptr) {
    heads.push_back(category);
    category_columns = {&table.column("category1", file.string()),
                        &table.column("category2", file.string())};
  }
  if (tags != nullptr) {
    heads.push_back(tags);
    for (const auto& tag : tags->classes) tag_columns.push_back(&table.column(tag, file.string()));
  }
  if (heads.empty())
    fail("the task spec has neither a softmax nor a multi-label head: nothing to score");

  const std::unordered_map<std::string, size_t> row_of_id =
      rows_by_id(table, id_column, spec, file.string());
  check_ids_match(data, id_column, row_of_id, options);

  std::map<std::string, std::vector<float>> scores;
  std::vector<bool> predicted(data.size(), true);
  std::map<std::string, std::vector<double>> thresholds;
  if (category != nullptr)
    scores[category->name].assign(data.size() * category->num_outputs(), 0.0f);
  if (tags != nullptr) {
    scores[tags->name].assign(data.size() * tags->num_outputs(), 0.0f);
    thresholds[tags->name].assign(tags->num_outputs(), kDefaultTagThreshold);
  }
  for (size_t i = 0; i < data.size(); ++i) {
    const size_t row = row_of_id.at(data.ids[i]);
    const auto where = [&](const Column& column) {
      return fmt::format("{}: row {}: column '{}'", file.string(), row + 1, column.name);
    };
    bool complete = true;
    if (category != nullptr) {
      const int64_t classes = int64_t(category->num_outputs());
      const std::optional<int64_t> first = integer_cell(*category_columns[0], row, file);
      const std::optional<int64_t> second = integer_cell(*category_columns[1], row, file);
      for (const auto& [value, column] :
           {std::pair{first, category_columns[0]}, std::pair{second, category_columns[1]}}) {
        if (value && (*value < 0 || *value >= classes)) {
          fail("{} holds {}, not a class index of '{}' (0 to {})", where(*column), *value,
               category->name, classes - 1);
        }
      }
      if (first && second && *first == *second && classes > 1) {
        fail("{} repeats category1 ({}); category2 must be the second most likely class",
             where(*category_columns[1]), *second);
      }
      if (!first || (!second && classes > 1)) {
        complete = false;
      } else {
        float* row_scores = &scores[category->name][i * size_t(classes)];
        row_scores[*first] = 1.0f;
        if (second) row_scores[*second] = 0.5f;
      }
    }
    for (size_t t = 0; t < tag_columns.size(); ++t) {
      const std::optional<int64_t> decision = integer_cell(*tag_columns[t], row, file);
      if (decision && *decision != 0 && *decision != 1) {
        fail("{} holds {}; tags must be 0 or 1", where(*tag_columns[t]), *decision);
      }
      if (!decision) {
        complete = false;
      } else {
        scores[tags->name][i * tag_columns.size() + t] = float(*decision);
      }
    }
    if (!complete) {
      predicted[i] = false;
      result.failures.push_back(
          {i, data.ids[i], data.images[i],
           fmt::format("row {} of {} holds NULL predictions", row + 1, file.string())});
    }
  }
  score(result, data, heads, scores, predicted, thresholds, options.worst_mistakes);
}

json strip_probability_metrics(json multilabel) {
  multilabel.erase("macro_f1_at_default_threshold");
  multilabel.erase("mean_average_precision");
  for (json& tag : multilabel["tags"]) {
    for (const char* key : {"threshold", "at_default_threshold", "average_precision"})
      tag.erase(key);
  }
  return multilabel;
}

}  // namespace

json EvaluationResult::to_json() const {
  json out = {{"source", ran_model ? "model" : "predictions"},
              {"labels", labels.string()},
              {"rows", rows},
              {"scored", scored}};
  if (!ran_model) out["predictions"] = predictions.string();
  json failure_list = json::array();
  for (const ImageFailure& f : failures) {
    failure_list.push_back(
        {{"row", f.row + 1}, {"id", f.id}, {"image", f.image.string()}, {"reason", f.reason}});
  }
  out["failures"] = failure_list;

  json summary = json::object();
  json heads = json::object();
  for (const auto& [name, metrics] : softmax) heads[name] = metrics.to_json();
  for (const auto& [name, metrics] : multilabel) {
    heads[name] = ran_model ? metrics.to_json() : strip_probability_metrics(metrics.to_json());
  }
  if (const HeadSpec* category = spec.category_head();
      category != nullptr && softmax.count(category->name)) {
    summary["top1_accuracy"] = softmax.at(category->name).top1_accuracy;
    summary["top2_accuracy"] = softmax.at(category->name).top2_accuracy;
  }
  if (const HeadSpec* tags = spec.tag_head(); tags != nullptr && multilabel.count(tags->name)) {
    const MultiLabelMetrics& m = multilabel.at(tags->name);
    summary["tags_macro_f1"] = m.macro_f1;
    if (ran_model) {
      summary["tags_macro_f1_at_0.5"] = m.macro_f1_at_default;
      summary["tags_mean_average_precision"] = m.mean_average_precision;
    }
  }
  if (ran_model) {
    summary["images_per_second"] = images_per_second;
    out["speed"] = {{"images", scored},
                    {"seconds", seconds},
                    {"images_per_second", images_per_second},
                    {"batch_size", batch_size},
                    {"threads", threads},
                    {"includes", "image decoding, resizing and the model's forward pass"}};
  }
  if (benchmark) out["benchmark"] = benchmark->to_json();
  out["summary"] = summary;
  out["heads"] = heads;
  if (model) {
    out["model"] = {{"path", model->path.string()},
                    {"file_bytes", model->file_bytes},
                    {"parameters", model->parameters},
                    {"backbone", model->backbone},
                    {"input_size", {model->input_width, model->input_height}}};
  }
  json mistakes = json::array();
  for (const Mistake& m : worst_mistakes) {
    json entry = {{"id", m.id}, {"true", m.true_class}, {"predicted", m.predicted_class}};
    if (m.probability >= 0) entry["probability"] = m.probability;
    mistakes.push_back(entry);
  }
  out["worst_mistakes"] = mistakes;
  return out;
}

EvaluationResult evaluate(const EvaluateOptions& options) {
  if (options.out_dir.empty()) fail("no output folder given: pass --out DIR");
  EvaluationResult result;
  result.labels = options.labels;
  result.images_dir = options.images_dir;
  if (options.predictions.empty()) {
    if (options.model.empty())
      fail("pass --model to run a model, or --predictions to score a predictions file");
    run_model(result, options);
  } else {
    score_predictions_file(result, options);
  }
  write_file_atomically(options.out_dir / "evaluation.json", result.to_json().dump(2) + "\n");
  if (options.report) write_evaluation_report(result, options.out_dir);
  return result;
}

}  // namespace garmentnet
