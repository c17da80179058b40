// A fixed pool of worker threads and a parallel-for on top of it.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <future>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace garmentnet {

// Number of threads to use when the user did not say: the cores available to this process.
int default_thread_count();

// How a pool's threads compete for the cores with the rest of the process.
enum class ThreadPriority {
  Normal,
  // Nice 10: the threads use the cores the model leaves idle and give way to its threads. A
  // server's decode and connection threads run so; otherwise they preempt one of the model's
  // OpenMP threads and its whole team waits at the next barrier.
  Background,
};

// Lowers the calling thread to ThreadPriority::Background (Linux: nice is per thread).
void run_current_thread_in_background();

class ThreadPool {
 public:
  explicit ThreadPool(int threads = default_thread_count(),
                      ThreadPriority priority = ThreadPriority::Normal);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()); }

  // Runs `task` on a worker; the future carries its result or exception.
  template <typename F>
  auto submit(F task) -> std::future<decltype(task())> {
    using Result = decltype(task());
    auto packaged = std::make_shared<std::packaged_task<Result()>>(std::move(task));
    std::future<Result> future = packaged->get_future();
    {
      std::lock_guard lock(mutex_);
      tasks_.emplace([packaged] { (*packaged)(); });
    }
    wake_.notify_one();
    return future;
  }

  // Calls body(i) for every i in [0, count), spread over the workers; rethrows the first
  // exception after all work has stopped.
  void parallel_for(size_t count, const std::function<void(size_t)>& body);

 private:
  std::vector<std::thread> workers_;
  std::queue<std::function<void()>> tasks_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

}  // namespace garmentnet
