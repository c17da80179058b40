// Logging: spdlog, to stderr, optionally also to a file (e.g. a run directory's train.log).
#pragma once

#include <spdlog/spdlog.h>

#include <filesystem>

namespace garmentnet {

// Sets the global level ("debug", "info", "warn", "error") and the stderr pattern.
void init_logging(const std::string& level);

// Also writes every log line to `path` from now on (appending).
void add_log_file(const std::filesystem::path& path);

}  // namespace garmentnet
