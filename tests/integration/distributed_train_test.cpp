// Data-parallel training as users start it: `train --nproc 2` follows the loss curve of one
// process with twice the batch; torchrun --no_python works (the PyTorchJob environment:
// deploy_recipes_test.cpp); a rank killed or hung makes the other stop with a message within the
// timeout, Ctrl-C stops every rank, and --resume continues the run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <thread>

#include "core/atomic_file.h"
#include "predict_fixture.h"

namespace garmentnet::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Deterministic training flags: a frozen backbone (its features cached, so no batch norm sees
// a batch), no augmentation, no dropout; every row trains (validation on the test split), so
// 2 ranks × 32 rows make the batches of 1 × 64, but for the last of each epoch: 297 rows are padded
// to an even count by repeating one (DistributedSampler's semantics).
std::string exact_flags(const fs::path& out, int epochs) {
  return "train --data " + shell_quote(tiny_dataset()) + " --validation " +
         shell_quote(tiny_dataset() / "test_labels.parquet") + " --out " + shell_quote(out) +
         " --backbone small_cnn --transfer frozen --image-size 32 --augment none "
         "--dropout 0 --warmup-epochs 0 --no-report --seed 3 --epochs " +
         std::to_string(epochs);
}

// A figure of every epoch in metrics.json: `split` ("train", "val") and `name` ("loss", "score").
std::vector<double> figures(const fs::path& run, const std::string& split,
                            const std::string& name) {
  std::vector<double> values;
  for (const auto& epoch : json::parse(read_file(run / "metrics.json")))
    values.push_back(epoch[split][name].get<double>());
  return values;
}

TEST(DistributedTrain, TwoRanksOfBatch32FollowOneProcessOfBatch64) {
  TempDir dir;
  const auto one = run_garmentnet(exact_flags(dir / "one", 3) + " --batch-size 64 --threads 2");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const auto two =
      run_garmentnet(exact_flags(dir / "two", 3) + " --batch-size 32 --nproc 2 --threads 1");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("rank 0 of 2 joined"), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("MB of gradients all-reduced per step"), std::string::npos)
      << two.output;

  // The same batches (one row repeated in each epoch's last), the mean gradient summed in another
  // order: 1e-7 relative measured, 1e-5 allowed. The validation figures come from the ranks'
  // slices of the validation rows, gathered.
  for (const auto& [split, name] :
       {std::pair{"train", "loss"}, {"val", "loss"}, {"val", "score"}}) {
    const auto expected = figures(dir / "one", split, name);
    const auto actual = figures(dir / "two", split, name);
    ASSERT_EQ(expected.size(), 3u);
    ASSERT_EQ(actual.size(), 3u);
    for (size_t e = 0; e < 3; ++e)
      EXPECT_NEAR(actual[e], expected[e], 1e-5 * expected[e])
          << split << " " << name << ", epoch " << e + 1;
  }
  const auto expected = figures(dir / "one", "val", "loss");
  EXPECT_GT(expected.front(), expected.back());  // it learned something
  EXPECT_TRUE(fs::exists(dir / "two" / "model.gnm"));
}

TEST(DistributedTrain, RunsUnderTorchrun) {
  TempDir dir;
  if (!fs::exists("/usr/bin/torchrun")) GTEST_SKIP() << "no /usr/bin/torchrun";
  // torchrun hosts the store in its agent (TORCHELASTIC_USE_AGENT_STORE=True).
  const auto torchrun = run_shell(
      "/usr/bin/torchrun --no_python --redirects 1 --tee 1 --nnodes 1 "
      "--nproc_per_node 2 --master_port 29733 " +
      std::string(GARMENTNET_BINARY) + " " + exact_flags(dir / "torchrun", 1) +
      " --batch-size 32 --threads 1");
  EXPECT_EQ(torchrun.exit_code, 0) << torchrun.output;
  EXPECT_TRUE(fs::exists(dir / "torchrun" / "model.gnm")) << torchrun.output;
}

// A command started in the background, with its output in `log`.
pid_t start(const std::string& arguments, const fs::path& log) {
  const std::string command = "exec " + std::string(GARMENTNET_BINARY) + " " + arguments + " > " +
                              shell_quote(log) + " 2>&1";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// The exit code of `pid`, or nullopt if it still runs after `limit`.
std::optional<int> wait_for(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return std::nullopt;
}

// The rank `rank` started by the launcher `launcher` (its child whose environment says so).
pid_t rank_process(pid_t launcher, int rank) {
  std::ifstream children("/proc/" + std::to_string(launcher) + "/task/" + std::to_string(launcher) +
                         "/children");
  pid_t child = 0;
  while (children >> child) {
    const std::string environment = read_file("/proc/" + std::to_string(child) + "/environ");
    if (environment.find(std::string("RANK=") + std::to_string(rank) + '\0') == 0 ||
        environment.find(std::string(1, '\0') + "RANK=" + std::to_string(rank) + '\0') !=
            std::string::npos)
      return child;
  }
  return 0;
}

// Epochs the run in `run` has finished (metrics.csv rows).
size_t finished_epochs(const fs::path& run) {
  std::error_code error;
  if (!fs::exists(run / "metrics.csv", error)) return 0;
  const std::string text = read_file(run / "metrics.csv");
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) - 1;
}

// Flags of a 2-rank run long enough to be interrupted (200 epochs), in `dir`/run.
std::string long_run_flags(const fs::path& dir) {
  return "train --data " + shell_quote(tiny_dataset()) + " --out " + shell_quote(dir / "run") +
         " --backbone small_cnn --image-size 32 --batch-size 16 --epochs 200 --patience 0 "
         "--no-report --nproc 2 --threads 1 --dist-timeout 5";
}

// What became of a run interrupted by interrupt_run.
struct Interrupted {
  int exit_code = -1;  // the launcher's
  std::string log;
  Clock::duration stopping_time{};  // from the signal to the launcher's end
  pid_t rank_1 = 0;
};

// Starts `flags` (output in `dir`/log), and once an epoch has finished sends `signal` to rank 1,
// or to the launcher when `to_launcher`; fills `result` once the launcher has ended (within 60 s).
void interrupt_run(const std::string& flags, const fs::path& dir, int signal, bool to_launcher,
                   Interrupted& result) {
  const pid_t launcher = start(flags, dir / "log");
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (finished_epochs(dir / "run") < 1 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_GE(finished_epochs(dir / "run"), 1u) << read_file(dir / "log");
  result.rank_1 = rank_process(launcher, 1);
  ASSERT_GT(result.rank_1, 0) << "rank 1 not found";
  ::kill(to_launcher ? launcher : result.rank_1, signal);
  const auto signalled = Clock::now();
  const auto exit_code = wait_for(launcher, std::chrono::seconds(60));
  result.log = read_file(dir / "log");
  ASSERT_TRUE(exit_code.has_value()) << "the launcher still runs\n" << result.log;
  result.exit_code = *exit_code;
  result.stopping_time = Clock::now() - signalled;
}

// --resume of the interrupted run `flags` on `ranks` processes finishes one more epoch.
void expect_resume_finishes_an_epoch(const std::string& flags, const fs::path& dir, int ranks) {
  const size_t done = finished_epochs(dir / "run");
  std::string resume = std::regex_replace(flags, std::regex("--epochs 200"),
                                          "--epochs " + std::to_string(done + 1)) +
                       " --resume";
  resume = std::regex_replace(resume, std::regex("--nproc 2"), "--nproc " + std::to_string(ranks));
  const auto resumed = run_garmentnet(resume);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(finished_epochs(dir / "run"), done + 1) << resumed.output;
}

void expect_lost_rank(const std::string& how, int signal) {
  TempDir dir;
  const std::string flags = long_run_flags(dir.path());
  Interrupted run;
  ASSERT_NO_FATAL_FAILURE(interrupt_run(flags, dir.path(), signal, false, run)) << how;
  EXPECT_NE(run.exit_code, 0) << run.log;
  EXPECT_NE(run.log.find("lost the data-parallel run"), std::string::npos) << how << "\n"
                                                                           << run.log;
  EXPECT_LT(run.stopping_time, std::chrono::seconds(30)) << how;
  // The run continues from its last finished epoch, with the same number of ranks.
  expect_resume_finishes_an_epoch(flags, dir.path(), 2);
}

TEST(DistributedTrain, AKilledRankStopsTheOtherWithAMessageAndResumeContinues) {
  expect_lost_rank("killed", SIGKILL);
}

TEST(DistributedTrain, AHungRankStopsTheOtherWithinTheTimeout) {
  expect_lost_rank("hung", SIGSTOP);
}

// Ctrl-C on `train --nproc 2` reaches both ranks, which stop after the same step: exit code 0, the
// run marked stopped, and it resumes on one process (another world size).
TEST(DistributedTrain, CtrlCOnTheLauncherStopsEveryRankAndTheRunResumesOnOneProcess) {
  TempDir dir;
  const std::string flags = long_run_flags(dir.path());
  Interrupted run;
  ASSERT_NO_FATAL_FAILURE(interrupt_run(flags, dir.path(), SIGINT, true, run));
  EXPECT_EQ(run.exit_code, 0) << run.log;
  EXPECT_NE(run.log.find("stopped by signal"), std::string::npos) << run.log;
  EXPECT_EQ(run.log.find("lost the data-parallel run"), std::string::npos) << run.log;
  EXPECT_NE(::kill(run.rank_1, 0), 0) << "rank 1 still runs";
  EXPECT_EQ(json::parse(read_file(dir / "run" / "status.json"))["status"], "stopped");
  expect_resume_finishes_an_epoch(flags, dir.path(), 1);
}

}  // namespace
}  // namespace garmentnet::testing
