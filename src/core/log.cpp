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

void add_log_file(const std::filesystem::path& path) {
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path.string());
  sink->set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] %v");
  spdlog::default_logger()->sinks().push_back(sink);
}

}  // namespace garmentnet
