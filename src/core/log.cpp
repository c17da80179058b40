#include "core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "core/error.h"

namespace garmentnet {

void init_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("garmentnet");
  logger->set_pattern("%^[%L]%$ %v");
  spdlog::set_default_logger(logger);
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    fail("unknown log level '{}': use debug, info, warn or error", level);
  }
  spdlog::set_level(parsed);
}

LogFile::LogFile(const std::filesystem::path& path)
    : sink_(std::make_shared<spdlog::sinks::basic_file_sink_mt>(path.string())) {
  sink_->set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] %v");
  auto logger = spdlog::default_logger();
  logger->sinks().push_back(sink_);
  logger->flush_on(spdlog::level::trace);
}

LogFile::~LogFile() {
  auto& sinks = spdlog::default_logger()->sinks();
  std::erase(sinks, sink_);
}

}  // namespace garmentnet
