// `garmentnet quantize`: an fp32 model file → an int8 model file (post-training static
// quantization, src/model/quantized_backbone.h), with its accuracy checked against the fp32 model
// on labelled validation images and its tag thresholds re-tuned on its own outputs. Torch-free
// header. docs/quantization.md explains the route and the figures.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace garmentnet {

struct QuantizeOptions {
  std::filesystem::path model;        // the fp32 model file (.gnm)
  std::filesystem::path calibration;  // dataset folder: data.parquet and images/
  std::filesystem::path out;          // the int8 model file to write
  // Labelled table to score fp32 and int8 on (images in validation_images, default
  // calibration/images). Empty: `validation_rows` rows of calibration/data.parquet that are not
  // calibration images.
  std::filesystem::path validation;
  std::filesystem::path validation_images;
  size_t calibration_images = 256;  // images whose activations set the int8 ranges
  size_t validation_rows = 1000;    // rows scored when `validation` is empty
  std::string observer = "auto";    // minmax, percentile, or auto: both, keep the more accurate
  double max_top1_drop = 1.0;       // largest accepted top-1 accuracy drop, in percentage points
  bool force = false;               // write the int8 model even beyond max_top1_drop
  int threads = 0;                  // model and decoding threads (0: all cores)
  int batch_size = 32;              // images per forward pass
  uint64_t seed = 1;                // which rows calibrate and validate
};

// One model's scores on the validation rows.
struct PrecisionScores {
  std::string precision;           // "fp32" or "int8 (<observer>)"
  double top1 = 0, top2 = 0;       // category head accuracy (0 without a softmax head)
  double tag_macro_f1 = 0;         // tag head, at `thresholds`
  std::vector<double> tag_f1;      // per tag, at `thresholds`
  std::vector<double> thresholds;  // fp32: the model's; int8: re-tuned on its outputs
  double top1_agreement = 1;       // share of rows whose top-1 class equals fp32's
  uintmax_t file_bytes = 0;        // model file size
};

struct QuantizeResult {
  std::vector<std::string> tags;  // tag names, in output order
  PrecisionScores fp32;
  std::vector<PrecisionScores> int8;  // one per observer tried
  size_t chosen = 0;                  // index into int8 of the model written (or refused)
  size_t calibration_images = 0;
  size_t validation_rows = 0;
  double fp32_program_difference = 0;  // largest |features| difference of the folded fp32
                                       // program against the backbone (checks BN folding)
  double top1_drop_points = 0;         // (fp32 - chosen int8) top-1, percentage points
  // Steps of the chosen int8 model that oneDNN failed at on this CPU at batch sizes 1, 8, 32, 1,
  // and how each is routed around (src/model/quantized_backbone.h); empty where none.
  std::vector<std::string> steps_routed_around;
  bool written = false;  // false: refused (top1_drop_points > max_top1_drop)
  std::string refusal;   // why it was refused

  nlohmann::json to_json() const;
};

// Quantizes, scores and writes options.out atomically (unless refused: then nothing is written
// and `refusal` says why). InputError for a backbone int8 cannot express (an imported TorchScript
// one), an unreadable image, a table without labels, or a model that is already int8.
QuantizeResult quantize_model_file(const QuantizeOptions& options);

// fp32 and int8 side by side: top-1, top-2, per-tag F1, top-1 agreement, file size.
std::string quantize_summary_text(const QuantizeResult& result);

}  // namespace garmentnet
