#include "test_support.h"

#include <ATen/Parallel.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <random>
#include <thread>

#include "data/fashion_mnist.h"
#include "train/trainer.h"

namespace garmentnet::testing {
namespace {

// LibTorch's threads are the process's, set by each command at its start; the test programs set
// them here, once, as the commands would.
[[maybe_unused]] const bool model_threads_set = [] {
  at::set_num_threads(2);
  return true;
}();

}  // namespace

TempDir::TempDir() {
  std::random_device random;
  path_ = std::filesystem::temp_directory_path() /
          ("garmentnet-test-" + std::to_string(random()) + std::to_string(random()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

const std::filesystem::path& tiny_dataset() {
  static TempDir dir;
  static const std::filesystem::path data = [] {
    FashionMnistOptions options;
    options.out_dir = dir / "garments";
    options.image_size = 32;
    options.train_size = 300;
    options.test_size = 60;
    options.source_size = 200;
    make_fashion_mnist_dataset(options);
    return options.out_dir;
  }();
  return data;
}

TrainOptions quick_train_options(const std::filesystem::path& out, int epochs) {
  TrainOptions options;
  options.data_dir = tiny_dataset();
  options.out_dir = out;
  options.image_size = 32;
  options.epochs = epochs;
  options.batch_size = 32;
  options.transfer = TransferMode::Scratch;
  options.warmup_epochs = 0;
  options.patience = 0;
  options.report = false;
  return options;
}

TrainingResources& training_resources() {
  static TrainingResources resources(2);
  return resources;
}

const std::filesystem::path& tiny_model() {
  static TempDir dir;
  static const std::filesystem::path model =
      train_model(quick_train_options(dir / "run", 1), training_resources()).model_path;
  return model;
}

CommandResult run_garmentnet(const std::string& arguments) {
  return run_shell(std::string(GARMENTNET_BINARY) + " " + arguments);
}

pid_t start_garmentnet(const std::string& arguments) {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string command =
        "exec " + std::string(GARMENTNET_BINARY) + " " + arguments + " >/dev/null 2>&1";
    execl("/bin/sh", "sh", "-c", command.c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

bool wait_until(const std::function<bool()>& condition) {
  for (int i = 0; i < 1200; ++i) {
    try {
      if (condition()) return true;
    } catch (...) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

CommandResult run_shell(const std::string& shell_command) {
  const std::string command = shell_command + " 2>&1";
  CommandResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  size_t read = 0;
  while ((read = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    result.output.append(buffer.data(), read);
  }
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace garmentnet::testing
