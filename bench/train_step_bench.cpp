// Training throughput per backbone: one optimisation step (forward, multi-task loss, backward,
// AdamW) of the full two-head model on a batch of random images, as images per second.
//   build/bench/train_step_bench --benchmark_filter=small_cnn
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <torch/optim/adamw.h>

#include "core/thread_pool.h"
#include "model/backbone.h"
#include "model/losses.h"
#include "model/multitask_model.h"

namespace garmentnet {
namespace {

void train_step(benchmark::State& state, const std::string& backbone, int64_t side) {
  torch::set_num_threads(default_thread_count());
  torch::manual_seed(0);
  const int64_t batch = state.range(0);
  const TaskSpec spec = TaskSpec::garments();
  MultiTaskModel model(make_native_backbone(backbone), spec);
  model->train();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-3));
  const auto images = torch::randn({batch, 3, side, side});
  const HeadTargets targets{{"cc3", torch::randint(0, 5, {batch}, torch::kLong)},
                            {"tags", torch::randint(0, 2, {batch, 3}).to(torch::kFloat)}};
  for (auto _ : state) {
    optimizer.zero_grad();
    LossResult loss = multitask_loss(spec, model->forward(images), targets);
    loss.total.backward();
    optimizer.step();
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["threads"] = default_thread_count();
}

void register_benchmarks() {
  for (const auto& name : native_backbone_names()) {
    for (int64_t side : {64, 224}) {
      benchmark::RegisterBenchmark(fmt::format("train_step/{}/{}px", name, side).c_str(),
                                   [name, side](benchmark::State& s) { train_step(s, name, side); })
          ->Arg(side == 64 ? 64 : 16)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(side == 64 ? 2.0 : 0.5)
          ->UseRealTime();
    }
  }
}

}  // namespace
}  // namespace garmentnet

int main(int argc, char** argv) {
  garmentnet::register_benchmarks();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
