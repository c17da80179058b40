#include "core/stop_signals.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "core/error.h"

namespace garmentnet {
namespace {

std::atomic<bool> stop_requested{false};
std::atomic<bool> installed{false};
std::atomic<int> signal_pipe{-1};  // the write end of the StopSignals' pipe

// Only async-signal-safe calls: the flag, write(2) and _exit(2).
extern "C" void request_stop(int signal) {
  if (!stop_requested.exchange(true)) {
    const char number = static_cast<char>(signal);
    [[maybe_unused]] const ssize_t written = write(signal_pipe.load(), &number, 1);
    return;
  }
  constexpr char message[] =
      "\nsecond stop signal: exiting at once (work since the last checkpoint is lost)\n";
  [[maybe_unused]] const ssize_t written = write(STDERR_FILENO, message, sizeof message - 1);
  _exit(128 + signal);
}

}  // namespace

StopSignals::StopSignals() {
  if (installed.exchange(true)) fail_internal("StopSignals installed twice");
  if (::pipe2(pipe_, O_CLOEXEC) != 0) fail_internal("cannot create the stop signals' pipe");
  signal_pipe = pipe_[1];
  stop_requested = false;
  previous_int_ = std::signal(SIGINT, request_stop);
  previous_term_ = std::signal(SIGTERM, request_stop);
}

StopSignals::~StopSignals() {
  std::signal(SIGINT, previous_int_);
  std::signal(SIGTERM, previous_term_);
  signal_pipe = -1;
  ::close(pipe_[0]);
  ::close(pipe_[1]);
  installed = false;
}

const std::atomic<bool>& StopSignals::requested() const { return stop_requested; }

int StopSignals::wait() const {
  char number = 0;
  while (::read(pipe_[0], &number, 1) < 0 && errno == EINTR) {
  }
  return number;
}

void StopSignals::end_wait() const {
  const char none = 0;
  [[maybe_unused]] const ssize_t written = ::write(pipe_[1], &none, 1);
}

void stop_if_requested(const std::atomic<bool>* requested, const std::string& work) {
  if (requested && *requested) throw StopRequested(work);
}

}  // namespace garmentnet
