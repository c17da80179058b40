#include "serve/batcher.h"

#include <spdlog/spdlog.h>

namespace garmentnet {

using Clock = std::chrono::steady_clock;

Batcher::Batcher(const BatcherOptions& options, Observer observer)
    : options_(options), observer_(std::move(observer)) {
  options_.max_batch_size = std::max(1, options_.max_batch_size);
  thread_ = std::thread([this] { run(); });
}

Batcher::~Batcher() { stop(); }

Batcher::Arrival Batcher::expect_request() {
  std::lock_guard lock(mutex_);
  ++arriving_;
  return Arrival(this);
}

// A request that failed before submit(): if it was the last one on its way, a waiting partial
// batch need not wait any longer.
Batcher::Arrival::~Arrival() {
  if (batcher_ == nullptr) return;
  bool last = false;
  {
    std::lock_guard lock(batcher_->mutex_);
    last = --batcher_->arriving_ == 0;
  }
  if (last) batcher_->wake_.notify_all();
}

BatchTicket Batcher::submit(Arrival arrival, std::shared_ptr<const Predictor> model,
                            std::vector<cv::Mat> images) {
  Job job{.model = std::move(model),
          .images = std::move(images),
          .promise = {},
          .abandoned = std::make_shared<std::atomic<bool>>(false),
          .queued_at = Clock::now()};
  BatchTicket ticket{job.promise.get_future(), job.abandoned};
  {
    std::lock_guard lock(mutex_);
    arrival.batcher_ = nullptr;
    --arriving_;
    if (stopping_) throw Overloaded(Overloaded::Reason::Stopping, "the server is shutting down");
    // An empty queue always takes a request, even one larger than the limit, so no request
    // is refused forever.
    if (queued_images_ > 0 && queued_images_ + job.images.size() > options_.max_queued_images) {
      throw Overloaded(Overloaded::Reason::QueueFull, "too many requests queued; retry later");
    }
    queued_images_ += job.images.size();
    queue_.push_back(std::move(job));
  }
  wake_.notify_all();
  return ticket;
}

void Batcher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

size_t Batcher::queued_images() const {
  std::lock_guard lock(mutex_);
  return queued_images_;
}

std::vector<Batcher::Job> Batcher::next_batch() {
  std::unique_lock lock(mutex_);
  wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
  if (queue_.empty()) return {};
  // The first request waits at most max_wait for others to fill the batch, and only while more
  // are on their way. When the model was busy, it has usually waited long enough already and the
  // batch leaves at once.
  const auto deadline = queue_.front().queued_at + options_.max_wait;
  wake_.wait_until(lock, deadline, [this] {
    return stopping_ || queued_images_ >= static_cast<size_t>(options_.max_batch_size) ||
           (arriving_ == 0 && !options_.always_wait);
  });
  // One batch runs one model version. With several versions served, requests for the front
  // one's version are gathered from anywhere in the queue; the others keep their order.
  std::vector<Job> jobs;
  size_t images = 0;
  const std::shared_ptr<const Predictor> model = queue_.front().model;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->model != model) {
      ++it;
      continue;
    }
    const bool fits =
        jobs.empty() || images + it->images.size() <= static_cast<size_t>(options_.max_batch_size);
    if (!fits) break;
    images += it->images.size();
    queued_images_ -= it->images.size();
    jobs.push_back(std::move(*it));
    it = queue_.erase(it);
  }
  return jobs;
}

void Batcher::execute(std::vector<Job>& jobs) {
  BatchStats stats;
  std::vector<cv::Mat> batch;
  std::vector<Job*> running;
  const auto started = Clock::now();
  for (Job& job : jobs) {
    if (*job.abandoned) {
      job.promise.set_exception(
          std::make_exception_ptr(Overloaded(Overloaded::Reason::Abandoned, "request abandoned")));
      continue;
    }
    stats.queue_wait_seconds.push_back(
        std::chrono::duration<double>(started - job.queued_at).count());
    batch.insert(batch.end(), job.images.begin(), job.images.end());
    running.push_back(&job);
  }
  if (running.empty()) return;
  HeadProbabilities all;
  try {
    all = running.front()->model->predict(batch);
  } catch (...) {
    spdlog::error("batched inference failed for {} image(s)", batch.size());
    for (Job* job : running) job->promise.set_exception(std::current_exception());
    return;
  }
  stats.images = batch.size();
  stats.inference_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  // Counted before anyone is answered: a client holding its answer finds its batch in /metrics.
  if (observer_) observer_(stats);
  size_t row = 0;
  for (Job* job : running) {
    HeadProbabilities mine;
    for (const auto& [head, values] : all) {
      const size_t width = values.size() / batch.size();
      mine[head].assign(
          values.begin() + static_cast<std::ptrdiff_t>(row * width),
          values.begin() + static_cast<std::ptrdiff_t>((row + job->images.size()) * width));
    }
    row += job->images.size();
    job->promise.set_value(std::move(mine));
  }
}

void Batcher::run() {
  for (;;) {
    std::vector<Job> jobs = next_batch();
    if (jobs.empty()) return;  // stopping and drained
    execute(jobs);
  }
}

}  // namespace garmentnet
