#include "infer/benchmark.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/text_table.h"
#include "core/thread_pool.h"
#include "data/image_loader.h"
#include "infer/batch_predict.h"
#include "infer/predictor.h"
#include "infer/torchscript_export.h"
#include "model/input.h"
#include "model/model_file.h"
#include "model/quantized_backbone.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Repeats `run` (after one untimed warm-up) until both `seconds` and `min_iterations` are
// reached; returns the median seconds per repetition (robust to the pauses of a shared machine).
double time_per_run(const std::function<void()>& run, double seconds, int min_iterations) {
  run();
  std::vector<double> durations;
  const Clock::time_point start = Clock::now();
  do {
    const Clock::time_point before = Clock::now();
    run();
    durations.push_back(seconds_since(before));
  } while (static_cast<int>(durations.size()) < min_iterations || seconds_since(start) < seconds);
  std::nth_element(durations.begin(), durations.begin() + durations.size() / 2, durations.end());
  return durations[durations.size() / 2];
}

// A folder of synthetic photos that disappears with this object.
class SyntheticImages {
 public:
  SyntheticImages(int count, int width, int height) {
    std::random_device device;
    folder_ =
        fs::temp_directory_path() / fmt::format("garmentnet-bench-{}-{:08x}", ::getpid(), device());
    fs::create_directories(folder_);
    cv::RNG rng(12345);
    for (int i = 0; i < count; ++i) {
      // Photo-like content, so the decoder does realistic work: a smooth background, a few
      // filled shapes (the garment, its pattern) and sensor noise.
      cv::Mat image(height, width, CV_8UC3);
      const cv::Scalar top(rng.uniform(150, 255), rng.uniform(150, 255), rng.uniform(150, 255));
      for (int y = 0; y < height; ++y)
        image.row(y).setTo(top * (0.7 + 0.3 * y / std::max(1, height - 1)));
      for (int shape = 0; shape < 12; ++shape) {
        const cv::Point center(rng.uniform(0, width), rng.uniform(0, height));
        const cv::Scalar colour(rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255));
        cv::circle(image, center, rng.uniform(4, std::max(5, width / 4)), colour, cv::FILLED,
                   cv::LINE_AA);
      }
      cv::Mat noise(height, width, CV_8UC3);
      rng.fill(noise, cv::RNG::NORMAL, 0, 6);
      image += noise;
      const fs::path path = folder_ / fmt::format("synthetic{:04d}.jpeg", i);
      if (!cv::imwrite(path.string(), image, {cv::IMWRITE_JPEG_QUALITY, 90}))
        fail("cannot write the synthetic image {}", path.string());
      paths_.push_back(path);
    }
  }
  ~SyntheticImages() {
    std::error_code ignored;
    fs::remove_all(folder_, ignored);
  }
  SyntheticImages(const SyntheticImages&) = delete;
  SyntheticImages& operator=(const SyntheticImages&) = delete;

  const std::vector<fs::path>& paths() const { return paths_; }

 private:
  fs::path folder_;
  std::vector<fs::path> paths_;
};

std::vector<fs::path> image_files(const fs::path& folder, int max_files) {
  if (!fs::is_directory(folder))
    fail("images folder {} does not exist or is not a folder", folder.string());
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(folder)) {
    std::string extension = entry.path().extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(), ::tolower);
    if (entry.is_regular_file() && (extension == ".jpeg" || extension == ".jpg" ||
                                    extension == ".png" || extension == ".webp"))
      paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  if (paths.empty())
    fail("images folder {} holds no .jpeg/.jpg/.png/.webp files to benchmark decoding with",
         folder.string());
  if (max_files > 0 && paths.size() > static_cast<size_t>(max_files)) paths.resize(max_files);
  return paths;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

// Float32 GFLOP/s of oneDNN's convolutions, the engine the models' convolutions run on: a 3x3
// convolution of 256 channels at 14x14, batch 32, channels-last, at the current thread count; the
// best of several runs, since a peak is what the CPU can do when nothing else gets in the way.
// (A matrix product would measure OpenBLAS, which may run older kernels than oneDNN.)
double measure_convolution_gflops(double seconds) {
  torch::InferenceMode guard;
  constexpr int64_t kBatch = 32, kChannels = 256, kSide = 14;
  const torch::Tensor input =
      torch::randn({kBatch, kChannels, kSide, kSide}).contiguous(torch::MemoryFormat::ChannelsLast);
  const torch::Tensor weight =
      torch::randn({kChannels, kChannels, 3, 3}).contiguous(torch::MemoryFormat::ChannelsLast);
  (void)at::conv2d(input, weight, {}, 1, 1);
  double best = std::numeric_limits<double>::infinity();
  const Clock::time_point start = Clock::now();
  for (int run = 0; run < 3 || seconds_since(start) < seconds; ++run) {
    const Clock::time_point before = Clock::now();
    (void)at::conv2d(input, weight, {}, 1, 1);
    best = std::min(best, seconds_since(before));
  }
  const double flops = 2.0 * kBatch * kChannels * kChannels * 9 * kSide * kSide;
  return flops / best / 1e9;
}

// LibTorch's intra-op threads set for this object's life, the previous count restored after.
class ThreadCountScope {
 public:
  explicit ThreadCountScope(int threads) : previous_(at::get_num_threads()) {
    at::set_num_threads(threads);
  }
  ~ThreadCountScope() { at::set_num_threads(previous_); }
  ThreadCountScope(const ThreadCountScope&) = delete;
  ThreadCountScope& operator=(const ThreadCountScope&) = delete;

 private:
  int previous_;
};

// A module's 4-D weights in channels-last memory (NHWC, which some CPU convolution kernels prefer)
// for this object's life, contiguous again after, however the measurement ends.
class ChannelsLastScope {
 public:
  explicit ChannelsLastScope(torch::nn::Module& module) : module_(module) {
    convert(torch::MemoryFormat::ChannelsLast);
  }
  ~ChannelsLastScope() { convert(torch::MemoryFormat::Contiguous); }
  ChannelsLastScope(const ChannelsLastScope&) = delete;
  ChannelsLastScope& operator=(const ChannelsLastScope&) = delete;

 private:
  void convert(torch::MemoryFormat format) {
    torch::NoGradGuard no_grad;
    for (auto& parameter : module_.parameters())
      if (parameter.dim() == 4) parameter.set_data(parameter.contiguous(format));
  }
  torch::nn::Module& module_;
};

// Percentile (nearest rank) of durations in seconds, as milliseconds.
double percentile_ms(std::vector<double> seconds, double fraction) {
  std::sort(seconds.begin(), seconds.end());
  const size_t rank = static_cast<size_t>(std::ceil(fraction * seconds.size()));
  return 1000.0 * seconds[std::clamp<size_t>(rank, 1, seconds.size()) - 1];
}

using Forward = std::function<void(const torch::Tensor&)>;

LatencyMeasurement measure_latency(const std::string& variant, const Forward& forward,
                                   const torch::Tensor& one_image, double seconds,
                                   size_t min_runs) {
  forward(one_image);
  std::vector<double> durations;
  const Clock::time_point start = Clock::now();
  // Enough runs for the 99th percentile to mean something; at most 5000 to bound the time.
  while (durations.size() < 5000 &&
         (durations.size() < min_runs || seconds_since(start) < seconds)) {
    const Clock::time_point before = Clock::now();
    forward(one_image);
    durations.push_back(seconds_since(before));
  }
  return {.variant = variant,
          .p50_ms = percentile_ms(durations, 0.50),
          .p99_ms = percentile_ms(durations, 0.99),
          .runs = static_cast<int>(durations.size())};
}

// Images per second of `predict`'s own streaming path (predict_images: decoding on a pool,
// overlapped with the Predictor) over `paths`.
double end_to_end_rate(const Predictor& predictor, const std::vector<fs::path>& paths, int batch,
                       int threads) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < paths.size(); ++i) ids.push_back(std::to_string(i));
  const StreamedPredictions streamed = predict_images(
      predictor, ids, paths, {.batch_size = batch, .decode_threads = threads, .progress = false});
  return static_cast<double>(streamed.images_predicted) / streamed.seconds;
}

std::string format_rate(double value) {
  return value >= 100 ? fmt::format("{:.0f}", value) : fmt::format("{:.1f}", value);
}

// ---- The stages of a benchmark, each with its typed figures

struct DecodeFigures {
  std::string source;              // the images folder or "synthetic W×H JPEGs"
  std::vector<fs::path> readable;  // the images that decode, used by the later stages
  double images_per_second = 0;    // `threads` threads, read + decode + resize + normalise
  double full_size_1_thread = 0;   // see BenchmarkResult
  double reduced_1_thread = 0;
  double reduced_area_1_thread = 0;
};

struct ForwardFigures {
  std::vector<ForwardMeasurement> measurements;
  int64_t macs_per_image = 0;  // 0 for an int8 model (not traced)
};

struct EndToEndFigures {
  double images_per_second = 0;
  double predictor_forward_images_per_second = 0;
  double ratio = 0;  // over the fastest forward pass at the same batch
};

// One forward-pass variant: the model under one optimisation.
struct Variant {
  // What it needs before it runs: the traced graphs, or its weights in channels-last.
  enum class Needs { Nothing, TracedGraphs, ChannelsLast };
  std::string name;  // for people: tables and JSON
  int threads;
  Forward forward;
  bool always;  // measured even without all_variants
  Needs needs = Needs::Nothing;
};

// A model file loaded for measuring, as the Predictor (predict, serve) and as the model itself.
class BenchmarkRun {
 public:
  BenchmarkRun(const BenchmarkOptions& options, int threads)
      : options_(options),
        threads_(threads),
        predictor_(options.model),
        bundle_(load_model_file(options.model)),
        pool_(threads) {
    bundle_.model->eval();
    int8_ = is_quantized(bundle_.model->backbone());
    const Preprocessing& pre = bundle_.preprocessing;
    auto generator = at::detail::createCPUGenerator(/*seed_val=*/3);
    const int largest_batch =
        std::max(options.end_to_end_batch,
                 *std::max_element(options.batch_sizes.begin(), options.batch_sizes.end()));
    images_ = at::randn({largest_batch, 3, pre.height, pre.width}, generator, torch::kFloat);
  }

  // The model and the machine: everything but measurements.
  BenchmarkResult description() const {
    BenchmarkResult result;
    result.model = options_.model.string();
    result.threads = threads_;
    result.cpu = cpu_name();
    if (const char* policy = std::getenv("OMP_WAIT_POLICY")) result.omp_wait_policy = policy;
    // An int8 backbone names the architecture it was quantized from.
    const nlohmann::json backbone = bundle_.model->architecture()["backbone"];
    result.architecture =
        backbone.value("architecture", backbone.value("quantized_from", nlohmann::json::object())
                                           .value("architecture", std::string("torchscript")));
    result.input_width = bundle_.preprocessing.width;
    result.input_height = bundle_.preprocessing.height;
    result.model_file_bytes = static_cast<int64_t>(fs::file_size(options_.model));
    for (const auto& parameter : bundle_.model->parameters())
      result.parameters += parameter.numel();
    result.predictor_optimized = predictor_.optimized();
    result.precision = int8_ ? "int8" : "fp32";
    return result;
  }

  DecodeFigures measure_decoding();
  ForwardFigures measure_forward_passes();
  std::vector<LatencyMeasurement> measure_latencies() const;
  EndToEndFigures measure_end_to_end(const std::vector<fs::path>& paths) const;

 private:
  std::vector<Variant> variants();
  // The forward pass predict and serve run: the optimised graph, or the int8 model.
  Forward fastest() const { return int8_ ? eager() : run_graph(optimized_); }
  Forward eager() const {
    return [model = bundle_.model](const torch::Tensor& x) mutable {
      torch::InferenceMode guard;
      (void)head_probabilities(model->spec(), model->forward(x));
    };
  }
  Forward run_graph(torch::jit::Module& module) const {
    return [this, &module](const torch::Tensor& x) {
      torch::InferenceMode guard;
      (void)run_traced_model(module, bundle_.model->spec(), x);
    };
  }
  // Traces the fp32 model and optimises the graph, once (an int8 model runs its fused int8
  // operators: there is nothing to trace).
  void trace();
  static constexpr int64_t kTraceBatch = 2;

  const BenchmarkOptions& options_;
  const int threads_;
  const Predictor predictor_;
  ModelBundle bundle_;
  bool int8_ = false;
  mutable ThreadPool pool_;
  std::unique_ptr<SyntheticImages> synthetic_;  // the images decoded, unless a folder was given
  torch::Tensor images_;                        // random inputs for the forward passes
  mutable torch::jit::Module traced_, frozen_, optimized_;  // by trace()
  bool traced_yet_ = false;
};

DecodeFigures BenchmarkRun::measure_decoding() {
  const Preprocessing& pre = bundle_.preprocessing;
  DecodeFigures figures;
  std::vector<fs::path> paths;
  if (options_.images_dir.empty()) {
    synthetic_ = std::make_unique<SyntheticImages>(
        options_.synthetic_images, options_.synthetic_width, options_.synthetic_height);
    paths = synthetic_->paths();
    figures.source =
        fmt::format("synthetic {}x{} JPEGs", options_.synthetic_width, options_.synthetic_height);
  } else {
    paths = image_files(options_.images_dir, options_.synthetic_images);
    figures.source = options_.images_dir.string();
  }
  const ImageLimits limits;
  spdlog::info("decoding {} images from {}", paths.size(), figures.source);
  const LoadedImages first = load_resized_images(paths, pre, limits, pool_);
  if (first.failed.size() == paths.size())
    fail("none of the images could be decoded; first error: {}", first.errors.front());
  for (size_t i = 0, f = 0; i < paths.size(); ++i) {
    if (f < first.failed.size() && first.failed[f] == i)
      spdlog::warn("skipping an image that does not decode: {}", first.errors[f++]);
    else
      figures.readable.push_back(paths[i]);
  }
  const double pass = time_per_run(
      [&] {
        (void)make_input_batch(load_resized_images(figures.readable, pre, limits, pool_).images,
                               pre);
      },
      options_.seconds, 1);
  figures.images_per_second = static_cast<double>(figures.readable.size()) / pass;

  std::vector<std::string> bytes;
  for (const auto& path : figures.readable) bytes.push_back(read_file(path));
  const auto one_thread_rate = [&](int target_side, const Preprocessing& resize) {
    const auto decode_all = [&] {
      for (const auto& file : bytes)
        (void)resize_for_model(decode_image(file, "benchmark image", limits, target_side), resize);
    };
    return static_cast<double>(bytes.size()) / time_per_run(decode_all, options_.seconds, 1);
  };
  const int target_side = std::min(pre.width, pre.height);
  Preprocessing area = pre;
  area.shrink = ShrinkFilter::Area;
  figures.full_size_1_thread = one_thread_rate(0, pre);
  figures.reduced_1_thread = one_thread_rate(target_side, pre);
  figures.reduced_area_1_thread = one_thread_rate(target_side, area);
  return figures;
}

void BenchmarkRun::trace() {
  if (traced_yet_) return;
  spdlog::info("tracing and optimising the model");
  traced_ = trace_model(bundle_.model, bundle_.preprocessing, kTraceBatch);
  frozen_ = optimize_traced_model(traced_, {.freeze = true, .optimize_for_inference = false});
  optimized_ = optimize_traced_model(traced_, {});
  traced_yet_ = true;
}

std::vector<Variant> BenchmarkRun::variants() {
  if (int8_)
    return {{"int8, 1 thread", 1, eager(), false},
            {std::string(kInt8Variant), threads_, eager(), true}};
  const Forward eager_autograd = [this](const torch::Tensor& x) {
    (void)bundle_.model->forward(x);
  };
  const Forward eager_channels_last = [this](const torch::Tensor& x) {
    eager()(x.contiguous(torch::MemoryFormat::ChannelsLast));
  };
  using Needs = Variant::Needs;
  return {
      {"eager, autograd, 1 thread (LibTorch defaults)", 1, eager_autograd, false},
      {"eager, autograd", threads_, eager_autograd, false},
      {"eager (inference mode)", threads_, eager(), true},
      {"eager, channels-last", threads_, eager_channels_last, false, Needs::ChannelsLast},
      {"traced TorchScript", threads_, run_graph(traced_), false, Needs::TracedGraphs},
      {"frozen (conv+BN folded)", threads_, run_graph(frozen_), false, Needs::TracedGraphs},
      {"optimized, 1 thread", 1, run_graph(optimized_), false, Needs::TracedGraphs},
      {"optimized (frozen + optimize_for_inference)", threads_, run_graph(optimized_), true,
       Needs::TracedGraphs},
  };
}

ForwardFigures BenchmarkRun::measure_forward_passes() {
  ForwardFigures figures;
  // Eager variants come before tracing, which turns off the parameters' gradients.
  for (const Variant& variant : variants()) {
    if (!variant.always && !options_.all_variants) continue;
    if (variant.needs == Variant::Needs::TracedGraphs) trace();
    std::optional<ChannelsLastScope> channels_last;
    if (variant.needs == Variant::Needs::ChannelsLast) channels_last.emplace(*bundle_.model);
    const ThreadCountScope threads(variant.threads);
    spdlog::info("forward pass: {}", variant.name);
    for (int batch : options_.batch_sizes) {
      const torch::Tensor input = images_.narrow(0, 0, batch).contiguous();
      const double per_run =
          time_per_run([&] { variant.forward(input); }, options_.seconds, options_.min_iterations);
      figures.measurements.push_back({.variant = variant.name,
                                      .threads = variant.threads,
                                      .batch_size = batch,
                                      .images_per_second = batch / per_run});
    }
  }
  if (!int8_) {
    trace();
    figures.macs_per_image = count_macs(traced_, kTraceBatch).macs_per_image;
  }
  return figures;
}

std::vector<LatencyMeasurement> BenchmarkRun::measure_latencies() const {
  const torch::Tensor one = images_.narrow(0, 0, 1).contiguous();
  std::vector<LatencyMeasurement> latencies;
  if (!int8_)
    latencies.push_back(measure_latency("eager (inference mode)", eager(), one, options_.seconds,
                                        options_.latency_runs));
  latencies.push_back(measure_latency(int8_ ? "int8" : "optimized", fastest(), one,
                                      options_.seconds, options_.latency_runs));
  return latencies;
}

EndToEndFigures BenchmarkRun::measure_end_to_end(const std::vector<fs::path>& paths) const {
  const int batch = options_.end_to_end_batch;
  std::vector<fs::path> stream;  // enough batches for the overlap to settle
  const size_t stream_size = std::max(paths.size(), static_cast<size_t>(batch) * 8);
  for (size_t i = 0; i < stream_size; ++i) stream.push_back(paths[i % paths.size()]);
  spdlog::info("end to end: {} images, batch {}", stream.size(), batch);
  const Forward forward = fastest();
  const double fastest_rate = batch / time_per_run([&] { forward(images_.narrow(0, 0, batch)); },
                                                   options_.seconds, options_.min_iterations);
  EndToEndFigures figures;
  const Clock::time_point start = Clock::now();
  do {  // best of several passes: the machine is shared and noisy
    figures.images_per_second =
        std::max(figures.images_per_second, end_to_end_rate(predictor_, stream, batch, threads_));
  } while (seconds_since(start) < options_.seconds);
  std::vector<cv::Mat> decoded =
      load_resized_images(std::vector<fs::path>(stream.begin(), stream.begin() + batch),
                          bundle_.preprocessing, ImageLimits{}, pool_)
          .images;
  std::erase_if(decoded, [](const cv::Mat& image) { return image.empty(); });
  figures.predictor_forward_images_per_second =
      static_cast<double>(decoded.size()) / time_per_run([&] { (void)predictor_.predict(decoded); },
                                                         options_.seconds, options_.min_iterations);
  figures.ratio = figures.images_per_second / fastest_rate;
  return figures;
}

}  // namespace

nlohmann::json BenchmarkResult::to_json() const {
  nlohmann::json forward_json = nlohmann::json::array();
  for (const auto& m : forward)
    forward_json.push_back({{"variant", m.variant},
                            {"threads", m.threads},
                            {"batch_size", m.batch_size},
                            {"images_per_second", m.images_per_second},
                            {"fraction_of_peak", m.fraction_of_peak}});
  nlohmann::json latency_json = nlohmann::json::array();
  for (const auto& m : latency)
    latency_json.push_back(
        {{"variant", m.variant}, {"p50_ms", m.p50_ms}, {"p99_ms", m.p99_ms}, {"runs", m.runs}});
  return {
      {"model", model},
      {"precision", precision},
      {"fastest_variant", fastest_variant},
      {"architecture", architecture},
      {"input_width", input_width},
      {"input_height", input_height},
      {"threads", threads},
      {"cpu", cpu},
      {"omp_wait_policy", omp_wait_policy},
      {"model_file_bytes", model_file_bytes},
      {"parameters", parameters},
      {"macs_per_image", macs_per_image},
      {"flops_per_image", flops_per_image},
      {"peak_gflops", peak_gflops},
      {"images_source", images_source},
      {"decode_files", decode_files},
      {"decode_images_per_second", decode_images_per_second},
      {"decode_full_size_images_per_second_1_thread", decode_full_size_images_per_second_1_thread},
      {"decode_reduced_images_per_second_1_thread", decode_reduced_images_per_second_1_thread},
      {"decode_reduced_area_images_per_second_1_thread",
       decode_reduced_area_images_per_second_1_thread},
      {"forward", forward_json},
      {"latency_batch_1", latency_json},
      {"predictor_optimized", predictor_optimized},
      {"end_to_end_batch", end_to_end_batch},
      {"end_to_end_images_per_second", end_to_end_images_per_second},
      {"predictor_forward_images_per_second", predictor_forward_images_per_second},
      {"end_to_end_ratio", end_to_end_ratio},
      {"end_to_end_target_reached", end_to_end_ratio >= 0.8},
      {"peak_rss_bytes", peak_rss_bytes}};
}

BenchmarkResult run_benchmark(const BenchmarkOptions& options) {
  if (options.batch_sizes.empty() ||
      std::any_of(options.batch_sizes.begin(), options.batch_sizes.end(),
                  [](int b) { return b < 1; }) ||
      options.end_to_end_batch < 1)
    fail("batch sizes must be at least 1");
  const int threads = options.threads > 0 ? options.threads : default_thread_count();
  const ThreadCountScope thread_count(threads);  // what it measures: bench runs at these threads
  // The Predictor first: it is what predict and serve run, and it validates the file.
  BenchmarkRun run(options, threads);
  BenchmarkResult result = run.description();

  spdlog::info("measuring the CPU's convolution peak ({} threads)", threads);
  result.peak_gflops = measure_convolution_gflops(options.seconds);

  const DecodeFigures decode = run.measure_decoding();
  result.images_source = decode.source;
  result.decode_files = static_cast<int>(decode.readable.size());
  result.decode_images_per_second = decode.images_per_second;
  result.decode_full_size_images_per_second_1_thread = decode.full_size_1_thread;
  result.decode_reduced_images_per_second_1_thread = decode.reduced_1_thread;
  result.decode_reduced_area_images_per_second_1_thread = decode.reduced_area_1_thread;

  const ForwardFigures forward = run.measure_forward_passes();
  result.forward = forward.measurements;
  result.fastest_variant = result.forward.back().variant;
  result.macs_per_image = forward.macs_per_image;
  result.flops_per_image = 2.0 * static_cast<double>(forward.macs_per_image);
  for (auto& m : result.forward)
    m.fraction_of_peak = result.flops_per_image * m.images_per_second / (result.peak_gflops * 1e9);

  result.latency = run.measure_latencies();

  const EndToEndFigures end_to_end = run.measure_end_to_end(decode.readable);
  result.end_to_end_batch = options.end_to_end_batch;
  result.end_to_end_images_per_second = end_to_end.images_per_second;
  result.predictor_forward_images_per_second = end_to_end.predictor_forward_images_per_second;
  result.end_to_end_ratio = end_to_end.ratio;
  result.peak_rss_bytes = peak_rss_bytes();
  return result;
}

std::string benchmark_description(const BenchmarkResult& r) {
  return fmt::format(
      "model {} ({}, {}x{} input, {} parameters, {:.2f} MB on disk)\n"
      "{} threads on {} (OMP_WAIT_POLICY {}); fp32 convolution peak (oneDNN) {:.1f} GFLOP/s\n{}",
      r.model, r.architecture, r.input_width, r.input_height, r.parameters,
      r.model_file_bytes / 1e6, r.threads, r.cpu,
      r.omp_wait_policy.empty() ? "unset" : r.omp_wait_policy, r.peak_gflops,
      r.macs_per_image > 0
          ? fmt::format("{:.1f} MFLOPs per image ({:.1f} M multiply-accumulates, counted from "
                        "the traced graph)\n",
                        r.flops_per_image / 1e6, r.macs_per_image / 1e6)
          : std::string("FLOPs not counted (an int8 model is not traced)\n"));
}

std::vector<BenchmarkTable> benchmark_tables(const BenchmarkResult& r) {
  std::vector<int> batches;
  std::vector<std::string> variant_order;
  for (const auto& m : r.forward) {
    if (std::find(batches.begin(), batches.end(), m.batch_size) == batches.end())
      batches.push_back(m.batch_size);
    if (std::find(variant_order.begin(), variant_order.end(), m.variant) == variant_order.end())
      variant_order.push_back(m.variant);
  }
  BenchmarkTable forward{{"forward pass, images/s"}, {}};
  for (int batch : batches) forward.headers.push_back(fmt::format("batch {}", batch));
  forward.headers.push_back("best % of peak");  // of the fp32 convolution peak
  for (const auto& variant : variant_order) {
    std::vector<std::string> row{variant};
    double best_fraction = 0;
    for (int batch : batches) {
      std::string cell;
      for (const auto& m : r.forward) {
        if (m.variant == variant && m.batch_size == batch) {
          cell = format_rate(m.images_per_second);
          best_fraction = std::max(best_fraction, m.fraction_of_peak);
        }
      }
      row.push_back(cell);
    }
    row.push_back(r.flops_per_image > 0 ? fmt::format("{:.1f}%", 100 * best_fraction) : "-");
    forward.rows.push_back(std::move(row));
  }

  BenchmarkTable other{
      {"measurement", "value", "conditions"},
      {{"decode + resize + normalise", format_rate(r.decode_images_per_second) + " images/s",
        fmt::format("{} threads, {} ({} files)", r.threads, r.images_source, r.decode_files)},
       {"decode full size + resize",
        format_rate(r.decode_full_size_images_per_second_1_thread) + " images/s", "1 thread"},
       {"decode reduced + resize",
        format_rate(r.decode_reduced_images_per_second_1_thread) + " images/s",
        "1 thread, JPEG decoded at 1/2-1/8 scale when larger than the input"},
       {"decode reduced + area resize",
        format_rate(r.decode_reduced_area_images_per_second_1_thread) + " images/s",
        "1 thread, area averaging at every size instead of the model's shrink filter"}}};
  for (const auto& m : r.latency)
    other.rows.push_back({"latency batch 1, " + m.variant,
                          fmt::format("p50 {:.2f} ms, p99 {:.2f} ms", m.p50_ms, m.p99_ms),
                          fmt::format("{} runs", m.runs)});
  other.rows.push_back(
      {"end-to-end predict", format_rate(r.end_to_end_images_per_second) + " images/s",
       fmt::format("batch {}, decoding overlapped with the model ({})", r.end_to_end_batch,
                   r.precision == "int8"   ? "int8 operators"
                   : r.predictor_optimized ? "optimised graph"
                                           : "eager fallback")});
  other.rows.push_back({"predictor on decoded images",
                        format_rate(r.predictor_forward_images_per_second) + " images/s",
                        fmt::format("batch {}, incl. normalising", r.end_to_end_batch)});
  other.rows.push_back(
      {"end-to-end / forward", fmt::format("{:.0f}%", 100 * r.end_to_end_ratio),
       r.end_to_end_ratio >= 0.8 ? "target (>= 80%) reached" : "target (>= 80%) NOT reached"});
  other.rows.push_back({"peak memory", fmt::format("{:.0f} MB", r.peak_rss_bytes / 1e6),
                        "resident set size, whole run"});
  return {forward, other};
}

BenchmarkTable benchmark_comparison(const BenchmarkResult& a, const BenchmarkResult& b) {
  BenchmarkTable table{{"measurement", a.precision + " (" + a.model + ")",
                        b.precision + " (" + b.model + ")", "ratio"},
                       {}};
  const auto add = [&](const std::string& name, double x, double y, const std::string& unit,
                       bool higher_is_better) {
    const double ratio = higher_is_better ? (y > 0 ? x / y : 0) : (x > 0 ? y / x : 0);
    table.rows.push_back(
        {name, format_rate(x) + unit, format_rate(y) + unit, fmt::format("{:.2f}x", ratio)});
  };
  const auto fastest = [](const BenchmarkResult& r, int batch) {
    for (const auto& m : r.forward)
      if (m.variant == r.fastest_variant && m.batch_size == batch) return m.images_per_second;
    return 0.0;
  };
  for (const auto& m : a.forward)
    if (m.variant == a.fastest_variant)
      add(fmt::format("forward, batch {}", m.batch_size), m.images_per_second,
          fastest(b, m.batch_size), " images/s", true);
  if (!a.latency.empty() && !b.latency.empty()) {
    add("latency batch 1, p50", a.latency.back().p50_ms, b.latency.back().p50_ms, " ms", false);
    add("latency batch 1, p99", a.latency.back().p99_ms, b.latency.back().p99_ms, " ms", false);
  }
  add("end-to-end predict", a.end_to_end_images_per_second, b.end_to_end_images_per_second,
      " images/s", true);
  add("model file", a.model_file_bytes / 1e6, b.model_file_bytes / 1e6, " MB", false);
  add("peak memory (whole process so far)", a.peak_rss_bytes / 1e6, b.peak_rss_bytes / 1e6, " MB",
      false);
  return table;
}

std::string format_benchmark(const BenchmarkResult& r) {
  std::string out = benchmark_description(r);
  for (const BenchmarkTable& table : benchmark_tables(r))
    out += "\n" + format_text_table(table.headers, table.rows);
  return out;
}

}  // namespace garmentnet
