// `garmentnet evaluate`: flags → EvaluateOptions; prints the summary and where the files are.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "infer/evaluate.h"

namespace garmentnet::cli {

// Exit code of a run that finished but left rows without predictions (docs/evaluate.md).
constexpr int kExitMissingPredictions = 3;

void add_evaluate_command(CLI::App& app) {
  struct Flags {
    EvaluateOptions options;
    bool allow_missing = false;
    bool strict = false;
  };
  auto flags = std::make_shared<Flags>();
  EvaluateOptions& o = flags->options;
  CLI::App* command = app.add_subcommand(
      "evaluate",
      "Score a model (or an existing predictions file) against labels: accuracy, per-class and "
      "per-tag precision/recall/F1, average precision, speed, model size (terminal, "
      "OUT/evaluation.json, OUT/report.html)");
  command->add_option("--model", o.model,
                      "model file (.gnm); optional with --predictions (task spec, size)");
  command
      ->add_option("--labels", o.labels,
                   "labelled table (.parquet or .csv), e.g. test_labels.parquet")
      ->required();
  command->add_option(
      "--images", o.images_dir,
      "folder of the labelled images; with --predictions only used for the mistakes grid");
  command->add_option(
      "--predictions", o.predictions,
      "score this predictions file (as `predict` writes), or a folder or glob of the part files of "
      "`predict --shard`, instead of running the model");
  command->add_option("--task", o.task,
                      "with --predictions and no --model: task spec JSON (default: garments)");
  command->add_option("--out", o.out_dir,
                      "folder for evaluation.json and report.html (default: MODEL's "
                      "folder/evaluation, or ./evaluation)");
  command->add_option("--batch-size", o.stream.batch_size, "images per forward pass")
      ->capture_default_str();
  command
      ->add_option("--threads", o.threads, "threads for the model and for decoding (0: all cores)")
      ->capture_default_str();
  command->add_option("--mistakes", o.worst_mistakes, "wrong categories shown in the report's grid")
      ->capture_default_str();
  command
      ->add_option("--bench-seconds", o.bench_seconds,
                   "seconds per inference speed measurement (the figures of `bench --quick`); "
                   "0 skips them")
      ->capture_default_str();
  command->add_flag("!--no-report", o.report, "skip report.html and its plots");
  CLI::Option* allow =
      command->add_flag("--allow-missing", flags->allow_missing,
                        "exit 0 even when some rows have no prediction (they are not scored)");
  command->add_flag("--strict", flags->strict, "stop at the first missing or unreadable image")
      ->excludes(allow);

  command->callback([flags] {
    EvaluateOptions options = flags->options;
    use_model_threads(options.threads);
    options.stream.decode_threads = options.threads;
    options.stream.stop_at_first_failure = flags->strict;
    if (options.out_dir.empty()) {
      options.out_dir = options.model.empty() ? std::filesystem::path("evaluation")
                                              : options.model.parent_path() / "evaluation";
    }
    const EvaluationResult result = evaluate(options);
    std::fputs(evaluation_summary_text(result).c_str(), stdout);
    std::printf("\nNumbers: %s\n", (options.out_dir / "evaluation.json").c_str());
    if (options.report) std::printf("Report:  %s\n", (options.out_dir / "report.html").c_str());
    if (result.ran_model)
      std::printf("Predictions: %s\n", (options.out_dir / "predictions.parquet").c_str());
    if (result.failures.empty()) return;
    std::fprintf(stderr, "%zu row(s) have no prediction and were not scored:\n%s",
                 result.failures.size(),
                 describe_failures(result.failures, result.spec.id_column).c_str());
    if (!flags->allow_missing) throw CLI::RuntimeError(kExitMissingPredictions);
  });
}

}  // namespace garmentnet::cli
