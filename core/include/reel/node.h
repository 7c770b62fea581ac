#pragma once
// The node interface: the contract between a plugin's node and the executor.
//
// Lifecycle, in order (docs/architecture.md tells the whole story):
//   configure -> estimate -> [load -> produce/process ... -> finish] -> unload
// load is lazy (just before the first produce/process/finish), unload comes right after finish
// (progressive unloading) and, when ANY node of the run fails in any phase, on EVERY node.
// One Node object serves one run; the executor creates a fresh one per run.

#include <reel/frame.h>
#include <reel/params.h>
#include <reel/stream.h>

#include <atomic>
#include <functional>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace reel {

// What configure gets.
struct NodeConfig {
  std::string_view node_id;
  const Params& params;                   // validated against the type's schema, defaults filled
  // One per declared input port, in declaration order; an optional port left unconnected has a
  // default StreamDesc (width 0, no frame count).
  const std::vector<StreamDesc>& inputs;
  bool overwrite_outputs = false;         // sinks: the user allowed replacing existing files
  // `reel plan`: nothing will load or run. Sinks check what they can without touching the file
  // system's future (an output folder may not exist yet while a job is being planned).
  bool dry_run = false;
};

// Expected memory of one node on one device ("cpu", "cuda:0").
struct MemoryEstimate {
  std::string device = "cpu";
  std::uint64_t weight_bytes = 0;   // models and other resources held from load to unload
  std::uint64_t working_bytes = 0;  // transient memory while processing one frame
};

// Collects the frames one produce/process/finish call emits. The executor hands them on only
// after the call returns, in order; if the call throws they are dropped. Output frame indices are
// assigned by the executor (0, 1, 2... per output port), so nodes need not track them.
class Emitter {
 public:
  // Where progress() reports go: the stage, steps done, steps in all.
  using ProgressSink = std::function<void(std::string_view stage, std::int64_t done, std::int64_t total)>;

  // stop_flag: set when the run stops (another node failed); cancel_flag: the user's cancel
  // request, seen here at once rather than when the executor next looks.
  explicit Emitter(const std::atomic<bool>* stop_flag = nullptr, ProgressSink progress = {},
                   const std::atomic<bool>* cancel_flag = nullptr)
      : stop_(stop_flag), cancel_(cancel_flag), progress_(std::move(progress)) {}

  void emit(at::Tensor image, int output_port = 0);
  void emit(Frame frame, int output_port = 0);
  // True once the run is being stopped (another node failed, or the user cancelled). Long work
  // inside one call should check it and throw CancelledError.
  bool cancelled() const noexcept {
    return (stop_ != nullptr && stop_->load(std::memory_order_relaxed)) ||
           (cancel_ != nullptr && cancel_->load(std::memory_order_relaxed));
  }
  // Progress of long work inside one call ("denoising", 12, 50), for the CLI and the worker's
  // events. Cheap; call it once per step.
  void progress(std::string_view stage, std::int64_t done, std::int64_t total) const {
    if (progress_) progress_(stage, done, total);
  }

  std::vector<std::pair<int, Frame>>& frames() noexcept { return frames_; }
  void clear() noexcept { frames_.clear(); }

 private:
  const std::atomic<bool>* stop_;
  const std::atomic<bool>* cancel_;
  ProgressSink progress_;
  std::vector<std::pair<int, Frame>> frames_;
};

class Node {
 public:
  virtual ~Node();

  // Called once, before anything runs, in topological order. Validate what the schema cannot
  // (combinations, input shapes) and return one StreamDesc per declared output port.
  // No models, no large allocations. May throw InvalidParamError / Error; the run then stops
  // before any node loads, and every node configured so far is unloaded.
  virtual std::vector<StreamDesc> configure(const NodeConfig& config) = 0;

  // Called after configure. Expected bytes per device, for `reel plan` and the memory budget.
  // Must not throw (a throw is caught and logged as a plugin bug).
  virtual std::vector<MemoryEstimate> estimate() const { return {}; }

  // Called once, lazily, just before the node's first produce/process/finish. Acquire models
  // and resources. May throw; on failure leave nothing behind (unload will still be called).
  virtual void load() {}

  // Emit the next frame(s) and return true while more will come, false when done. Called
  // repeatedly, never concurrently: on a source (no input port connected) from the start; on a
  // node with connected inputs once they have all ended and every process() call has returned,
  // before finish(): how a node that needs all of its input first (a generator conditioned on a
  // video) still hands its output on piece by piece. The default produces nothing.
  virtual bool produce(Emitter& out);

  // Nodes with inputs. Called once per input frame, in stream order per port. A node type that
  // declares concurrency > 1 gets concurrent calls and must be thread-safe; the executor still
  // delivers its outputs in input order. May throw; the run then fails (see degrade).
  virtual void process(const Frame& frame, int input_port, Emitter& out);

  // Called once, after every input has ended (for sources: after produce returned false). Flush
  // what is held back (an interpolator's last frame, an encoder's trailer, a sink's rename).
  virtual void finish(Emitter& out) { (void)out; }

  // Release everything load acquired. Called right after finish, and on every node when the run
  // fails. Must not throw and must be idempotent and legal in every state: never loaded, half
  // loaded, mid-stream, already unloaded.
  // Deliberately not declared noexcept, nor are degrade and discard_outputs: a throw from a
  // plugin's cleanup must be caught and logged by the executor as a plugin bug, not terminate the
  // long-lived process that hosts it.
  virtual void unload() = 0;

  // Called after this node ran out of memory, with caches already freed. Lower your own settings
  // (halve the tile, switch to a slower path) and return true if retrying the same frame makes
  // sense. The executor retries a bounded number of times. Must not throw. With concurrency > 1
  // it may be called while other process() calls of this node run, and more than once.
  virtual bool degrade() { return false; }

  // Called on every node when the run fails or is cancelled, before unload: remove partial
  // outputs (temporary files) so nothing half-written remains.
  virtual void discard_outputs() {}

  // What this node counted that a user should see in the run report, beyond frames in and out
  // (an interpolator's scene cuts, say): names in snake_case, read once the node has finished or
  // failed. Must not throw.
  virtual std::vector<std::pair<std::string, std::int64_t>> counters() const { return {}; }

  // What this node settled while running that a user needs to repeat or understand the run (the
  // seed it drew, the model variant it found): names in snake_case, values as text. Read with
  // counters(). Must not throw.
  virtual std::vector<std::pair<std::string, std::string>> facts() const { return {}; }

  // The files this node wrote and committed, as the user named them (a sink's output, each file
  // of an image sequence). Read with counters(); the run report lists them with their sizes and
  // the CLI names them on success. Must not throw.
  virtual std::vector<std::string> written_files() const { return {}; }
};

}  // namespace reel
