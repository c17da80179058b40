// `train --nproc N` / `pretrain --nproc N`: starts N ranks of this very command on this machine
// with the environment torchrun would give them (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
// MASTER_ADDR=127.0.0.1, a free MASTER_PORT), forwards Ctrl-C and SIGTERM to them (each stops at
// its next step, together), and when a rank fails gives the others `grace` to stop on their own
// before killing them. Torch-free.
#pragma once

#include <chrono>

namespace garmentnet {

// Runs the ranks and returns the launcher's exit code: 0 when every rank succeeded, otherwise the
// first failing rank's (128 + signal for a rank killed by a signal). Each rank runs the command
// line of this process without --nproc, with --threads `threads_per_rank` unless it had --threads.
int launch_local_ranks(int nproc, int threads_per_rank, std::chrono::seconds grace);

}  // namespace garmentnet
