#include "core/thread_pool.h"

#include <sched.h>
#include <sys/resource.h>

#include <atomic>
#include <exception>

namespace garmentnet {

int default_thread_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

void run_current_thread_in_background() {
  // Failing only means the thread keeps its priority: nothing to report.
  (void)setpriority(PRIO_PROCESS, 0, 10);
}

ThreadPool::ThreadPool(int threads, ThreadPriority priority) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    workers_.emplace_back([this, priority] {
      if (priority == ThreadPriority::Background) run_current_thread_in_background();
      for (;;) {
        std::function<void()> task;
        {
          std::unique_lock lock(mutex_);
          wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
          if (tasks_.empty()) return;
          task = std::move(tasks_.front());
          tasks_.pop();
        }
        task();
      }
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::parallel_for(size_t count, const std::function<void(size_t)>& body) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  std::vector<std::future<void>> running;
  const size_t jobs = std::min(count, workers_.size());
  for (size_t j = 0; j < jobs; ++j) {
    running.push_back(submit([&] {
      for (size_t i = next++; i < count && !failed; i = next++) {
        try {
          body(i);
        } catch (...) {
          std::lock_guard lock(error_mutex);
          if (!first_error) first_error = std::current_exception();
          failed = true;
        }
      }
    }));
  }
  for (auto& job : running) job.wait();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace garmentnet
