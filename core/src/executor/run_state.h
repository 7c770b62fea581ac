#pragma once
// The live state of one run: nodes, the bounded edges between them, and the first failure.
// Shared by executor.cpp (lifecycle and error path) and scheduler.cpp (streaming).

#include <reel/runtime/executor.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace reel::detail {

// Frames waiting between one producer port and one consumer port. Bounded: the producer does not
// start new work while any of its output edges is full.
struct Edge {
  int producer = 0, producer_port = 0, consumer = 0, consumer_port = 0;
  std::size_t capacity = 1;

  std::mutex mutex;
  std::deque<Frame> queue;
  bool closed = false;  // the producer finished; nothing more will arrive
  std::size_t max_queued = 0;
  std::int64_t frames = 0;
};

struct NodeRun {
  int index = 0;
  std::string id;
  const RegisteredType* type = nullptr;
  const NodeSpec* spec = nullptr;
  Params params;
  std::unique_ptr<Node> node;
  std::vector<Edge*> inputs;                // per connected input port, in port order
  std::vector<std::vector<Edge*>> outputs;  // per output port (fan-out: several edges)
  std::vector<StreamDesc> input_streams, output_streams;
  std::vector<MemoryEstimate> estimate;
  std::atomic<NodeState> state{NodeState::created};

  // Time limit of one call (seconds; 0: none) and the calls now running: when each started
  // (steady clock, ns; 0: free slot), in which phase, on which frame. One slot per call the node
  // may have at once (its concurrency).
  struct CallSlot {
    std::atomic<std::int64_t> started_ns{0};
    std::atomic<int> phase{0};
    std::atomic<std::int64_t> frame{-1};
  };
  double timeout_s = 0;
  std::unique_ptr<CallSlot[]> call_slots;
  int call_slot_count = 0;

  // Scheduling state, guarded by `mutex`. Every produce/process/finish call takes a ticket;
  // results are committed to the output edges strictly in ticket order, so a node with
  // concurrency > 1 still emits in input order.
  std::mutex mutex;
  int in_flight = 0;
  std::uint64_t next_ticket = 0, next_commit = 0;
  std::map<std::uint64_t, std::vector<std::pair<int, Frame>>> completed;
  std::vector<std::int64_t> next_output_index;  // per output port
  std::size_t next_input_port = 0;              // round robin over input ports
  bool source_ended = false;  // produce() returned false (for a node with inputs: after they ended)
  bool finish_started = false;

  std::mutex load_mutex;
  std::atomic<bool> loaded{false};
  std::atomic<int> pending_activations{0};

  // Statistics for the report.
  std::atomic<std::int64_t> frames_in{0}, frames_out{0}, busy_ns{0};
  double load_seconds = 0;
  std::int64_t rss_after_load_bytes = 0;
  std::atomic<int> oom_retries{0};
  std::string cleanup_error;
};

struct RunState {
  explicit RunState(const RunOptions& o) : options(o) {}
  const RunOptions& options;
  std::vector<std::unique_ptr<NodeRun>> nodes;  // topological order
  std::vector<std::unique_ptr<Edge>> edges;

  // Set once anything failed or the run was cancelled; every step checks it and stops starting
  // new work. Also the flag nodes see through Emitter::cancelled().
  std::atomic<bool> stopping{false};
  int threads = 0, torch_threads = 0;  // set by stream_frames
  // Set once `nodes` is complete; the monitor thread reads the nodes only after.
  std::atomic<bool> nodes_ready{false};
  double run_timeout_s = 0;  // the graph's "timeout", else RunOptions::run_timeout_s

  void fail(Failure failure) {
    std::lock_guard lock(failure_mutex);
    if (!first_failure) first_failure = std::move(failure);
    stopping = true;
  }
  bool cancel_requested() const noexcept {
    return options.cancel != nullptr && options.cancel->load(std::memory_order_relaxed);
  }
  std::optional<Failure> failure() {
    std::lock_guard lock(failure_mutex);
    return first_failure;
  }

 private:
  std::mutex failure_mutex;
  std::optional<Failure> first_failure;
};

// Marks node code as running, for the run's CallRecorder (when there is one), for the life of
// this object: put around every call into a node.
class InNode {
 public:
  InNode(const RunState& run, NodeRun& node, Phase phase, std::optional<std::int64_t> frame = std::nullopt) noexcept
      : recorder_(run.options.recorder), node_(node.index) {
    if (recorder_) recorder_->enter(node_, phase, frame);
    if (node.timeout_s <= 0) return;
    const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    for (int i = 0; i < node.call_slot_count; ++i) {
      std::int64_t free = 0;
      NodeRun::CallSlot& candidate = node.call_slots[i];
      if (candidate.started_ns.compare_exchange_strong(free, now)) {
        candidate.phase = static_cast<int>(phase);
        candidate.frame = frame ? *frame : -1;
        slot_ = &candidate;
        break;
      }
    }
  }
  ~InNode() {
    if (slot_) slot_->started_ns = 0;
    if (recorder_) recorder_->leave(node_);
  }
  InNode(const InNode&) = delete;
  InNode& operator=(const InNode&) = delete;

 private:
  CallRecorder* recorder_;
  int node_;
  NodeRun::CallSlot* slot_ = nullptr;
};

// Fills where a failure happened from the node it happened in.
void attribute(Failure& failure, const NodeRun& node, Phase phase, std::optional<std::int64_t> frame);
Failure cancelled_failure();

// Streams frames through the configured nodes until every node finished or the run stopped.
// Loads lazily, unloads progressively; records failures in `run`. Never throws.
void stream_frames(RunState& run);

// Guarded call of a node's cleanup method: a throw is logged as a plugin bug and remembered on
// the node, never propagated.
void unload_node(RunState& run, NodeRun& node) noexcept;

}  // namespace reel::detail
