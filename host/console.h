#pragma once
// Everything the host prints besides command results: log set-up, progress, run summaries,
// and the cancel flag that SIGINT/SIGTERM set.

#include <reel/runtime/executor.h>

#include <atomic>
#include <memory>
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

// Progress per node: a redrawn line on a terminal, plain lines otherwise.
class ProgressDisplay : public RunObserver {
 public:
  // Draws the final counts and ends the line, so what is printed next starts on its own line.
  virtual void end_run() = 0;
};
std::unique_ptr<ProgressDisplay> make_progress_printer(bool enabled);

// "graph: succeeded in 1.2 s ..." or the failure's user message.
void print_run_outcome(const RunResult& result);

}  // namespace reel::host
