#include "dist/gloo_data_parallel.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <exception>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "core/error.h"

namespace garmentnet {
namespace {

// Gradients are all-reduced in buckets of about this size, one asynchronous all-reduce each,
// started as soon as the backward pass has filled the bucket (PyTorch's DDP uses 25 MB; here 4 MB
// hid 70-75 % of resnet18's wait, where 25 MB made two buckets and hid little: docs/scale-out.md).
constexpr int64_t kBucketBytes = 4 << 20;

// Joining, and the barriers before training, wait at least this long: ranks start (and load their
// data) at different speeds, on a busy machine many seconds apart.
constexpr std::chrono::seconds kShortestJoinTimeout{900};

class GlooDataParallel final : public DataParallel {
 public:
  GlooDataParallel(const DistributedEnvironment& environment, std::chrono::seconds timeout)
      : environment_(environment),
        timeout_(timeout),
        join_timeout_(std::max(timeout, kShortestJoinTimeout)) {
    c10d::TCPStoreOptions store_options;
    store_options.port = environment.master_port;
    store_options.isServer = environment.rank == 0 && !environment.agent_store;
    // No waiting in the store's constructor (there, only workers that also wait are counted): the
    // ranks wait for each other below, with a timeout and a message.
    store_options.waitWorkers = false;
    store_options.timeout = join_timeout_;
    try {
      store_ = c10::make_intrusive<c10d::PrefixStore>(
          environment.store_prefix,
          c10::make_intrusive<c10d::TCPStore>(environment.master_addr, store_options));
      // Every rank is there before the group connects, which waits only the step timeout.
      wait_for_everyone("joining");
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      options->devices.push_back(
          environment.interface.empty()
              ? c10d::ProcessGroupGloo::createDefaultDevice()
              : c10d::ProcessGroupGloo::createDeviceForInterface(environment.interface));
      options->threads = 2;
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, environment.rank,
                                                           environment.world_size, options);
    } catch (const std::exception& error) {
      fail(
          "rank {} of {} could not join the data-parallel run through {}:{} within {} s: {}. Is "
          "rank 0 running, are MASTER_ADDR and MASTER_PORT right and the port free?",
          environment.rank, environment.world_size, environment.master_addr,
          environment.master_port, join_timeout_.count(), first_line(error.what()));
    }
    spdlog::info("rank {} of {} joined the data-parallel run ({}:{}, Gloo)", environment.rank,
                 environment.world_size, environment.master_addr, environment.master_port);
  }

  ~GlooDataParallel() override {
    if (steps_ == 0) return;
    spdlog::info(
        "rank {}: {} steps, {:.2f} MB of gradients all-reduced per step, {:.1f} ms per step "
        "waiting for them after the backward pass",
        environment_.rank, steps_, static_cast<double>(bytes_) / static_cast<double>(steps_) / 1e6,
        1e3 * communication_seconds_ / static_cast<double>(steps_));
  }

  int rank() const override { return environment_.rank; }
  int world_size() const override { return environment_.world_size; }

  void broadcast_from_first(const std::vector<at::Tensor>& tensors) override {
    barrier();
    torch::NoGradGuard no_grad;
    for (const at::Tensor& tensor : tensors) {
      std::vector<at::Tensor> one{tensor.detach()};
      run("receiving rank 0's weights", [&] { group_->broadcast(one)->wait(); });
    }
  }

  void barrier() override {
    run(
        "waiting for the other ranks to load their data", [&] { wait_for_everyone("barrier"); },
        join_timeout_);
  }

  // Buckets of about kBucketBytes, from the last parameter to the first (the order the backward
  // pass computes their gradients in), and a hook on each parameter that copies its gradient into
  // its bucket as soon as it is computed; a full bucket is all-reduced at once, while the backward
  // pass goes on with the layers before it.
  void watch(const std::vector<at::Tensor>& parameters) override {
    parameters_ = parameters;
    slots_.assign(parameters.size(), Slot{});
    buckets_.clear();
    for (size_t i = parameters.size(); i-- > 0;) {
      if (buckets_.empty() || buckets_.back().bytes >= kBucketBytes) buckets_.emplace_back();
      Bucket& bucket = buckets_.back();
      slots_[i] = {.bucket = buckets_.size() - 1, .offset = bucket.bytes / int64_t(sizeof(float))};
      bucket.members.push_back(i);
      bucket.bytes += parameters[i].numel() * int64_t(sizeof(float));
    }
    for (Bucket& bucket : buckets_)
      bucket.flat = torch::zeros({bucket.bytes / int64_t(sizeof(float))}, torch::kFloat);
    for (size_t i = 0; i < parameters.size(); ++i)
      parameters_[i].register_hook([this, i](const at::Tensor& gradient) {
        torch::NoGradGuard no_grad;
        take_gradient(i, gradient);
      });
  }

  void average_gradients(const std::vector<at::Tensor>& parameters) override {
    if (parameters.size() != parameters_.size())
      fail_internal("average_gradients needs the parameters given to watch");
    torch::NoGradGuard no_grad;
    const auto started = Clock::now();
    run("averaging gradients", [&] {
      // A parameter the step did not reach takes part with a zero gradient, so every rank
      // all-reduces the same buckets.
      for (size_t i = 0; i < parameters_.size(); ++i)
        if (!slots_[i].taken) take_gradient(i, torch::zeros_like(parameters_[i]));
      const double scale = 1.0 / environment_.world_size;
      for (Bucket& bucket : buckets_) {
        bucket.work->wait();
        bucket.flat.mul_(scale);
        for (size_t i : bucket.members) {
          at::Tensor& gradient = parameters_[i].mutable_grad();
          const at::Tensor averaged =
              bucket.flat.narrow(0, slots_[i].offset, parameters_[i].numel())
                  .view_as(parameters_[i]);
          if (gradient.defined())
            gradient.copy_(averaged);
          else
            gradient = averaged.clone();
          slots_[i].taken = false;
        }
        bucket.taken = 0;
        bytes_ += bucket.bytes;
      }
      launched_ = 0;
    });
    ++steps_;
    communication_seconds_ += std::chrono::duration<double>(Clock::now() - started).count();
  }

  void sum(std::vector<double>& values) override {
    std::vector<at::Tensor> tensor{torch::tensor(values, torch::kDouble)};
    run("adding up the epoch's figures", [&] { group_->allreduce(tensor)->wait(); });
    for (size_t i = 0; i < values.size(); ++i)
      values[i] = tensor.front()[static_cast<int64_t>(i)].item<double>();
  }

  std::vector<double> gather(const std::vector<double>& values) override {
    const auto world = static_cast<size_t>(environment_.world_size);
    // The lengths first (Gloo gathers tensors of one size), then the values padded to the longest.
    std::vector<at::Tensor> length{torch::tensor({static_cast<int64_t>(values.size())})};
    std::vector<std::vector<at::Tensor>> lengths(1);
    for (size_t r = 0; r < world; ++r) lengths[0].push_back(torch::zeros({1}, torch::kLong));
    run("gathering the validation figures", [&] { group_->allgather(lengths, length)->wait(); });
    int64_t longest = 1;
    for (const at::Tensor& n : lengths[0]) longest = std::max(longest, n.item<int64_t>());
    std::vector<at::Tensor> padded{torch::zeros({longest}, torch::kDouble)};
    std::copy(values.begin(), values.end(), padded[0].data_ptr<double>());
    std::vector<std::vector<at::Tensor>> gathered(1);
    for (size_t r = 0; r < world; ++r)
      gathered[0].push_back(torch::zeros({longest}, torch::kDouble));
    run("gathering the validation figures", [&] { group_->allgather(gathered, padded)->wait(); });
    std::vector<double> all;
    for (size_t r = 0; r < world; ++r) {
      const double* data = gathered[0][r].data_ptr<double>();
      all.insert(all.end(), data, data + lengths[0][r].item<int64_t>());
    }
    return all;
  }

  bool any(bool local) override {
    std::vector<at::Tensor> flag{torch::tensor({local ? int64_t{1} : int64_t{0}})};
    run("agreeing whether to stop", [&] { group_->allreduce(flag)->wait(); });
    return flag.front().item<int64_t>() > 0;
  }

 private:
  using Clock = std::chrono::steady_clock;

  static std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

  // Parameter `i`'s gradient of this step, into its bucket; the buckets that are full are
  // all-reduced, in bucket order (every rank must issue the same collective calls in the same
  // order).
  void take_gradient(size_t i, const at::Tensor& gradient) {
    Slot& slot = slots_[i];
    Bucket& bucket = buckets_[slot.bucket];
    bucket.flat.narrow(0, slot.offset, gradient.numel()).copy_(gradient.reshape({-1}));
    slot.taken = true;
    ++bucket.taken;
    while (launched_ < buckets_.size() &&
           buckets_[launched_].taken == buckets_[launched_].members.size()) {
      std::vector<at::Tensor> flat{buckets_[launched_].flat};
      buckets_[launched_++].work = group_->allreduce(flat);
    }
  }

  // Waits through the store, up to the join timeout, until every rank has reached this point (the
  // `barriers_`-th one named `what`): the ranks start and load their data at different speeds.
  void wait_for_everyone(const std::string& what) {
    const std::string prefix = fmt::format("{}/{}/", what, barriers_++);
    store_->set(prefix + std::to_string(environment_.rank), std::vector<uint8_t>{1});
    std::vector<std::string> keys;
    for (int rank = 0; rank < environment_.world_size; ++rank)
      keys.push_back(prefix + std::to_string(rank));
    store_->wait(keys, join_timeout_);
  }

  // Runs a collective step that waits up to `timeout`; a peer that died, hung or stopped ends this
  // process with a message instead of an exception from deep inside Gloo.
  template <typename Step>
  void run(const char* what, Step&& step, std::chrono::seconds timeout) {
    try {
      step();
    } catch (const std::exception& error) {
      fail(
          "rank {} of {} lost the data-parallel run while {}: {}. Another rank has died, hung for "
          "more than {} s{} or was stopped: see its output. Continue with --resume once every "
          "rank can run",
          environment_.rank, environment_.world_size, what, first_line(error.what()),
          timeout.count(), timeout == timeout_ ? " (--dist-timeout)" : "");
    }
  }
  template <typename Step>
  void run(const char* what, Step&& step) {
    run(what, std::forward<Step>(step), timeout_);
  }

  DistributedEnvironment environment_;
  std::chrono::seconds timeout_;       // of a step's collective calls
  std::chrono::seconds join_timeout_;  // of joining, and of the barriers before training
  c10::intrusive_ptr<c10d::Store> store_;
  int64_t barriers_ = 0;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;

  // The trained parameters (watch), where each one's gradient goes, and the buckets.
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;  // in the bucket's flat tensor
    bool taken = false;  // this step's gradient is in the bucket
  };
  struct Bucket {
    std::vector<size_t> members;  // parameter indices
    int64_t bytes = 0;
    at::Tensor flat;   // their gradients end to end, all-reduced in place
    size_t taken = 0;  // members whose gradient of this step is in
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<at::Tensor> parameters_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  size_t launched_ = 0;  // buckets [0, launched_) have their all-reduce of this step started

  int64_t steps_ = 0;
  int64_t bytes_ = 0;
  double communication_seconds_ = 0;
};

}  // namespace

std::unique_ptr<DataParallel> join_data_parallel(const DistributedEnvironment& environment,
                                                 std::chrono::seconds timeout) {
  return std::make_unique<GlooDataParallel>(environment, timeout);
}

}  // namespace garmentnet
