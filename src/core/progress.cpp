#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace garmentnet {
namespace {

std::string format_duration(double seconds) {
  if (seconds < 0 || seconds > 1e7) return "--:--";
  auto total = static_cast<int64_t>(seconds + 0.5);
  if (total >= 3600)
    return fmt::format("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60);
  return fmt::format("{:02}:{:02}", total / 60, total % 60);
}

}  // namespace

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      terminal_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(int64_t done) {
  done_ += done;
  std::lock_guard lock(mutex_);
  if (finished_) return;
  const auto now = std::chrono::steady_clock::now();
  // A terminal redraws often; a log gets a line every 10 s at most.
  const auto interval =
      terminal_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(10000);
  if (now - last_draw_ >= interval) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::set_status(std::string status) {
  std::lock_guard lock(mutex_);
  status_ = std::move(status);
}

void Progress::finish() {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  finished_ = true;
  draw(true);
}

namespace {
std::atomic<bool> progress_shown{true};
}

void Progress::set_shown(bool shown) { progress_shown = shown; }

void Progress::draw(bool final) {
  if (!progress_shown) return;
  const int64_t done = done_.load();
  const double elapsed = elapsed_seconds();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1.0;
  const double fraction = total_ > 0 ? std::min(1.0, static_cast<double>(done) / total_) : 1.0;
  std::string line;
  if (terminal_) {
    constexpr int width = 28;
    const int filled = static_cast<int>(fraction * width);
    line = fmt::format("\r{} [{}{}] {}/{} {:.1f} {}/s {} {}{}", label_, std::string(filled, '#'),
                       std::string(width - filled, '.'), done, total_, rate, unit_,
                       final ? format_duration(elapsed) : "ETA " + format_duration(eta), status_,
                       final ? "\n" : "\033[K");
  } else {
    line = fmt::format(
        "{}: {}/{} ({:.0f}%) {:.1f} {}/s {} {}\n", label_, done, total_, fraction * 100, rate,
        unit_, final ? "took " + format_duration(elapsed) : "ETA " + format_duration(eta), status_);
  }
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace garmentnet
