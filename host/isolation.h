#pragma once
// `reel run --isolate` and `reel worker` (by default): each graph runs in a child process
// (reel-engine again, same arguments), so a plugin that crashes the process (a segfault, abort(),
// std::terminate, exit()) takes down only that graph. The child keeps a record in memory shared with the parent: which node code is
// running (node, phase, frame) and which temporary output files exist. When the child dies before
// it says it finished, the parent names the node from that record, removes those files, writes
// the graph's report and goes on with the next graph. With a memory limit the child runs in a
// memory cgroup of its own (memory_cgroup.h).

#include <reel/runtime/executor.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace reel::host {

// What the parent asked an isolated child to do.
struct ChildRole {
  std::size_t graph_index = 0;  // `reel run`: which of the command line's graphs
  std::string report;           // where to write the run report
  std::string job;              // `reel worker`: the job file ({id, graph, sets, overwrite}); empty for run
  int events_fd = -1;           // `reel worker`: where the job's events go, as JSON lines
};

// The child's side. When this process is an isolated child (REEL_ISOLATED_CHILD is set): maps
// the shared record, makes it `options`' CallRecorder and the output journal, installs the
// fatal-signal handler (a backtrace on stderr, then the default action) and returns its role.
// Empty in any other process.
std::optional<ChildRole> become_isolated_child(RunOptions& options);
// Marks the record finished: the child's report is written and it is exiting on purpose.
void isolated_child_finished() noexcept;

// The parent's side.
struct ChildRequest {
  std::vector<std::string> argv;  // this process's command line, which the child runs again
  std::size_t graph_index = 0;    // see ChildRole
  std::string job;
  std::string label;  // the graph, for messages and a crash report
  std::vector<std::string> sets;
  std::function<void(const std::string& line)> on_event;  // gets each event line the child sends; null: none
  const std::atomic<bool>* cancel = nullptr;             // passed on to the child as SIGTERM (as is a signal)
  std::uint64_t memory_limit = 0;  // bytes the child may use, swap included (a cgroup of its own); 0: no limit
};
// Runs the child and waits for it. Returns its run report (a synthesized one after a crash, which
// is also printed and whose temporary outputs are removed) and sets `exit_code`.
nlohmann::json run_in_child(const ChildRequest& request, int& exit_code);

}  // namespace reel::host
