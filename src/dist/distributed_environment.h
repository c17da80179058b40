// Where a process stands in a data-parallel run, read from the standard environment that
// torchrun and Kubeflow's PyTorchJob set: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK
// (absent under PyTorchJob: 0), TORCHELASTIC_USE_AGENT_STORE and TORCHELASTIC_RESTART_COUNT
// (torchrun hosts the rendezvous store itself), GLOO_SOCKET_IFNAME (the network interface).
// Torch-free.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace garmentnet {

struct DistributedEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;                     // rank on this machine
  std::string master_addr = "127.0.0.1";  // host of the rendezvous store (rank 0's)
  uint16_t master_port = 29500;
  bool agent_store = false;  // the launcher hosts the store: every rank connects as a client
  std::string store_prefix;  // keys of this attempt (torchrun restarts a failed group)
  std::string interface;     // network interface for Gloo; empty: the host's default address
};

// The environment of this process, or nullopt when WORLD_SIZE is unset (it trains alone).
// InputError naming the variable and its value when one is malformed or missing.
std::optional<DistributedEnvironment> distributed_environment();

}  // namespace garmentnet
