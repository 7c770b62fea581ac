#pragma once
// Logging for plugins: lines go to the host's log (level, format and destination set by the
// user with --log-level/--log-format/--log-file), never straight to the terminal.

#include <string_view>

namespace reel {

enum class LogLevel { debug, info, warning, error };

void log(LogLevel level, std::string_view message);

}  // namespace reel
