// Ctrl-C and SIGTERM as a request to stop: while a StopSignals lives, the signals set a flag that
// long work (training) checks at safe points, instead of killing the process mid-write. Set up at
// the edge (a command's main), once per process; the previous handlers return when it goes away.
#pragma once

#include <atomic>

namespace garmentnet {

class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Set once SIGINT or SIGTERM arrived.
  const std::atomic<bool>& requested() const;

 private:
  void (*previous_int_)(int) = nullptr;
  void (*previous_term_)(int) = nullptr;
};

}  // namespace garmentnet
