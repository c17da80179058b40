// Ctrl-C and SIGTERM as a request to stop: while a StopSignals lives, the first signal sets a flag
// that long work (decoding, feature caching, training, validation) checks at safe points, instead
// of killing the process mid-write; a second signal ends the process at once (exit status 128 +
// the signal), as users expect of command-line tools. Set up at the edge (a command's main), once
// per process; the previous handlers return when it goes away.
#pragma once

#include <atomic>
#include <stdexcept>
#include <string>

namespace garmentnet {

class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Set once SIGINT or SIGTERM arrived.
  const std::atomic<bool>& requested() const;

  // For work that waits on a thread of its own instead of checking the flag (a server): blocks
  // until the first signal, which it returns (SIGINT or SIGTERM), or until end_wait() (then 0).
  int wait() const;
  void end_wait() const;

 private:
  void (*previous_int_)(int) = nullptr;
  void (*previous_term_)(int) = nullptr;
  int pipe_[2] = {-1, -1};  // the handler writes the first signal's number; wait() reads it
};

// Long work that saw a stop request leaves by this exception; what() names the work ("loading
// training images"). The training run catches it and ends as stopped, resumable.
class StopRequested : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws StopRequested naming `work` when `requested` (may be null: never) is set.
void stop_if_requested(const std::atomic<bool>* requested, const std::string& work);

}  // namespace garmentnet
