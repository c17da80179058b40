// Data-parallel training on LibTorch's c10d: the rendezvous through a TCPStore (hosted by rank 0,
// or by torchrun's agent), a Gloo process group, and gradients averaged with its all-reduce in
// buckets, each started by gradient hooks as soon as the backward pass has filled it (c10d's
// Reducer is not usable with Debian's LibTorch: its header needs a file Debian does not ship).
// docs/scale-out.md.
#pragma once

#include <chrono>
#include <memory>

#include "dist/distributed_environment.h"
#include "train/training_observer.h"

namespace garmentnet {

// Joins the run `environment` describes. Every collective call of a training step gives up after
// `timeout` with an InputError saying which rank waited for what; joining and the barriers before
// training wait up to 15 minutes (or `timeout` if longer), since ranks start at different speeds.
std::unique_ptr<DataParallel> join_data_parallel(const DistributedEnvironment& environment,
                                                 std::chrono::seconds timeout);

}  // namespace garmentnet
