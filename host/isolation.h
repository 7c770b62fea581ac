#pragma once
// `reel run --isolate`: each graph runs in a child process (reel-engine again, same arguments), so
// a plugin that crashes the process (a segfault, abort(), std::terminate, exit()) takes down only
// that graph. The child keeps a record in memory shared with the parent: which node code is
// running (node, phase, frame) and which temporary output files exist. When the child dies before
// it says it finished, the parent names the node from that record, removes those files, writes
// the graph's report and goes on with the next graph.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace reel::host {

struct RunArgs;

// The child's side. When this process is an isolated child (REEL_ISOLATED_CHILD is set), narrows
// `args` to its one graph and report, attaches the shared record as the run's CallRecorder and
// output journal, and installs the fatal-signal handler (a backtrace on stderr, then the default
// action). Returns false in any other process.
bool become_isolated_child(RunArgs& args);
// Marks the record finished: the child's report is written and it is exiting on purpose.
void isolated_child_finished() noexcept;

// The parent's side: runs graph `index` of `args` in a child. Returns its report (a synthesized
// one after a crash) and sets `exit_code`.
nlohmann::json run_in_child(const RunArgs& args, std::size_t index, int& exit_code);

}  // namespace reel::host
