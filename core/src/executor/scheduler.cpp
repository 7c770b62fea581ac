// Streaming on a oneTBB flow graph.
//
// Every reel node gets one tbb::flow::function_node whose concurrency is the node type's. Its
// messages carry no data: they are activations ("look for work"). Frames travel in our own
// bounded Edge queues instead of flow-graph buffers, because flow-graph edges buffer without
// bound (a limiter_node only bounds what its predecessor does not queue). A body never blocks:
// when a node's input is empty or an output edge is full it simply returns, and the neighbour
// that changes that (a producer pushing, a consumer popping) activates it again.
#include "run_state.h"

#include <reel/runtime/memory.h>

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <spdlog/spdlog.h>
#include <tbb/flow_graph.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <sched.h>

#include <chrono>
#include <optional>
#include <thread>

namespace reel::detail {

namespace {

using Clock = std::chrono::steady_clock;

class Scheduler {
 public:
  explicit Scheduler(RunState& run) : run_(run) {
    // The graph is declared before (so destroyed after) its nodes, and every body has returned
    // by the time wait_for_all() does.
    for (auto& node : run_.nodes) {
      NodeRun* n = node.get();
      std::size_t concurrency =
          n->inputs.empty() ? 1 : static_cast<std::size_t>(std::max(1, n->type->type.concurrency));
      activations_.push_back(std::make_unique<tbb::flow::function_node<int>>(graph_, concurrency, [this, n](int) {
        activate(*n);
        return tbb::flow::continue_msg();
      }));
    }
  }

  void run() {
    for (auto& node : run_.nodes) wake(*node);
    graph_.wait_for_all();
  }

 private:
  // Queues an activation unless as many as the node can use are already queued. Coalescing keeps
  // the flow graph's own queue tiny; a wake is never lost because a body re-reads all state
  // after it starts.
  void wake(NodeRun& n) {
    int limit = n.inputs.empty() ? 1 : std::max(1, n.type->type.concurrency);
    int pending = n.pending_activations.load();
    while (pending < limit) {
      if (n.pending_activations.compare_exchange_weak(pending, pending + 1)) {
        activations_[n.index]->try_put(0);
        return;
      }
    }
  }

  // A TBB body must not throw (the flow graph would cancel and rethrow from wait_for_all):
  // anything escaping the node calls (an observer, an allocation) becomes this run's failure.
  void activate(NodeRun& n) noexcept {
    n.pending_activations.fetch_sub(1);
    try {
      c10::InferenceMode inference;  // thread-local: set in every body
      if (step(n)) wake(n);
    } catch (...) {
      Failure f = classify_exception(std::current_exception());
      attribute(f, n, Phase::run, std::nullopt);
      run_.fail(std::move(f));
    }
  }

  Emitter emitter(NodeRun& n) {
    if (!run_.options.observer) return Emitter(&run_.stopping, {}, run_.options.cancel);
    return Emitter(
        &run_.stopping,
        [this, &n](std::string_view stage, std::int64_t done, std::int64_t total) {
          run_.options.observer->on_stage(n.id, std::string(stage), done, total);
        },
        run_.options.cancel);
  }

  bool outputs_have_room(NodeRun& n) {
    for (auto& port : n.outputs)
      for (Edge* e : port) {
        std::lock_guard lock(e->mutex);
        if (e->queue.size() + static_cast<std::size_t>(n.in_flight) >= e->capacity) return false;
      }
    return true;
  }

  bool inputs_drained(NodeRun& n) {
    for (Edge* e : n.inputs) {
      std::lock_guard lock(e->mutex);
      if (!e->closed || !e->queue.empty()) return false;
    }
    return true;
  }

  // One unit of work: produce or process one frame, or finish. Returns whether it did anything
  // (then more may be possible, and the node is activated again).
  bool step(NodeRun& n) {
    if (run_.stopping) return false;
    if (run_.cancel_requested()) {
      run_.fail(cancelled_failure());
      return false;
    }
    std::unique_lock lock(n.mutex);
    if (n.finish_started) return false;
    // A source produces from the start; a node with inputs gets produce() calls once they have
    // all ended (the default produces nothing), then finish().
    const bool source = n.inputs.empty();
    const bool inputs_ended = source || inputs_drained(n);
    // A sink that got nothing would write an empty file and call it a success. Failed before it
    // loads, so it does not even open the file it will not write.
    if (inputs_ended && !source && n.outputs.empty() && n.frames_in.load() == 0) {
      n.finish_started = true;
      lock.unlock();
      Emitter unused;
      call(n, Phase::finish, std::nullopt, unused, [] {
        throw BadInputError("no frames reached it: its input stream was empty",
                            "Check the source's start and count, or the input file; nothing was written.");
      });
      return false;
    }
    if (inputs_ended && n.source_ended) {
      if (n.in_flight > 0) return false;  // the last results are still being computed
      n.finish_started = true;
      lock.unlock();
      finish(n);
      return false;
    }
    if (!outputs_have_room(n)) return false;
    if (inputs_ended) return n.in_flight == 0 && produce(n, lock);
    return process(n, lock);
  }

  bool produce(NodeRun& n, std::unique_lock<std::mutex>& lock) {
    std::uint64_t ticket = n.next_ticket++;
    ++n.in_flight;
    std::int64_t frame = n.next_output_index.empty() ? 0 : n.next_output_index[0];
    lock.unlock();
    if (!ensure_loaded(n)) return false;
    Emitter out = emitter(n);
    bool more = true;
    if (!call(n, Phase::produce, frame, out, [&] { more = n.node->produce(out); })) return false;
    lock.lock();
    if (!more) n.source_ended = true;
    commit(n, ticket, out, lock, Phase::produce);
    return true;
  }

  bool process(NodeRun& n, std::unique_lock<std::mutex>& lock) {
    Frame frame;
    Edge* from = nullptr;
    for (std::size_t k = 0; k < n.inputs.size() && !from; ++k) {
      std::size_t p = (n.next_input_port + k) % n.inputs.size();
      Edge* e = n.inputs[p];
      std::lock_guard edge_lock(e->mutex);
      if (e->queue.empty()) continue;
      frame = std::move(e->queue.front());
      e->queue.pop_front();
      from = e;
      n.next_input_port = p + 1;
    }
    if (!from) return false;
    const int port = from->consumer_port;  // the declared port, which the node knows
    std::uint64_t ticket = n.next_ticket++;
    ++n.in_flight;
    lock.unlock();
    wake(*run_.nodes[from->producer]);  // room freed on that edge
    n.frames_in.fetch_add(1);
    if (!ensure_loaded(n)) return false;
    Emitter out = emitter(n);
    if (!call(n, Phase::process, frame.index, out, [&] { n.node->process(frame, port, out); })) return false;
    lock.lock();
    commit(n, ticket, out, lock, Phase::process);
    return true;
  }

  void finish(NodeRun& n) {
    if (!ensure_loaded(n)) return;
    Emitter out = emitter(n);
    if (!call(n, Phase::finish, std::nullopt, out, [&] { n.node->finish(out); })) return;
    {
      std::unique_lock lock(n.mutex);
      std::uint64_t ticket = n.next_ticket++;
      ++n.in_flight;
      commit(n, ticket, out, lock, Phase::finish);  // releases the lock
      if (run_.stopping) return;
      // Checked before the edges close, so no consumer finishes (and commits a file) on a short
      // stream.
      for (std::size_t port = 0; port < n.output_streams.size(); ++port)
        if (const auto& promised = n.output_streams[port].frame_count;
            promised && n.next_output_index[port] != *promised) {
          fail_promise(n, static_cast<int>(port), n.next_output_index[port], "fewer than");
          return;
        }
      lock.lock();
      for (auto& port : n.outputs)
        for (Edge* e : port) {
          std::lock_guard edge_lock(e->mutex);
          e->closed = true;
        }
    }
    n.state = NodeState::finished;
    notify_state(n);
    // Progressive unloading: this node's models go now, not at the end of the run.
    unload_node(run_, n);
    release_cached_memory();
    notify_state(n);
    for (auto& port : n.outputs)
      for (Edge* e : port) wake(*run_.nodes[e->consumer]);
  }

  // A stream's frame_count is a promise the next nodes plan by (a sink sizes its file, an
  // interpolator its timeline): a node that breaks it is a plugin bug, caught where it happens.
  void fail_promise(NodeRun& n, int port, std::int64_t emitted, const char* how) {
    Failure f;
    f.kind = ErrorKind::internal;
    f.reason = "it emitted " + std::string(how) + " the " + std::to_string(*n.output_streams[port].frame_count) +
               " frames its output '" + n.type->type.outputs[port].name + "' promised at configure (" +
               std::to_string(emitted) + " so far)";
    attribute(f, n, Phase::finish, std::nullopt);
    n.state = NodeState::failed;
    run_.fail(std::move(f));
  }

  // Stores a call's frames under its ticket, then hands every consecutive completed ticket's
  // frames to the output edges. Called with the node's lock held; releases it.
  // `phase`: the call that emitted the frames, for the message when one of them is wrong.
  void commit(NodeRun& n, std::uint64_t ticket, Emitter& out, std::unique_lock<std::mutex>& lock, Phase phase) {
    n.completed.emplace(ticket, std::move(out.frames()));
    bool pushed = false;
    for (auto it = n.completed.find(n.next_commit); it != n.completed.end(); it = n.completed.find(n.next_commit)) {
      for (auto& [port, frame] : it->second) {
        if (port < 0 || port >= static_cast<int>(n.outputs.size())) {
          lock.unlock();
          Failure f;
          f.kind = ErrorKind::internal;
          f.reason =
              "the node emitted a frame on output port " + std::to_string(port) + ", which its type does not declare";
          attribute(f, n, phase, std::nullopt);
          run_.fail(std::move(f));
          return;
        }
        // Every frame is checked against the stream its node declared, here where it leaves the
        // node: a wrong one is that node's bug, not the next node's bad input.
        if (std::string wrong = frame_mismatch(frame.image, n.output_streams[port]); !wrong.empty()) {
          lock.unlock();
          Failure f;
          f.kind = ErrorKind::internal;
          f.reason = "it emitted frame " + std::to_string(n.next_output_index[port]) + " on output '" +
                     n.type->type.outputs[port].name + "' as " + wrong;
          attribute(f, n, phase, std::nullopt);
          n.state = NodeState::failed;
          run_.fail(std::move(f));
          return;
        }
        if (const auto& promised = n.output_streams[port].frame_count; promised && n.next_output_index[port] >= *promised) {
          lock.unlock();
          fail_promise(n, port, n.next_output_index[port] + 1, "more than");
          return;
        }
        frame.index = n.next_output_index[port]++;
        auto& edges = n.outputs[port];
        for (std::size_t k = 0; k < edges.size(); ++k) {
          Edge* e = edges[k];
          std::lock_guard edge_lock(e->mutex);
          e->queue.push_back(k + 1 == edges.size() ? std::move(frame) : frame);  // tensors are shared, not copied
          e->max_queued = std::max(e->max_queued, e->queue.size());
          ++e->frames;
        }
        n.frames_out.fetch_add(1);
        pushed = true;
      }
      n.completed.erase(it);
      ++n.next_commit;
      --n.in_flight;
    }
    lock.unlock();
    if (pushed)
      for (auto& port : n.outputs)
        for (Edge* e : port) wake(*run_.nodes[e->consumer]);
    if (run_.options.observer) {
      bool sink = n.outputs.empty();
      std::optional<std::int64_t> expected =
          sink ? (n.input_streams.empty() ? std::nullopt : n.input_streams[0].frame_count)
               : n.output_streams[0].frame_count;
      run_.options.observer->on_progress(n.id, sink ? n.frames_in.load() : n.frames_out.load(), expected);
    }
  }

  bool ensure_loaded(NodeRun& n) {
    if (n.loaded.load(std::memory_order_acquire)) return true;
    // Other bodies of a concurrent node wait here while one loads; after a failed load (or any
    // failure) they give up instead of loading again.
    std::lock_guard lock(n.load_mutex);
    if (n.loaded) return true;
    if (run_.stopping) return false;
    Emitter unused;
    auto start = Clock::now();
    std::uint64_t rss_before = host_rss_bytes();
    if (!call(n, Phase::load, std::nullopt, unused, [&] { n.node->load(); })) return false;
    n.load_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    n.rss_after_load_bytes = static_cast<std::int64_t>(host_rss_bytes()) - static_cast<std::int64_t>(rss_before);
    n.state = NodeState::loaded;
    n.loaded.store(true, std::memory_order_release);
    spdlog::debug("node {} loaded in {:.3f} s", n.id, n.load_seconds);
    notify_state(n);
    return true;
  }

  // Runs one lifecycle call. Out of memory in a node that can degrade: free caches, degrade,
  // retry the same call, a bounded number of times. Any other failure is recorded and stops the
  // run. Returns whether the call succeeded.
  template <typename Body>
  bool call(NodeRun& n, Phase phase, std::optional<std::int64_t> frame, Emitter& out, Body&& body) {
    for (int attempt = 0;; ++attempt) {
      auto start = Clock::now();
      try {
        out.clear();
        InNode in(run_, n, phase, frame);
        body();
        n.busy_ns.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
        return true;
      } catch (...) {
        Failure f = classify_exception(std::current_exception());
        attribute(f, n, phase, frame);
        if (f.kind == ErrorKind::out_of_memory && attempt < run_.options.max_oom_retries && !run_.stopping &&
            degrade(n)) {
          n.oom_retries.fetch_add(1);
          spdlog::warn(
              "node {} ran out of memory during {}{}; freed caches, lowered its settings, retrying "
              "(attempt {} of {})",
              n.id, to_string(phase), frame ? " of frame " + std::to_string(*frame) : std::string(), attempt + 1,
              run_.options.max_oom_retries);
          out.clear();
          release_cached_memory();
          continue;
        }
        n.state = NodeState::failed;
        run_.fail(std::move(f));
        return false;
      }
    }
  }

  bool degrade(NodeRun& n) noexcept {
    try {
      return n.node->degrade();
    } catch (...) {
      spdlog::error("node {} ({}) threw from degrade(), which must not throw: treating it as unable to degrade", n.id,
                    n.type->type.name);
      return false;
    }
  }

  void notify_state(NodeRun& n) {
    if (run_.options.observer) run_.options.observer->on_node_state(n.id, n.state.load());
  }

  RunState& run_;
  tbb::flow::graph graph_;
  std::vector<std::unique_ptr<tbb::flow::function_node<int>>> activations_;
};

}  // namespace

void stream_frames(RunState& run) {
  // A thread per activation the graph can have at once: a node waiting on a device or I/O holds
  // its thread, and with fewer threads a 4-stage pipeline of waiting stages on 2 cores ran at
  // 1.30x its ideal time (docs/benchmarks.md). More threads than that would only idle.
  int threads = run.options.threads;
  if (threads <= 0) {
    threads = 0;
    for (const auto& n : run.nodes) threads += n->inputs.empty() ? 1 : std::max(1, n->type->type.concurrency);
  }
  // libtorch's intra-op pool shares the cores with the nodes that run at once: the cores this
  // process may run on (a Slurm task, taskset or a container's cpuset binds it to some), else all.
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (cpu_set_t allowed; sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 0)
    cores = std::min(cores, CPU_COUNT(&allowed));
  const int torch_threads =
      run.options.torch_threads > 0 ? run.options.torch_threads : std::max(1, cores / std::min(threads, cores));
  if (at::get_num_threads() != torch_threads) at::set_num_threads(torch_threads);
  run.threads = threads, run.torch_threads = torch_threads;
  // More threads than cores is legitimate when nodes wait (GPU, I/O); oneTBB caps arenas at the
  // core count unless told otherwise for the duration of the run.
  std::optional<tbb::global_control> allow;
  if (threads > static_cast<int>(tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism)))
    allow.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  tbb::task_arena arena(threads);
  arena.execute([&] {
    Scheduler scheduler(run);
    scheduler.run();
  });
  if (!run.stopping) {
    // Every node must have finished: anything else means the scheduler lost a wake-up. Say so
    // rather than report a truncated output as success.
    for (auto& n : run.nodes)
      if (n->state != NodeState::unloaded) {
        Failure f;
        f.kind = ErrorKind::internal;
        f.reason = "the scheduler stopped before node " + n->id + " finished";
        attribute(f, *n, Phase::run, std::nullopt);
        run.fail(std::move(f));
        break;
      }
  }
}

}  // namespace reel::detail
