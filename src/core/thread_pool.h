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

class ThreadPool {
 public:
  explicit ThreadPool(int threads = default_thread_count());
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
