// A quantity shared by concurrent requests (pixels being decoded, request bytes in flight): each
// takes its share before the work and gives it back after, and what does not fit beside the
// others is refused at once instead of queued. A request alone is always let in, so that a limit
// below one request's size slows nothing down but cannot lock a request out for ever.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <utility>

namespace garmentnet {

class AdmissionBudget {
 public:
  explicit AdmissionBudget(int64_t limit) : limit_(limit) {}
  AdmissionBudget(const AdmissionBudget&) = delete;
  AdmissionBudget& operator=(const AdmissionBudget&) = delete;

  // A share of the budget, given back when destroyed.
  class Share {
   public:
    Share() = default;
    Share(Share&& other) noexcept
        : budget_(std::exchange(other.budget_, nullptr)), amount_(other.amount_) {}
    Share& operator=(Share&& other) noexcept {
      std::swap(budget_, other.budget_);
      std::swap(amount_, other.amount_);
      return *this;
    }
    ~Share() {
      if (budget_ != nullptr) budget_->taken_ -= amount_;
    }

   private:
    friend class AdmissionBudget;
    Share(AdmissionBudget* budget, int64_t amount) : budget_(budget), amount_(amount) {}
    AdmissionBudget* budget_ = nullptr;
    int64_t amount_ = 0;
  };

  // A share of `amount`, or nullopt when it does not fit beside the shares taken now.
  std::optional<Share> try_take(int64_t amount) {
    const int64_t before = taken_.fetch_add(amount);
    if (before > 0 && before + amount > limit_) {
      taken_ -= amount;
      return std::nullopt;
    }
    return Share(this, amount);
  }

  int64_t taken() const { return taken_; }
  int64_t limit() const { return limit_; }

 private:
  const int64_t limit_;
  std::atomic<int64_t> taken_{0};
};

}  // namespace garmentnet
