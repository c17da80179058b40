// garmentnet-torch: every subcommand, with LibTorch. Users start it through `garmentnet`
// (main.cpp), which hands it the command line.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>

#include "cli/app.h"
#include "cli/commands.h"
#include "core/thread_pool.h"
#include "core/version.h"

void garmentnet::cli::use_model_threads(int threads) {
  at::set_num_threads(threads > 0 ? threads : default_thread_count());
}

int main(int argc, char** argv) {
  // LibTorch's OpenMP threads spin while they wait for work; when JPEG decoding or other processes
  // want the same cores, the spinning starves them (up to 10x slower predict on 2 busy cores,
  // docs/benchmarks.md). OpenMP reads the policy once at start-up: `garmentnet` sets it before
  // it starts this program; started directly, set it and start again. A policy the user chose is
  // kept.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then run with the default policy
  }
  // Int8 models run on oneDNN's quantized kernels (docs/quantization.md), this LibTorch's default
  // engine; another build may default to another.
  const auto& engines = at::globalContext().supportedQEngines();
  if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) != engines.end())
    at::globalContext().setQEngine(at::QEngine::ONEDNN);
  using namespace garmentnet::cli;
  // Subcommands register here (see cli/commands.h), in the order --help lists them.
  constexpr std::array<AddCommand, 13> commands{add_bench_command,    add_export_command,
                                                add_explore_command,  add_make_dataset_command,
                                                add_pretrain_command, add_train_command,
                                                add_predict_command,  add_merge_predictions_command,
                                                add_quantize_command, add_evaluate_command,
                                                add_runs_command,     add_tune_command,
                                                add_serve_command};
  return run_app(argc, argv, commands,
                 "garmentnet " + std::string(garmentnet::kGarmentnetVersion) + " (LibTorch " +
                     TORCH_VERSION + ")");
}
