// garmentnet: the command users type. `runs` answers here, without LibTorch, in milliseconds;
// every other command line is handed unchanged to garmentnet-torch, next to this executable, which
// loads LibTorch (about 0.7 s).
#include <limits.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli/app.h"
#include "cli/commands.h"

namespace {

// Replaces this process by garmentnet-torch with the same arguments (the pid stays, so signals
// reach it); returns only if that fails.
void exec_torch_executable(char** argv) {
  char self[PATH_MAX];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
  std::string path = length > 0 ? std::string(self, static_cast<size_t>(length)) : argv[0];
  path = path.substr(0, path.rfind('/') + 1) + "garmentnet-torch";
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);  // why: torch_main.cpp
  execv(path.c_str(), argv);
  std::fprintf(stderr,
               "error: cannot start %s: %s (it belongs next to this executable; rebuild or "
               "reinstall garmentnet)\n",
               path.c_str(), std::strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace garmentnet::cli;
  if (named_subcommand(argc, argv) != "runs") {
    exec_torch_executable(argv);
    return 2;
  }
  constexpr std::array<AddCommand, 1> commands{add_runs_command};
  return run_app(argc, argv, commands, "");
}
