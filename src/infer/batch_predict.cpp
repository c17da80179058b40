#include "infer/batch_predict.h"

#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "data/dataset.h"
#include "data/image_loader.h"
#include "eval/metrics.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

// One chunk of consecutive rows, decoded and resized (or the decoder's unexpected error).
struct DecodedChunk {
  size_t begin = 0;
  LoadedImages loaded;
  std::exception_ptr error;
};

// A bounded hand-over from the decoding thread to the model thread. The decoder blocks when
// `capacity` chunks wait, which bounds memory; the model thread closes it to stop the decoder
// early.
class ChunkQueue {
 public:
  explicit ChunkQueue(size_t capacity) : capacity_(capacity) {}

  // Waits for room; false when the queue was closed (the chunk is dropped).
  bool push(DecodedChunk chunk) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return closed_ || chunks_.size() < capacity_; });
    if (closed_) return false;
    chunks_.push_back(std::move(chunk));
    changed_.notify_all();
    return true;
  }

  // The next chunk; nullopt once the producer has finished and everything was taken.
  std::optional<DecodedChunk> pop() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return finished_ || closed_ || !chunks_.empty(); });
    if (chunks_.empty()) return std::nullopt;
    DecodedChunk chunk = std::move(chunks_.front());
    chunks_.pop_front();
    changed_.notify_all();
    return chunk;
  }

  void finish() {
    std::lock_guard lock(mutex_);
    finished_ = true;
    changed_.notify_all();
  }

  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    chunks_.clear();
    changed_.notify_all();
  }

  bool closed() {
    std::lock_guard lock(mutex_);
    return closed_;
  }

 private:
  size_t capacity_;
  std::deque<DecodedChunk> chunks_;
  bool finished_ = false;
  bool closed_ = false;
  std::mutex mutex_;
  std::condition_variable changed_;
};

// Decodes chunks of `images` on `pool` from its own thread. Destroying it (also when the model
// thread throws) closes the queue and joins the thread, so no decode outlives the call.
class ChunkDecoder {
 public:
  ChunkDecoder(const std::vector<fs::path>& images, size_t chunk_size, const Preprocessing& pre,
               const ImageLimits& limits, ThreadPool& pool)
      : queue_(2), thread_([this, &images, chunk_size, pre, limits, &pool] {
          for (size_t begin = 0; begin < images.size() && !queue_.closed(); begin += chunk_size) {
            DecodedChunk chunk{.begin = begin};
            try {
              const size_t end = std::min(images.size(), begin + chunk_size);
              const std::vector<fs::path> paths(images.begin() + long(begin),
                                                images.begin() + long(end));
              chunk.loaded = load_resized_images(paths, pre, limits, pool);
            } catch (...) {
              chunk.error = std::current_exception();
            }
            if (!queue_.push(std::move(chunk))) break;
          }
          queue_.finish();
        }) {}

  ~ChunkDecoder() {
    queue_.close();
    thread_.join();
  }
  ChunkDecoder(const ChunkDecoder&) = delete;
  ChunkDecoder& operator=(const ChunkDecoder&) = delete;

  std::optional<DecodedChunk> next() { return queue_.pop(); }

 private:
  ChunkQueue queue_;  // declared before the thread, which uses it
  std::thread thread_;
};

// Copies a batch's probabilities to their rows of the whole run.
void scatter(const HeadProbabilities& batch, const std::vector<size_t>& rows,
             HeadProbabilities& all, const TaskSpec& spec) {
  for (const auto& head : spec.heads) {
    const size_t outputs = head.num_outputs();
    const std::vector<float>& source = batch.at(head.name);
    std::vector<float>& target = all.at(head.name);
    for (size_t i = 0; i < rows.size(); ++i) {
      std::copy_n(source.begin() + long(i * outputs), outputs,
                  target.begin() + long(rows[i] * outputs));
    }
  }
}

Value int_or_null(bool present, int64_t value) { return present ? Value{value} : Value{}; }
Value double_or_null(bool present, double value) { return present ? Value{value} : Value{}; }
Value string_or_null(bool present, const std::string& value) {
  return present ? Value{value} : Value{};
}

// The columns of a softmax head's two most likely classes: their indices, and the details (their
// names and probabilities, `<name>_name` and `<name>_probability`) that only full output writes.
struct SoftmaxColumns {
  std::vector<Column> indices;  // [first, second]
  std::vector<Column> details;  // [first name, second name, first probability, second probability]
};

SoftmaxColumns softmax_columns(const HeadSpec& head, const std::vector<float>& probabilities,
                               const std::vector<bool>& predicted, const std::string& first,
                               const std::string& second) {
  const size_t classes = head.num_outputs();
  const auto top2 = top2_classes(probabilities, classes);
  SoftmaxColumns out;
  out.indices = {{first, ColumnType::Int64, {}}, {second, ColumnType::Int64, {}}};
  out.details = {{first + "_name", ColumnType::String, {}},
                 {second + "_name", ColumnType::String, {}},
                 {first + "_probability", ColumnType::Double, {}},
                 {second + "_probability", ColumnType::Double, {}}};
  for (size_t row = 0; row < predicted.size(); ++row) {
    for (size_t k = 0; k < 2; ++k) {
      const int64_t index = top2[row][k];
      const bool present = predicted[row] && index >= 0;  // a one-class head has no second class
      const size_t at = present ? size_t(index) : 0;
      out.indices[k].values.push_back(int_or_null(present, index));
      out.details[k].values.push_back(string_or_null(present, present ? head.classes[at] : ""));
      out.details[2 + k].values.push_back(
          double_or_null(present, present ? double(probabilities[row * classes + at]) : 0.0));
    }
  }
  return out;
}

// The 0/1 decision and probability columns of a multi-label head, one pair per tag, named
// `prefix + tag` and `prefix + tag + "_probability"`.
struct TagColumns {
  std::vector<Column> decisions;
  std::vector<Column> probabilities;
};

TagColumns tag_columns(const HeadSpec& head, const std::vector<float>& probabilities,
                       const std::vector<double>& thresholds, const std::vector<bool>& predicted,
                       const std::string& prefix) {
  const size_t tags = head.num_outputs();
  const std::vector<int64_t> decisions = decide_tags(probabilities, thresholds);
  TagColumns out;
  for (size_t t = 0; t < tags; ++t) {
    Column decision{prefix + head.classes[t], ColumnType::Int64, {}};
    Column probability{prefix + head.classes[t] + "_probability", ColumnType::Double, {}};
    for (size_t row = 0; row < predicted.size(); ++row) {
      decision.values.push_back(int_or_null(predicted[row], decisions[row * tags + t]));
      probability.values.push_back(double_or_null(predicted[row], probabilities[row * tags + t]));
    }
    out.decisions.push_back(std::move(decision));
    out.probabilities.push_back(std::move(probability));
  }
  return out;
}

// Adds a column, turning a name clash (a tag called like another column) into a clear error.
void add_output_column(Table& table, Column column) {
  if (table.find(column.name) != nullptr) {
    fail(
        "the model's task spec makes two prediction columns named '{}'; rename a class, tag or "
        "head in the task spec",
        column.name);
  }
  table.add_column(std::move(column));
}

bool is_table_extension(const fs::path& path) {
  const std::string extension = path.extension().string();
  return extension == ".parquet" || extension == ".csv";
}

}  // namespace

double StreamedPredictions::images_per_second() const {
  return seconds > 0 ? double(images_predicted) / seconds : 0.0;
}

StreamedPredictions predict_images(const Predictor& predictor, const std::vector<std::string>& ids,
                                   const std::vector<fs::path>& images,
                                   const StreamOptions& options) {
  if (ids.size() != images.size()) fail_internal("{} ids for {} images", ids.size(), images.size());
  if (options.batch_size < 1) fail("--batch-size must be at least 1 (got {})", options.batch_size);
  const auto start = std::chrono::steady_clock::now();
  const TaskSpec& spec = predictor.spec();
  const size_t rows = images.size();
  StreamedPredictions out;
  for (const auto& head : spec.heads) {
    out.probabilities[head.name].assign(rows * head.num_outputs(),
                                        std::numeric_limits<float>::quiet_NaN());
  }
  out.predicted.assign(rows, false);

  std::unique_ptr<Progress> progress;
  if (options.progress) progress = std::make_unique<Progress>("predicting", int64_t(rows), "img");
  ThreadPool decode_pool(options.decode_threads > 0 ? options.decode_threads
                                                    : default_thread_count());
  const size_t chunk_size = size_t(options.batch_size);
  {
    ChunkDecoder decoder(images, chunk_size, predictor.preprocessing(), options.limits,
                         decode_pool);
    while (std::optional<DecodedChunk> chunk = decoder.next()) {
      if (chunk->error) std::rethrow_exception(chunk->error);
      LoadedImages& loaded = chunk->loaded;
      for (size_t k = 0; k < loaded.failed.size(); ++k) {
        const size_t row = chunk->begin + loaded.failed[k];
        if (options.stop_at_first_failure) {
          fail(
              "row {} ({} '{}'): {} (stopped at the first failure as asked by --strict; nothing "
              "was written)",
              options.first_row + row + 1, spec.id_column, ids[row], loaded.errors[k]);
        }
        out.failures.push_back({options.first_row + row, ids[row], images[row], loaded.errors[k]});
      }
      std::vector<cv::Mat> batch;
      std::vector<size_t> batch_rows;
      for (size_t i = 0; i < loaded.images.size(); ++i) {
        if (loaded.images[i].empty()) continue;
        batch.push_back(std::move(loaded.images[i]));
        batch_rows.push_back(chunk->begin + i);
      }
      if (!batch.empty()) scatter(predictor.predict(batch), batch_rows, out.probabilities, spec);
      for (size_t row : batch_rows) out.predicted[row] = true;
      out.images_predicted += batch_rows.size();
      if (progress) progress->advance(int64_t(loaded.images.size()));
    }
  }
  if (progress) progress->finish();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

Table prediction_table(const Predictor& predictor, const std::vector<std::string>& ids,
                       const StreamedPredictions& streamed, PredictionColumns columns) {
  const TaskSpec& spec = predictor.spec();
  const bool full = columns == PredictionColumns::Full;
  Table table;
  Column id{spec.id_column, ColumnType::String, {}};
  id.values.assign(ids.begin(), ids.end());
  table.add_column(std::move(id));

  const HeadSpec* category = spec.category_head();
  const HeadSpec* tags = spec.tag_head();
  std::vector<Column> extras;
  if (category != nullptr) {
    SoftmaxColumns c = softmax_columns(*category, streamed.probabilities.at(category->name),
                                       streamed.predicted, "category1", "category2");
    for (Column& column : c.indices) add_output_column(table, std::move(column));
    for (Column& column : c.details) extras.push_back(std::move(column));
  }
  if (tags != nullptr) {
    TagColumns t = tag_columns(*tags, streamed.probabilities.at(tags->name),
                               predictor.thresholds(tags->name), streamed.predicted, "");
    for (Column& column : t.decisions) add_output_column(table, std::move(column));
    for (Column& column : t.probabilities) extras.push_back(std::move(column));
  }
  if (!full) return table;

  for (const auto& head : spec.heads) {
    if (&head == category || &head == tags) continue;
    const std::vector<float>& probabilities = streamed.probabilities.at(head.name);
    if (head.kind == HeadKind::Softmax) {
      SoftmaxColumns c = softmax_columns(head, probabilities, streamed.predicted, head.name + "_1",
                                         head.name + "_2");
      for (Column& column : c.indices) extras.push_back(std::move(column));
      for (Column& column : c.details) extras.push_back(std::move(column));
    } else {
      TagColumns t = tag_columns(head, probabilities, predictor.thresholds(head.name),
                                 streamed.predicted, head.name + "_");
      for (size_t k = 0; k < t.decisions.size(); ++k) {
        extras.push_back(std::move(t.decisions[k]));
        extras.push_back(std::move(t.probabilities[k]));
      }
    }
  }
  for (Column& column : extras) add_output_column(table, std::move(column));
  return table;
}

std::string describe_failures(const std::vector<ImageFailure>& failures,
                              const std::string& id_column, size_t max_lines) {
  std::string text;
  for (size_t i = 0; i < failures.size() && i < max_lines; ++i) {
    const ImageFailure& f = failures[i];
    text += fmt::format("  row {} ({} '{}'): {}\n", f.row + 1, id_column, f.id, f.reason);
  }
  if (failures.size() > max_lines)
    text += fmt::format("  … and {} more\n", failures.size() - max_lines);
  return text;
}

Table failures_table(const std::vector<ImageFailure>& failures, const std::string& id_column) {
  Column row{"row", ColumnType::Int64, {}};
  Column id{id_column, ColumnType::String, {}};
  Column image{"image", ColumnType::String, {}};
  Column reason{"reason", ColumnType::String, {}};
  for (const ImageFailure& f : failures) {
    row.values.emplace_back(int64_t(f.row + 1));
    id.values.emplace_back(f.id);
    image.values.emplace_back(f.image.string());
    reason.values.emplace_back(f.reason);
  }
  Table table;
  for (Column* column : {&row, &id, &image, &reason}) table.add_column(std::move(*column));
  return table;
}

fs::path failures_path_for(const fs::path& output) {
  return output.parent_path() / (output.stem().string() + ".failures.csv");
}

PredictResult predict_file(const Predictor& predictor, const PredictOptions& options) {
  if (!is_table_extension(options.output)) {
    fail("output {} must end in .parquet or .csv", options.output.string());
  }
  std::error_code error;
  if (!fs::is_directory(options.images_dir, error)) {
    fail("images folder {} does not exist; pass the folder holding the images with --images",
         options.images_dir.string());
  }
  const TaskSpec& spec = predictor.spec();
  std::vector<std::string> ids = read_ids(options.input, spec);
  if (ids.empty()) fail("{} has no rows: nothing to predict", options.input.string());
  const auto [first_row, end_row] =
      shard_rows(options.shard, ids.size(), size_t(std::max(1, options.stream.batch_size)));
  ids = std::vector<std::string>(ids.begin() + long(first_row), ids.begin() + long(end_row));
  const fs::path output =
      options.shard.whole() ? options.output : part_path(options.output, options.shard);

  std::vector<fs::path> images;
  images.reserve(ids.size());
  for (const auto& id : ids) images.push_back(spec.image_path(options.images_dir, id));
  StreamOptions stream = options.stream;
  stream.first_row = first_row;
  const StreamedPredictions streamed = predict_images(predictor, ids, images, stream);
  const Table predictions = prediction_table(predictor, ids, streamed, options.columns);
  const fs::path failures_file = failures_path_for(output);
  const Table failures = failures_table(streamed.failures, spec.id_column);
  if (streamed.failures.empty()) {
    write_table(predictions, output);
    std::error_code ignored;
    fs::remove(failures_file, ignored);
  } else {
    const auto table_to = [](const Table& table) {
      return [&table](const fs::path& temp) { write_table(table, temp); };
    };
    write_all_atomically({{.target = output, .write = table_to(predictions)},
                          {.target = failures_file, .write = table_to(failures)}});
  }
  return {.output = output,
          .rows = ids.size(),
          .first_row = first_row,
          .failures = streamed.failures,
          .failures_file = streamed.failures.empty() ? fs::path() : failures_file,
          .images_predicted = streamed.images_predicted,
          .seconds = streamed.seconds,
          .images_per_second = streamed.images_per_second()};
}

}  // namespace garmentnet
