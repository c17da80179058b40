#include "dist/local_launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/log.h"

extern char** environ;

namespace garmentnet {
namespace {

volatile sig_atomic_t forwarded_signal = 0;

extern "C" void remember_signal(int signal) { forwarded_signal = signal; }

// This process's command line (what main received), from /proc.
std::vector<std::string> own_arguments() {
  std::ifstream file("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> arguments;
  std::string argument;
  while (std::getline(file, argument, '\0')) arguments.push_back(argument);
  if (arguments.empty()) fail_internal("cannot read /proc/self/cmdline");
  return arguments;
}

// The ranks' command line: ours without --nproc, with --threads unless given.
std::vector<std::string> rank_arguments(int threads_per_rank) {
  std::vector<std::string> arguments;
  bool has_threads = false;
  const std::vector<std::string> own = own_arguments();
  for (size_t i = 0; i < own.size(); ++i) {
    if (own[i] == "--nproc") {
      ++i;  // and its value
      continue;
    }
    if (own[i].starts_with("--nproc=")) continue;
    has_threads = has_threads || own[i] == "--threads" || own[i].starts_with("--threads=");
    arguments.push_back(own[i]);
  }
  if (!has_threads) {
    arguments.push_back("--threads");
    arguments.push_back(std::to_string(threads_per_rank));
  }
  return arguments;
}

// A TCP port free on 127.0.0.1 right now (the kernel's choice).
uint16_t free_port() {
  const int socket_fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (socket_fd < 0) fail("cannot open a socket to find a free port: {}", std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok = ::bind(socket_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(socket_fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(socket_fd);
  if (!ok) fail("cannot find a free port on 127.0.0.1: {}", std::strerror(errno));
  return ntohs(address.sin_port);
}

struct Rank {
  pid_t pid = -1;
  std::optional<int> exit_code;
};

pid_t start_rank(const std::vector<std::string>& arguments, const std::vector<std::string>& extra) {
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<std::string> environment;
  for (char** variable = environ; *variable != nullptr; ++variable) {
    const std::string entry(*variable);
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& setting : extra) replaced = replaced || setting.starts_with(name + "=");
    if (!replaced) environment.push_back(entry);
  }
  environment.insert(environment.end(), extra.begin(), extra.end());
  std::vector<char*> argv, envp;
  for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  for (const auto& entry : environment) envp.push_back(const_cast<char*>(entry.c_str()));
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) fail("cannot start a rank: {}", std::strerror(errno));
  if (pid == 0) {
    // Its own process group, so a terminal's Ctrl-C reaches only the launcher, which forwards it
    // once; and it ends if the launcher is killed.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::execve("/proc/self/exe", argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

int launch_local_ranks(int nproc, int threads_per_rank, std::chrono::seconds grace) {
  if (nproc < 1) fail("--nproc {} must be at least 1", nproc);
  const std::vector<std::string> arguments = rank_arguments(threads_per_rank);
  const std::string port = std::to_string(free_port());
  struct sigaction action {};
  action.sa_handler = remember_signal;
  sigemptyset(&action.sa_mask);
  struct sigaction previous_int {
  }, previous_term{};
  sigaction(SIGINT, &action, &previous_int);
  sigaction(SIGTERM, &action, &previous_term);

  std::vector<Rank> ranks(static_cast<size_t>(nproc));
  spdlog::info("starting {} ranks on this machine (127.0.0.1:{}, {} thread(s) each)", nproc, port,
               threads_per_rank);
  for (int r = 0; r < nproc; ++r) {
    ranks[size_t(r)].pid =
        start_rank(arguments, {"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r),
                               "WORLD_SIZE=" + std::to_string(nproc),
                               "LOCAL_WORLD_SIZE=" + std::to_string(nproc), "MASTER_ADDR=127.0.0.1",
                               "MASTER_PORT=" + port});
  }

  int result = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline;  // set once a rank failed
  int signal_sent = 0;
  bool killed = false;
  for (;;) {
    bool running = false;
    for (size_t r = 0; r < ranks.size(); ++r) {
      Rank& rank = ranks[r];
      if (rank.exit_code) continue;
      int status = 0;
      const pid_t done = ::waitpid(rank.pid, &status, WNOHANG);
      if (done == rank.pid) {
        rank.exit_code = exit_code_of(status);
        if (*rank.exit_code != 0 && result == 0) {
          result = *rank.exit_code;
          spdlog::error("rank {} failed (exit code {}); the other ranks stop within {} s", r,
                        result, grace.count());
          deadline = std::chrono::steady_clock::now() + grace;
        }
      } else {
        running = true;
      }
    }
    if (!running) break;
    if (forwarded_signal != 0 && forwarded_signal != signal_sent) {
      signal_sent = forwarded_signal;
      for (const Rank& rank : ranks)
        if (!rank.exit_code) ::kill(rank.pid, signal_sent);
    }
    if (deadline && !killed && std::chrono::steady_clock::now() > *deadline) {
      for (const Rank& rank : ranks)
        if (!rank.exit_code) ::kill(rank.pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  sigaction(SIGINT, &previous_int, nullptr);
  sigaction(SIGTERM, &previous_term, nullptr);
  return result;
}

}  // namespace garmentnet
