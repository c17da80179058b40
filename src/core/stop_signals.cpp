#include "core/stop_signals.h"

#include <unistd.h>

#include <csignal>

#include "core/error.h"

namespace garmentnet {
namespace {

std::atomic<bool> stop_requested{false};
std::atomic<bool> installed{false};

// Only async-signal-safe calls: the flag, write(2) and _exit(2).
extern "C" void request_stop(int signal) {
  if (!stop_requested.exchange(true)) return;
  constexpr char message[] =
      "\nsecond stop signal: exiting at once (work since the last checkpoint is lost)\n";
  [[maybe_unused]] const ssize_t written = write(STDERR_FILENO, message, sizeof message - 1);
  _exit(128 + signal);
}

}  // namespace

StopSignals::StopSignals() {
  if (installed.exchange(true)) fail_internal("StopSignals installed twice");
  stop_requested = false;
  previous_int_ = std::signal(SIGINT, request_stop);
  previous_term_ = std::signal(SIGTERM, request_stop);
}

StopSignals::~StopSignals() {
  std::signal(SIGINT, previous_int_);
  std::signal(SIGTERM, previous_term_);
  installed = false;
}

const std::atomic<bool>& StopSignals::requested() const { return stop_requested; }

void stop_if_requested(const std::atomic<bool>* requested, const std::string& work) {
  if (requested && *requested) throw StopRequested(work);
}

}  // namespace garmentnet
