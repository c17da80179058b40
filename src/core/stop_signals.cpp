#include "core/stop_signals.h"

#include <csignal>

#include "core/error.h"

namespace garmentnet {
namespace {

std::atomic<bool> stop_requested{false};
std::atomic<bool> installed{false};

extern "C" void request_stop(int) { stop_requested = true; }

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

}  // namespace garmentnet
