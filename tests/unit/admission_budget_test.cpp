#include "core/admission_budget.h"

#include <gtest/gtest.h>

#include <vector>

namespace garmentnet {
namespace {

TEST(AdmissionBudget, LetsInWhatFitsAndAlwaysARequestAlone) {
  AdmissionBudget budget(1000);
  {
    const auto alone = budget.try_take(5000);  // larger than the budget, but nothing else is in
    ASSERT_TRUE(alone);
    EXPECT_FALSE(budget.try_take(1));
  }
  EXPECT_EQ(budget.taken(), 0);
  auto first = budget.try_take(600);
  const auto second = budget.try_take(400);
  ASSERT_TRUE(first && second);
  EXPECT_FALSE(budget.try_take(1));
  EXPECT_EQ(budget.taken(), 1000);
  // Shares move (e.g. into the connection that holds them) and are given back once.
  std::vector<AdmissionBudget::Share> held;
  held.push_back(std::move(*first));
  first.reset();
  EXPECT_EQ(budget.taken(), 1000);
  held.clear();
  EXPECT_EQ(budget.taken(), 400);
  EXPECT_TRUE(budget.try_take(600));
}

}  // namespace
}  // namespace garmentnet
