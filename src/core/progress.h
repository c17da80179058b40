// Progress for long work: a live bar with rate and ETA on a terminal, plain periodic lines
// otherwise (logs, CI). Thread-safe: workers may call advance() concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace garmentnet {

class Progress {
 public:
  // `total` units of work described by `label` (e.g. "decoding", 5000 images).
  Progress(std::string label, int64_t total, std::string unit = "items");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(int64_t done = 1);
  // Extra text shown after the bar, e.g. live metrics ("loss 0.41 acc 0.87").
  void set_status(std::string status);
  // Draws the final state; called by the destructor if not called before.
  void finish();

  int64_t done() const { return done_.load(); }
  double elapsed_seconds() const;

  // Whether progress is drawn at all in this process (all but one rank of a data-parallel run
  // stay quiet, so the terminal shows one set of bars). Set at start-up, before any Progress.
  static void set_shown(bool shown);

 private:
  void draw(bool final);

  std::string label_;
  std::string unit_;
  std::string status_;
  int64_t total_;
  std::atomic<int64_t> done_{0};
  bool terminal_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::mutex mutex_;
};

}  // namespace garmentnet
