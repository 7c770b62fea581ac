#pragma once
// The process's set-up shared by every command: the log, and the cancel flag that SIGINT/SIGTERM
// set.

#include <atomic>
#include <string>

namespace reel::host {

struct LogOptions {
  std::string level = "warn";   // trace, debug, info, warn, error, off
  std::string format = "text";  // text | json
  std::string file;             // empty: stderr
};
void setup_logging(const LogOptions& options);

// First SIGINT/SIGTERM: set the flag (the run is cancelled and cleaned up). Second: exit at once.
// SIGPIPE is ignored: a closed stdout or stderr fails writes instead of killing the process.
void install_signal_handlers();
const std::atomic<bool>& cancel_flag();

}  // namespace reel::host
