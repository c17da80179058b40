// Dynamic batching: concurrent requests queue their (already decoded and resized) images; one
// model thread takes up to `max_batch_size` images, or whatever has arrived after `max_wait`,
// runs them through the model in one forward pass and hands every request its rows back.
// A partial batch waits only while other requests are on their way (announced with
// expect_request(), still being parsed and decoded): a lone request leaves at once instead of
// paying max_wait for company that is not coming.
// The queue is bounded: when it is full, submit() refuses at once (backpressure) instead of
// letting memory grow.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "infer/predictor.h"

namespace garmentnet {

struct BatcherOptions {
  int max_batch_size = 32;                   // images per forward pass
  std::chrono::microseconds max_wait{2000};  // how long the first queued image waits for company
  size_t max_queued_images = 512;            // beyond this, submit() throws Overloaded
  // Wait max_wait even when no other request is on its way (TF-Serving's batch_timeout): bigger
  // batches when clients send in quick succession, but every lone request pays the wait.
  bool always_wait = false;
};

// The queue is full or the batcher is stopping: the client should retry later (HTTP 429/503).
class Overloaded : public std::runtime_error {
 public:
  enum class Reason { QueueFull, Stopping, Abandoned };
  Overloaded(Reason reason, const std::string& message)
      : std::runtime_error(message), reason(reason) {}
  Reason reason;
};

// What one forward pass did, for metrics.
struct BatchStats {
  size_t images = 0;                       // batch size
  double inference_seconds = 0;            // Predictor::predict
  std::vector<double> queue_wait_seconds;  // per request in the batch
};

// A request's place in the queue.
struct BatchTicket {
  std::future<HeadProbabilities> result;  // rows of this request only
  // Set by a client that stopped waiting (timeout): its images are skipped if not yet started.
  std::shared_ptr<std::atomic<bool>> abandoned;
};

class Batcher {
 public:
  using Observer = std::function<void(const BatchStats&)>;
  explicit Batcher(const BatcherOptions& options, Observer observer = {});
  ~Batcher();  // stop()
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // A request on its way to submit(). Until it is submitted or destroyed (the request failed),
  // partial batches wait for it, up to max_wait.
  class Arrival {
   public:
    Arrival(Arrival&& other) noexcept : batcher_(std::exchange(other.batcher_, nullptr)) {}
    Arrival& operator=(Arrival&&) = delete;
    ~Arrival();

   private:
    friend class Batcher;
    explicit Arrival(Batcher* batcher) : batcher_(batcher) {}
    Batcher* batcher_;  // null once submitted
  };
  Arrival expect_request();

  // Queues `images` (resized for `model`) as the request `arrival` announced; they are never
  // split across batches. Throws Overloaded when the queue cannot take them or the batcher is
  // stopping.
  BatchTicket submit(Arrival arrival, std::shared_ptr<const Predictor> model,
                     std::vector<cv::Mat> images);

  // Finishes everything already queued, then ends the model thread. Later submits throw.
  void stop();

  size_t queued_images() const;

 private:
  struct Job {
    std::shared_ptr<const Predictor> model;
    std::vector<cv::Mat> images;
    std::promise<HeadProbabilities> promise;
    std::shared_ptr<std::atomic<bool>> abandoned;
    std::chrono::steady_clock::time_point queued_at;
  };
  void run();
  std::vector<Job> next_batch();
  void execute(std::vector<Job>& jobs);

  BatcherOptions options_;
  Observer observer_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  size_t queued_images_ = 0;
  size_t arriving_ = 0;  // requests on their way
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace garmentnet
