// `garmentnet quantize`: flags → QuantizeOptions; prints fp32 and int8 side by side.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "infer/quantize.h"

namespace garmentnet::cli {

void add_quantize_command(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* command = app.add_subcommand(
      "quantize",
      "Write an int8 copy of a model (post-training static quantization: about 4x smaller and "
      "faster on the CPU), checked against the fp32 model on labelled images "
      "(docs/quantization.md)");
  command->add_option("--model", o->model, "fp32 model file (.gnm)")->required();
  command
      ->add_option("--calibration", o->calibration,
                   "dataset folder (data.parquet, images/) whose images set the int8 ranges")
      ->required();
  command->add_option("--out", o->out, "int8 model file to write, e.g. model-int8.gnm")->required();
  command->add_option("--validation", o->validation,
                      "labelled table to compare fp32 and int8 on (default: rows of the "
                      "calibration data that are not calibration images)");
  command->add_option("--validation-images", o->validation_images,
                      "images of --validation (default: the calibration folder's images/)");
  command->add_option("--calibration-images", o->calibration_images, "calibration images")
      ->capture_default_str();
  command
      ->add_option("--validation-rows", o->validation_rows,
                   "rows compared when --validation is not given")
      ->capture_default_str();
  command
      ->add_option("--observer", o->observer,
                   "activation ranges: minmax, percentile, or auto (both; keep the more accurate)")
      ->check(CLI::IsMember({"auto", "minmax", "percentile"}))
      ->capture_default_str();
  command
      ->add_option("--max-top1-drop", o->max_top1_drop,
                   "refuse to write the model if top-1 accuracy drops more (percentage points)")
      ->capture_default_str();
  command->add_flag("--force", o->force, "write the int8 model even beyond --max-top1-drop");
  command->add_option("--batch-size", o->batch_size, "images per forward pass")
      ->capture_default_str();
  command->add_option("--threads", o->threads, "threads (0: all cores)")->capture_default_str();
  command->add_option("--seed", o->seed, "which rows calibrate and validate")
      ->capture_default_str();
  command->callback([o] {
    use_model_threads(o->threads);
    const QuantizeResult result = quantize_model_file(*o);
    std::fputs(quantize_summary_text(result).c_str(), stdout);
    std::fflush(stdout);  // the table before the refusal on stderr
    if (!result.written) fail("{}", result.refusal);
    std::printf("Wrote %s\n", o->out.c_str());
  });
}

}  // namespace garmentnet::cli
