// Logging: spdlog, to stderr, optionally also to a file (e.g. a run directory's train.log).
#pragma once

#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>

namespace garmentnet {

// Sets the global level ("debug", "info", "warn", "error") and the stderr pattern.
void init_logging(const std::string& level);

// While alive, also writes every log line to `path` (appending, flushed line by line so a killed
// run keeps its log). Runs in one process (e.g. `pretrain --compare-on`) each get their own file.
class LogFile {
 public:
  explicit LogFile(const std::filesystem::path& path);
  ~LogFile();
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

 private:
  std::shared_ptr<spdlog::sinks::sink> sink_;
};

}  // namespace garmentnet
