// `garmentnet predict`: flags → PredictOptions; prints failures and the speed.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "cli/commands.h"
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

  command->callback([flags] {
    PredictOptions options = flags->options;
    options.stream.decode_threads = flags->threads;
    options.stream.stop_at_first_failure = flags->strict;
    const Predictor predictor(flags->model, {.threads = flags->threads});
    const PredictResult result = predict_file(predictor, options);
    std::printf("Predicted %zu of %zu rows in %.1f s (%.1f images/s) → %s\n",
                result.images_predicted, result.rows, result.seconds, result.images_per_second,
                options.output.c_str());
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

}  // namespace garmentnet::cli
