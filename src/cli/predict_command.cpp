// `garmentnet predict`: flags → PredictOptions; prints failures and the speed.
// `garmentnet merge-predictions`: the part files of a sharded predict → one predictions file.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "data/table.h"
#include "infer/batch_predict.h"

namespace garmentnet::cli {

// Exit code of a run that finished but left rows without predictions (docs/predict.md).
constexpr int kExitImageFailures = 3;

void add_predict_command(CLI::App& app) {
  struct Flags {
    std::filesystem::path model;
    PredictOptions options;
    int threads = 0;
    bool allow_missing = false;
    bool strict = false;
    std::string shard;
  };
  auto flags = std::make_shared<Flags>();
  PredictOptions& o = flags->options;
  CLI::App* command = app.add_subcommand(
      "predict",
      "Predict the categories and tags of every id of a table (Parquet/CSV → Parquet/CSV, same "
      "rows in the same order)");
  command->add_option("--model", flags->model, "model file (.gnm) written by `train`")->required();
  command->add_option("--input", o.input, "table with the id column (e.g. uuid), .parquet or .csv")
      ->required();
  command->add_option("--images", o.images_dir, "folder of the images (<id>.jpeg)")->required();
  command->add_option("--output", o.output, "predictions file to write, .parquet or .csv")
      ->required();
  command->add_option("--columns", o.columns, "full (names, probabilities, other heads) or minimal")
      ->transform(CLI::CheckedTransformer(std::map<std::string, PredictionColumns>{
          {"full", PredictionColumns::Full}, {"minimal", PredictionColumns::Minimal}}))
      ->default_str("full");
  command->add_option("--batch-size", o.stream.batch_size, "images per forward pass")
      ->capture_default_str();
  command
      ->add_option("--threads", flags->threads,
                   "threads for the model and for decoding (0: all cores)")
      ->capture_default_str();
  CLI::Option* allow = command->add_flag(
      "--allow-missing", flags->allow_missing,
      "exit 0 even when some images are missing or unreadable (their rows still hold NULL)");
  command
      ->add_flag("--strict", flags->strict,
                 "stop at the first missing or unreadable image; write nothing")
      ->excludes(allow);
  command->add_option("--shard", flags->shard,
                      "I/N: predict only slice I (0-based) of N of the rows, into "
                      "<output stem>.part-I-of-N<ext>; `merge-predictions` joins the parts");

  command->callback([flags] {
    PredictOptions options = flags->options;
    if (!flags->shard.empty()) options.shard = parse_shard(flags->shard);
    options.stream.decode_threads = flags->threads;
    options.stream.stop_at_first_failure = flags->strict;
    use_model_threads(flags->threads);
    const Predictor predictor(flags->model);
    const PredictResult result = predict_file(predictor, options);
    std::printf("Predicted %zu of %zu rows in %.1f s (%.1f images/s) → %s\n",
                result.images_predicted, result.rows, result.seconds, result.images_per_second,
                result.output.c_str());
    if (result.failures.empty()) return;
    const std::string& id_column = predictor.spec().id_column;
    std::fprintf(
        stderr,
        "%zu image(s) could not be read; their rows hold NULL predictions:\n%s(all listed in %s)\n",
        result.failures.size(), describe_failures(result.failures, id_column).c_str(),
        result.failures_file.c_str());
    if (!flags->allow_missing) throw CLI::RuntimeError(kExitImageFailures);
  });
}

void add_merge_predictions_command(CLI::App& app) {
  struct Flags {
    std::filesystem::path parts;
    std::filesystem::path output;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand(
      "merge-predictions",
      "Join the part files of `predict --shard I/N` into the predictions file one unsharded run "
      "writes (same rows, order and values)");
  command
      ->add_option("--parts", flags->parts,
                   "folder holding the parts, or a glob such as 'out/predictions.part-*'")
      ->required();
  command->add_option("--output", flags->output, "predictions file to write, .parquet or .csv")
      ->required();
  command->callback([flags] {
    const std::vector<std::filesystem::path> parts = find_parts(flags->parts);
    concatenate_tables(parts, flags->output);
    std::printf("Merged %zu parts → %s\n", parts.size(), flags->output.c_str());
  });
}

}  // namespace garmentnet::cli
