#pragma once
// Runs a validated graph: configure -> plan -> stream frames -> report. The error path (unload
// every node, free caches, discard partial outputs, classify) lives in executor.cpp.

#include <reel/node.h>
#include <reel/runtime/failure.h>
#include <reel/runtime/graph.h>
#include <reel/runtime/memory.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace reel {

enum class NodeState { created, configured, loaded, finished, unloaded, failed };
const char* to_string(NodeState state) noexcept;

// Called from worker threads; implementations must be thread-safe and quick.
class RunObserver {
 public:
  virtual ~RunObserver();
  virtual void on_node_state(const std::string& node_id, NodeState state) { (void)node_id, (void)state; }
  // frames_out so far and the expected total (when the stream length is known).
  virtual void on_progress(const std::string& node_id, std::int64_t frames_out, std::optional<std::int64_t> expected) {
    (void)node_id, (void)frames_out, (void)expected;
  }
  // A node's progress inside one long call (Emitter::progress): "denoising" step 12 of 50.
  virtual void on_stage(const std::string& node_id, const std::string& stage, std::int64_t done, std::int64_t total) {
    (void)node_id, (void)stage, (void)done, (void)total;
  }
};

// Which node code is running, kept up to date for a supervisor that outlives a crash (`reel run
// --isolate` keeps it in memory shared with the parent). The executor calls enter() before every
// call into a node (configure, load, produce, process, finish, unload) and leave() after it, from
// any worker thread: implementations must be cheap, thread-safe and never throw.
class CallRecorder {
 public:
  virtual ~CallRecorder();
  // Once per run, before any call: the nodes by index (topological order).
  virtual void nodes(const std::vector<std::string>& ids, const std::vector<std::string>& types,
                     const std::vector<std::string>& plugins) noexcept = 0;
  virtual void enter(int node, Phase phase, std::optional<std::int64_t> frame) noexcept = 0;
  virtual void leave(int node) noexcept = 0;
  // A call into `node` has not returned within its time limit and a grace period after it (as
  // long again, 1 to 60 s): it is hung, and only ending the process stops it. Called once, from the
  // executor's monitor thread. By default nothing happens: the run waits for the call.
  virtual void hung(int node) noexcept { (void)node; }
};

struct RunOptions {
  bool overwrite_outputs = false;
  std::size_t edge_capacity = 4;               // frames queued per edge before the producer waits
  // Worker threads; 0: as many as the graph's nodes can use at once (their concurrency summed), so
  // a node that waits (on a GPU, on I/O) never holds up the others. More than the cores is fine.
  int threads = 0;
  int torch_threads = 0;  // libtorch intra-op threads; 0: cores / min(threads, cores), at least 1
  int max_oom_retries = 3;                     // degrade-and-retry attempts per node after out of memory
  // Time limits in seconds, 0: none. A node's: the longest one call into it (a frame, a model
  // load) may take, for nodes without their own "timeout" in the graph. The run's: for a graph
  // without its own "timeout". On expiry the run fails with ErrorKind::timeout and is cancelled.
  double node_timeout_s = 0;
  double run_timeout_s = 0;
  std::optional<std::uint64_t> memory_budget;  // refuse to run when estimates exceed it
  RunObserver* observer = nullptr;
  const std::atomic<bool>* cancel = nullptr;  // set by a signal handler or a worker
  CallRecorder* recorder = nullptr;
};

struct NodeReport {
  std::string id, type, plugin;
  NodeState state = NodeState::created;
  std::vector<StreamDesc> outputs;
  std::vector<MemoryEstimate> estimate;
  std::int64_t frames_in = 0, frames_out = 0;
  double load_seconds = 0, busy_seconds = 0;
  std::int64_t rss_after_load_bytes = 0;  // host RSS growth across load (what the model took)
  int oom_retries = 0;
  std::vector<std::pair<std::string, std::int64_t>> counters;  // the node's own (Node::counters)
  std::vector<std::pair<std::string, std::string>> facts;       // the node's own (Node::facts)
  std::string cleanup_error;  // an unload/discard that threw (a plugin bug), if any
};

struct EdgeReport {
  std::string from, to;              // "node.port"
  std::optional<StreamDesc> stream;  // negotiated at configure; empty if it never got there
  std::size_t capacity = 0;
  std::size_t max_queued = 0;  // high-water mark of frames waiting on the edge
  std::int64_t frames = 0;
};

// A file a sink wrote and committed.
struct WrittenFile {
  std::string node, path;
  std::uint64_t bytes = 0;
};

struct RunResult {
  std::string graph_file;
  std::string graph_fingerprint;       // of the effective graph (graph_fingerprint())
  std::vector<std::string> overrides;  // the --set assignments the graph ran with
  std::optional<Failure> failure;  // empty: the run succeeded
  std::vector<NodeReport> nodes;   // topological order
  std::vector<EdgeReport> edges;
  std::vector<WrittenFile> outputs;  // what the run left behind (nothing after a failure)
  MemorySnapshot memory_before, memory_after;
  std::uint64_t peak_rss_bytes = 0;
  double seconds = 0;
  std::string started_at;  // ISO 8601, UTC
  int threads = 0, torch_threads = 0;  // what frames were streamed with; 0 when none were

  bool ok() const noexcept { return !failure.has_value(); }
  bool cancelled() const noexcept { return failure && failure->kind == ErrorKind::cancelled; }
};

// Configures every node and collects estimates, without loading anything. On failure the
// result's failure is set (and every configured node was unloaded).
RunResult plan_graph(const GraphSpec& graph, const PluginCatalog& catalog, const RunOptions& options);

// Validates, configures, runs. Never throws: every failure is in the result, and after it every
// node was unloaded, caches were freed and partial outputs removed.
RunResult run_graph(const GraphSpec& graph, const PluginCatalog& catalog, const RunOptions& options);

}  // namespace reel
