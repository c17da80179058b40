// The dynamic batcher's waiting rule, on the real model: a partial batch waits for requests on
// their way (announced, still being decoded), and only for them, unless always_wait is set.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <optional>

#include "serve/batcher.h"
#include "test_support.h"

namespace garmentnet::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Far longer than any forward pass of the tiny model: a batch that leaves well before this
// did not wait.
constexpr auto kLongWait = 20s;

class BatcherTest : public ::testing::Test {
 protected:
  std::shared_ptr<const Predictor> model = std::make_shared<Predictor>(tiny_model());
  std::vector<size_t> batch_sizes() {
    std::lock_guard lock(mutex);
    return sizes;
  }
  Batcher::Observer observer() {
    return [this](const BatchStats& stats) {
      std::lock_guard lock(mutex);
      sizes.push_back(stats.images);
    };
  }
  std::vector<cv::Mat> one_image() const {
    return {resize_for_model(cv::Mat(40, 30, CV_8UC3, cv::Scalar(200, 50, 20)),
                             model->preprocessing())};
  }

 private:
  std::mutex mutex;
  std::vector<size_t> sizes;
};

bool answered_within(BatchTicket& ticket, std::chrono::milliseconds limit) {
  return ticket.result.wait_for(limit) == std::future_status::ready;
}

TEST_F(BatcherTest, ALoneRequestGoesStraightToTheModel) {
  Batcher batcher({.max_batch_size = 8, .max_wait = kLongWait}, observer());
  BatchTicket ticket = batcher.submit(batcher.expect_request(), model, one_image());
  ASSERT_TRUE(answered_within(ticket, 10s));
  EXPECT_EQ(ticket.result.get().at("cc3").size(), 5u);
  EXPECT_EQ(batch_sizes(), std::vector<size_t>{1});
}

TEST_F(BatcherTest, APartialBatchWaitsForARequestOnItsWay) {
  Batcher batcher({.max_batch_size = 8, .max_wait = kLongWait}, observer());
  Batcher::Arrival first = batcher.expect_request();
  Batcher::Arrival second = batcher.expect_request();
  BatchTicket first_ticket = batcher.submit(std::move(first), model, one_image());
  EXPECT_FALSE(answered_within(first_ticket, 300ms)) << "left without the request on its way";
  BatchTicket second_ticket = batcher.submit(std::move(second), model, one_image());
  ASSERT_TRUE(answered_within(first_ticket, 10s));
  ASSERT_TRUE(answered_within(second_ticket, 10s));
  EXPECT_EQ(batch_sizes(), std::vector<size_t>{2});
}

TEST_F(BatcherTest, ARequestThatFailsOnItsWayReleasesTheWaitingBatch) {
  Batcher batcher({.max_batch_size = 8, .max_wait = kLongWait}, observer());
  std::optional<Batcher::Arrival> failing = batcher.expect_request();
  BatchTicket ticket = batcher.submit(batcher.expect_request(), model, one_image());
  EXPECT_FALSE(answered_within(ticket, 300ms));
  failing.reset();  // e.g. its image did not decode: it will never be submitted
  EXPECT_TRUE(answered_within(ticket, 10s));
  EXPECT_EQ(batch_sizes(), std::vector<size_t>{1});
}

TEST_F(BatcherTest, AlwaysWaitHoldsALoneRequestForTheFullWait) {
  Batcher batcher({.max_batch_size = 8, .max_wait = 400ms, .always_wait = true}, observer());
  const auto started = Clock::now();
  BatchTicket ticket = batcher.submit(batcher.expect_request(), model, one_image());
  ASSERT_TRUE(answered_within(ticket, 10s));
  EXPECT_GE(Clock::now() - started, 400ms);
}

}  // namespace
}  // namespace garmentnet::testing
