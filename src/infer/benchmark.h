// `garmentnet bench`: how fast a model file runs on this machine, stage by stage: image decoding,
// the model's forward pass under each inference optimisation (so every gain shows), latency,
// end-to-end prediction, memory, size and FLOPs against the CPU's measured convolution peak.
// docs/benchmarks.md explains the figures and holds the table for the built-in models.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace garmentnet {

struct BenchmarkOptions {
  std::filesystem::path model;       // model file (.gnm) to measure
  std::filesystem::path images_dir;  // JPEG/PNG/WebP files to decode; empty = synthetic JPEGs
  int synthetic_images = 128;        // how many synthetic JPEGs to write when images_dir is empty
  int synthetic_width = 217;         // their size: the original garment photos' (301 high)
  int synthetic_height = 301;
  std::vector<int> batch_sizes{1, 8, 32, 64};  // forward-pass batch sizes
  int end_to_end_batch = 64;  // batch size of the end-to-end (decode + model) measurement
  double seconds = 1.0;       // minimum time spent on each measurement
  int min_iterations = 3;     // minimum timed repetitions of each measurement
  int latency_runs = 100;     // minimum timed batch-1 passes for the p50/p99 latency
  bool all_variants = true;   // every optimisation step; false = eager and optimised only
  int threads = 0;            // threads for decoding and the model, 0 = all cores
};

// One forward-pass measurement.
struct ForwardMeasurement {
  std::string variant;  // e.g. "eager", "optimized" (see docs/benchmarks.md)
  int threads = 0;
  int batch_size = 0;
  double images_per_second = 0;
  double fraction_of_peak = 0;  // achieved FLOP/s over peak_gflops (0: FLOPs not counted)
};

struct LatencyMeasurement {
  std::string variant;
  double p50_ms = 0;  // median time of one batch-1 forward pass
  double p99_ms = 0;
  int runs = 0;
};

// The forward-pass variant of an int8 model: its fused int8 operators, as the Predictor runs them.
inline constexpr const char* kInt8Variant = "int8 (oneDNN, fused)";

struct BenchmarkResult {
  std::string model;            // model file path
  std::string precision;        // "fp32" or "int8"
  std::string fastest_variant;  // the variant predict and serve run (optimised graph, or int8)
  std::string architecture;     // backbone name, e.g. "small_cnn"
  int input_width = 0;
  int input_height = 0;
  int threads = 0;
  std::string cpu;              // CPU model name from /proc/cpuinfo
  std::string omp_wait_policy;  // the OMP_WAIT_POLICY environment variable ("" = unset)
  int64_t model_file_bytes = 0;
  int64_t parameters = 0;
  int64_t macs_per_image = 0;  // multiply-accumulates per image (counted from the traced graph)
  double flops_per_image = 0;  // 2 × macs_per_image
  // Measured float32 throughput of oneDNN's convolutions (the engine the models' convolutions
  // run on: a matrix product would measure OpenBLAS), `threads` threads.
  double peak_gflops = 0;
  std::string images_source;            // the images folder or "synthetic W×H JPEGs"
  int decode_files = 0;                 // images decoded per pass
  double decode_images_per_second = 0;  // read + decode + resize + normalise, `threads` threads
  // One thread, from memory: the JPEG decoded at full size vs reduced (1/2, 1/4, 1/8) to no less
  // than the input size, then resized. Equal when the source is not much larger than the input.
  double decode_full_size_images_per_second_1_thread = 0;
  double decode_reduced_images_per_second_1_thread = 0;
  // The same reduced decoding, then shrunk with area averaging at every size (ShrinkFilter::Area)
  // instead of the model's own filter (equal for models that use Area).
  double decode_reduced_area_images_per_second_1_thread = 0;
  std::vector<ForwardMeasurement> forward;
  std::vector<LatencyMeasurement> latency;  // batch 1
  bool predictor_optimized = false;  // whether the Predictor (predict/serve) runs the fast graph
  int end_to_end_batch = 0;
  double end_to_end_images_per_second = 0;  // decode overlapped with the Predictor, as `predict`
  double predictor_forward_images_per_second = 0;  // Predictor on decoded images, same batch
  double end_to_end_ratio = 0;  // end-to-end over the optimised forward pass at the same batch
  int64_t peak_rss_bytes = 0;   // peak resident memory of the process (getrusage)

  nlohmann::json to_json() const;
};

// Runs every measurement. InputError for a model file that cannot be loaded or an images folder
// without images.
BenchmarkResult run_benchmark(const BenchmarkOptions& options);

// The model and machine the figures belong to, as a few lines of text.
std::string benchmark_description(const BenchmarkResult& result);

// A table of figures: a header row and rows of cells.
struct BenchmarkTable {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
};

// The figures as tables (forward pass per variant and batch size; the other measurements), shared
// by the terminal text and the HTML reports that show them.
std::vector<BenchmarkTable> benchmark_tables(const BenchmarkResult& result);

// Two models measured in one run side by side (e.g. int8 and its fp32 source): the fastest forward
// pass at each batch size, batch-1 latency, end-to-end predict, file size, memory; the ratio is
// a's advantage over b (speed a/b, time and size b/a). Peak memory is the process's so far, so the
// second model's includes the first's.
BenchmarkTable benchmark_comparison(const BenchmarkResult& a, const BenchmarkResult& b);

// The description and the tables as aligned text for the terminal.
std::string format_benchmark(const BenchmarkResult& result);

}  // namespace garmentnet
