// Micro-benchmarks of the forward pass of the small CNN (64 px, garment heads): the eager model
// under inference mode against the traced, frozen and optimised graph the Predictor runs.
#include <benchmark/benchmark.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "core/thread_pool.h"
#include "infer/torchscript_export.h"
#include "model/multitask_model.h"

namespace {

using garmentnet::HeadOutputs;

struct SmallCnn {
  garmentnet::Preprocessing pre;  // 64×64 inputs
  garmentnet::MultiTaskModel model{nullptr};

  SmallCnn() {
    torch::set_num_threads(garmentnet::default_thread_count());
    torch::manual_seed(1);
    model = garmentnet::MultiTaskModel(garmentnet::make_native_backbone("small_cnn"),
                                       garmentnet::TaskSpec::garments());
    model->eval();
  }
};

// Argument: batch size.
void BM_SmallCnnEager(benchmark::State& state) {
  SmallCnn cnn;
  const torch::Tensor images = torch::randn({state.range(0), 3, 64, 64});
  torch::InferenceMode guard;
  for (auto _ : state) {
    HeadOutputs out = garmentnet::head_probabilities(cnn.model->spec(), cnn.model->forward(images));
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SmallCnnEager)->Arg(1)->Arg(32)->UseRealTime();

// Arguments: batch size, whether optimize_for_inference runs after freezing.
void BM_SmallCnnTorchScript(benchmark::State& state) {
  SmallCnn cnn;
  torch::jit::Module graph = garmentnet::optimize_traced_model(
      garmentnet::trace_model(cnn.model, cnn.pre),
      {.freeze = true, .optimize_for_inference = state.range(1) != 0});
  const torch::Tensor images = torch::randn({state.range(0), 3, 64, 64});
  torch::InferenceMode guard;
  for (auto _ : state) {
    HeadOutputs out = garmentnet::run_traced_model(graph, cnn.model->spec(), images);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SmallCnnTorchScript)
    ->ArgNames({"batch", "optimize"})
    ->Args({1, 0})
    ->Args({1, 1})
    ->Args({32, 0})
    ->Args({32, 1})
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
