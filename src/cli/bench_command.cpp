// `garmentnet bench`: flags → BenchmarkOptions; prints the tables, optionally writes JSON.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/text_table.h"
#include "infer/benchmark.h"

namespace garmentnet::cli {

void add_bench_command(CLI::App& app) {
  struct Flags {
    BenchmarkOptions options;
    std::filesystem::path json;
    std::filesystem::path compare;
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
  command->add_option("--compare", flags->compare,
                      "also measure this model file in the same run and show both side by side "
                      "(e.g. an int8 model against its fp32 source)");

  command->callback([flags] {
    const BenchmarkResult result = run_benchmark(flags->options);
    std::fputs(format_benchmark(result).c_str(), stdout);
    nlohmann::json json = result.to_json();
    if (!flags->compare.empty()) {
      BenchmarkOptions other = flags->options;
      other.model = flags->compare;
      const BenchmarkResult compared = run_benchmark(other);
      std::printf("\n");
      std::fputs(format_benchmark(compared).c_str(), stdout);
      const BenchmarkTable table = benchmark_comparison(result, compared);
      std::printf("\nSide by side, same run:\n%s",
                  format_text_table(table.headers, table.rows).c_str());
      json = {{"model", json}, {"compared", compared.to_json()}};
    }
    if (!flags->json.empty()) {
      write_file_atomically(flags->json, json.dump(2) + "\n");
      std::printf("\nFigures: %s\n", flags->json.c_str());
    }
  });
}

}  // namespace garmentnet::cli
