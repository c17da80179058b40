#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>

namespace garmentnet {
namespace {

TEST(ThreadPool, ParallelForVisitsEveryIndexOnce) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> visits(1000);
  pool.parallel_for(visits.size(), [&](size_t i) { visits[i]++; });
  for (auto& count : visits) EXPECT_EQ(count.load(), 1);
}

TEST(ThreadPool, ParallelForRethrowsTheFirstError) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_for(100,
                                 [](size_t i) {
                                   if (i == 42) throw std::runtime_error("bad item");
                                 }),
               std::runtime_error);
  // The pool still works afterwards.
  auto answer = pool.submit([] { return 7; });
  EXPECT_EQ(answer.get(), 7);
}

}  // namespace
}  // namespace garmentnet
