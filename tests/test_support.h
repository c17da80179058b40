// Helpers shared by the tests: temporary folders, running the garmentnet binary.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <string>

#include "core/error.h"
#include "train/trainer.h"

namespace garmentnet::testing {

// A fresh folder under the system temp dir, removed when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// A small built-in dataset (32 px; 300 training rows, 60 test rows, a 200-row source split),
// made once per test process.
const std::filesystem::path& tiny_dataset();

// Quick training settings on tiny_dataset(): small_cnn from scratch at 32 px, `epochs` epochs,
// no warm-up, no early stopping, no report; the run goes to `out`.
TrainOptions quick_train_options(const std::filesystem::path& out, int epochs);

// Decoding threads and image / feature caches shared by the trainings of a test process.
TrainingResources& training_resources();

// A model file trained for one epoch on tiny_dataset() (small_cnn from scratch), made once per
// test process.
const std::filesystem::path& tiny_model();

// The message of the InputError that `function` throws, or "no error".
template <typename F>
std::string error_of(F&& function) {
  try {
    function();
  } catch (const InputError& error) {
    return error.what();
  }
  return "no error";
}

// Runs the built garmentnet executable with `arguments` (a shell-quoted string).
CommandResult run_garmentnet(const std::string& arguments);
// Runs a shell command line (stdout and stderr together).
CommandResult run_shell(const std::string& command);
// Starts the built garmentnet executable with `arguments` in the background, its output dropped;
// returns its process id (for kill and waitpid).
pid_t start_garmentnet(const std::string& arguments);
// Polls `condition` every 100 ms until it holds (true) or 120 s pass (false). Exceptions thrown
// by `condition` (a file being written) count as not yet.
bool wait_until(const std::function<bool()>& condition);

}  // namespace garmentnet::testing
