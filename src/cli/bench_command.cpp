// `garmentnet bench`: flags → BenchmarkOptions; prints the tables, optionally writes JSON.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "infer/benchmark.h"

namespace garmentnet::cli {

void add_bench_command(CLI::App& app) {
  struct Flags {
    BenchmarkOptions options;
    std::filesystem::path json;
  };
  auto flags = std::make_shared<Flags>();
  BenchmarkOptions& o = flags->options;
  CLI::App* command = app.add_subcommand(
      "bench",
      "Inference speed of a model file on this machine: decoding, forward pass under each "
      "optimisation, batch-1 latency, end-to-end predict, memory, size, FLOPs and share of the "
      "CPU's peak (docs/benchmarks.md)");
  command->add_option("--model", o.model, "model file (.gnm) written by `train`")->required();
  command->add_option("--images", o.images_dir,
                      "folder of JPEG/PNG images to decode (default: synthetic 217x301 JPEGs)");
  command
      ->add_option("--max-images", o.synthetic_images,
                   "images used: synthetic ones written, or the first of --images")
      ->capture_default_str();
  command->add_option("--batch-sizes", o.batch_sizes, "forward-pass batch sizes")
      ->delimiter(',')
      ->capture_default_str();
  command
      ->add_option("--end-to-end-batch", o.end_to_end_batch,
                   "batch size of the end-to-end (decode + model) measurement")
      ->capture_default_str();
  command->add_option("--seconds", o.seconds, "minimum seconds per measurement")
      ->capture_default_str();
  command->add_option("--latency-runs", o.latency_runs, "minimum batch-1 passes timed for latency")
      ->capture_default_str();
  command->add_flag("!--quick", o.all_variants,
                    "measure only the eager and the optimised forward pass, not every step");
  command->add_option("--threads", o.threads, "threads for the model and decoding (0: all cores)")
      ->capture_default_str();
  command->add_option("--json", flags->json, "also write the figures to this JSON file");

  command->callback([flags] {
    const BenchmarkResult result = run_benchmark(flags->options);
    std::fputs(format_benchmark(result).c_str(), stdout);
    if (!flags->json.empty()) {
      write_file_atomically(flags->json, result.to_json().dump(2) + "\n");
      std::printf("\nFigures: %s\n", flags->json.c_str());
    }
  });
}

}  // namespace garmentnet::cli
