// Batch prediction (`garmentnet predict`): the ids of a table → their images, decoded in parallel
// chunk by chunk while the model runs on the previous chunk → one row of predictions per input
// row, in input order. `evaluate` runs the model through the same streaming path. The layout of
// the predictions table is documented in docs/predict.md.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/table.h"
#include "infer/prediction_shards.h"
#include "infer/predictor.h"

namespace garmentnet {

// An input row whose image could not be predicted.
struct ImageFailure {
  size_t row = 0;  // 0-based position in the input
  std::string id;
  std::filesystem::path image;
  std::string reason;  // the decoder's message (missing, unreadable, corrupt, too large …)
};

struct StreamOptions {
  int batch_size = 64;                 // images per forward pass (and per decoded chunk)
  int decode_threads = 0;              // threads decoding images; 0 = all cores available
  bool stop_at_first_failure = false;  // an image failure is an InputError instead of a NULL row
  bool progress = true;                // show a progress bar
  ImageLimits limits;                  // refuse images larger than this before decoding
  size_t first_row = 0;  // input row of the first image (a shard's): failures count rows from it
};

// The model's outputs for a list of images, row-aligned with that list.
struct StreamedPredictions {
  HeadProbabilities probabilities;  // per head [rows × outputs]; NaN in rows without a prediction
  std::vector<bool> predicted;      // per row: false where the image failed
  std::vector<ImageFailure> failures;  // in row order
  size_t images_predicted = 0;
  double seconds = 0;  // wall time of the whole run, decoding and model together

  double images_per_second() const;
};

// Runs `predictor` on `images` (ids[i] names images[i] in failure messages). Decoding runs on its
// own thread pool, at most two decoded chunks ahead of the model, so memory stays bounded
// whatever the number of images. A failing image leaves its row unpredicted and is listed, unless
// `stop_at_first_failure`, which makes it an InputError naming the row, id, file and reason.
StreamedPredictions predict_images(const Predictor& predictor, const std::vector<std::string>& ids,
                                   const std::vector<std::filesystem::path>& images,
                                   const StreamOptions& options = {});

enum class PredictionColumns {
  Full,     // the fixed columns, then names, probabilities and the model's other heads
  Minimal,  // only the id, category1, category2 and one 0/1 column per tag
};

// The predictions table of `streamed` (see docs/predict.md): the task spec's id column, then
// category1/category2 (class indices of the first softmax head, in the model's class order) and
// one 0/1 column per tag of the first multi-label head (the model's tuned thresholds); then, with
// Full, the extras. Rows without a prediction hold NULL in every column but the id.
Table prediction_table(const Predictor& predictor, const std::vector<std::string>& ids,
                       const StreamedPredictions& streamed, PredictionColumns columns);

struct PredictOptions {
  std::filesystem::path input;       // table holding the task spec's id column (.parquet or .csv)
  std::filesystem::path images_dir;  // folder of the images, named by the task spec's pattern
  std::filesystem::path output;      // predictions file to write (.parquet or .csv)
  PredictionColumns columns = PredictionColumns::Full;  // which columns to write
  StreamOptions stream;                                 // batching, threads, failure handling
  Shard shard;  // predict only this slice of the rows, into part_path(output, shard)
};

struct PredictResult {
  std::filesystem::path output;         // the file written (the part file of a shard)
  size_t rows = 0;                      // rows predicted: the input's, or the shard's
  size_t first_row = 0;                 // 0-based input row of the first one (shards)
  std::vector<ImageFailure> failures;   // rows written with NULL predictions
  std::filesystem::path failures_file;  // where they are listed ("" when there are none)
  size_t images_predicted = 0;
  double seconds = 0;
  double images_per_second = 0;
};

// The failures as printable lines ("row 12 (uuid 'a1'): <reason>"), at most `max_lines` of them
// followed by a line counting the others.
std::string describe_failures(const std::vector<ImageFailure>& failures,
                              const std::string& id_column, size_t max_lines = 20);

// Every failure (row, id, image, reason) as a table.
Table failures_table(const std::vector<ImageFailure>& failures, const std::string& id_column);

// The file listing the failures of a run that writes `output`: `<stem>.failures.csv` beside it.
std::filesystem::path failures_path_for(const std::filesystem::path& output);

// Predicts every row of `options.input` (or the shard's slice of them) and writes
// `options.output` (or the shard's part file; failures name rows of the whole input). Bad input (no
// id column, no rows, a missing images folder, an unknown output extension) is an InputError before
// any work; with stream.stop_at_first_failure an image failure is an InputError and nothing is
// written. Otherwise failed rows are written with NULL predictions, listed in
// failures_path_for(output) and returned. The outputs are committed together
// (write_all_atomically): when one cannot be written (a full disk), neither is; a list left by an
// earlier run with failures is removed.
PredictResult predict_file(const Predictor& predictor, const PredictOptions& options);

}  // namespace garmentnet
