#include "dist/distributed_environment.h"

#include <charconv>
#include <cstdlib>
#include <string_view>

#include "core/error.h"

namespace garmentnet {
namespace {

const char* variable(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

int64_t integer(const char* name, int64_t low, int64_t high) {
  const char* value = variable(name);
  if (value == nullptr)
    fail("{} is not set; a data-parallel run needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT",
         name);
  const std::string_view text(value);
  int64_t parsed = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  if (error != std::errc() || end != text.data() + text.size() || parsed < low || parsed > high)
    fail("{}='{}' is not an integer in [{}, {}]", name, text, low, high);
  return parsed;
}

}  // namespace

std::optional<DistributedEnvironment> distributed_environment() {
  if (variable("WORLD_SIZE") == nullptr) return std::nullopt;
  DistributedEnvironment environment;
  environment.world_size = static_cast<int>(integer("WORLD_SIZE", 1, 1 << 20));
  environment.rank = static_cast<int>(integer("RANK", 0, environment.world_size - 1));
  environment.local_rank =
      variable("LOCAL_RANK") != nullptr ? static_cast<int>(integer("LOCAL_RANK", 0, 1 << 20)) : 0;
  const char* address = variable("MASTER_ADDR");
  if (address == nullptr)
    fail("MASTER_ADDR is not set; a data-parallel run needs the host of rank 0 in MASTER_ADDR");
  environment.master_addr = address;
  environment.master_port = static_cast<uint16_t>(integer("MASTER_PORT", 1, 65535));
  const char* agent = variable("TORCHELASTIC_USE_AGENT_STORE");
  environment.agent_store = agent != nullptr && std::string_view(agent) == "True";
  const char* restart = variable("TORCHELASTIC_RESTART_COUNT");
  environment.store_prefix =
      std::string("garmentnet/attempt_") + (restart != nullptr ? restart : "0");
  if (const char* interface = variable("GLOO_SOCKET_IFNAME")) environment.interface = interface;
  return environment;
}

}  // namespace garmentnet
