#include <reel/log.h>

#include <spdlog/spdlog.h>

namespace reel {

void log(LogLevel level, std::string_view message) {
  switch (level) {
    case LogLevel::debug:
      spdlog::debug("{}", message);
      break;
    case LogLevel::info:
      spdlog::info("{}", message);
      break;
    case LogLevel::warning:
      spdlog::warn("{}", message);
      break;
    case LogLevel::error:
      spdlog::error("{}", message);
      break;
  }
}

}  // namespace reel
