#pragma once
// What `reel run` and `reel worker` print while graphs run: progress, and each run's outcome.

#include <reel/runtime/executor.h>

#include <memory>

namespace reel::host {

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
