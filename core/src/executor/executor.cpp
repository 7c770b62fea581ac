// The run: resolve -> configure (stream negotiation) -> estimate -> budget -> stream -> clean up.
// The error path is here, in one function: unload_all_nodes() and the lines around it in
// execute(). Whatever happened before, every node is unloaded, caches are freed and partial
// outputs are discarded before a result is returned.
#include "run_state.h"

#include <reel/runtime/executor.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

namespace reel {

RunObserver::~RunObserver() = default;
CallRecorder::~CallRecorder() = default;

const char* to_string(NodeState state) noexcept {
  switch (state) {
    case NodeState::created:
      return "created";
    case NodeState::configured:
      return "configured";
    case NodeState::loaded:
      return "loaded";
    case NodeState::finished:
      return "finished";
    case NodeState::unloaded:
      return "unloaded";
    case NodeState::failed:
      return "failed";
  }
  return "created";
}

namespace detail {

void attribute(Failure& failure, const NodeRun& node, Phase phase, std::optional<std::int64_t> frame) {
  failure.node_id = node.id;
  failure.node_type = node.type->type.name;
  failure.plugin = node.type->plugin_file.filename().string();
  failure.phase = phase;
  failure.frame = frame;
}

Failure cancelled_failure() {
  Failure f;
  f.kind = ErrorKind::cancelled;
  f.reason = "the run was cancelled";
  return f;
}

void unload_node(RunState& run, NodeRun& node) noexcept {
  if (!node.node) return;
  try {
    InNode in(run, node, Phase::unload);
    node.node->unload();
  } catch (...) {
    Failure f = classify_exception(std::current_exception());
    node.cleanup_error = "unload threw: " + f.detail;
    spdlog::error("node {} ({}) threw from unload(), which must not throw; its memory may not be released: {}", node.id,
                  node.type->type.name, f.detail);
  }
  node.state = NodeState::unloaded;
}

namespace {

// Host RSS high-water mark of the run, and the cancellation watch for long calls: a node busy
// inside one process() call learns of a cancel through Emitter::cancelled() because this thread
// turns the request into run.stopping.
class RunMonitor {
 public:
  explicit RunMonitor(RunState& run) : run_(run), peak_(host_rss_bytes()) {
    // Resetting the kernel's high-water mark makes the peak exact, even for allocations that
    // live shorter than one sampling period (a model loaded by a node that fails at once).
    std::ofstream reset("/proc/self/clear_refs");
    reset << "5" << std::flush;
    exact_peak_ = reset.good();
    thread_ = std::thread([this] {
      std::unique_lock lock(mutex_);
      while (!done_) {
        peak_ = std::max<std::uint64_t>(peak_, host_rss_bytes());
        if (run_.cancel_requested() && !run_.stopping) run_.fail(cancelled_failure());
        check_time_limits();
        wake_.wait_for(lock, std::chrono::milliseconds(20));
      }
    });
  }
  ~RunMonitor() { stop(); }
  std::uint64_t stop() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    peak_ = std::max<std::uint64_t>(peak_, host_rss_bytes());
    if (exact_peak_) peak_ = std::max(peak_, kernel_peak_rss());
    return peak_;
  }

 private:
  using Clock = std::chrono::steady_clock;

  // A call over its node's limit, or a run over its own, fails the run (which cancels it). A call
  // still running a grace period later (as long as the limit, 1 to 60 s) is hung: logged, and
  // handed to the CallRecorder, which may end the process (an isolated run).
  void check_time_limits() {
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - started_).count();
    if (run_.run_timeout_s > 0 && elapsed > run_.run_timeout_s && !run_.stopping) {
      Failure f;
      f.kind = ErrorKind::timeout;
      f.reason = "the run took longer than its time limit of " + seconds_text(run_.run_timeout_s);
      run_.fail(std::move(f));
    }
    const bool run_over = run_.run_timeout_s > 0 && elapsed > run_.run_timeout_s + grace(run_.run_timeout_s);
    if (!run_.nodes_ready || hung_reported_) return;
    const std::int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    for (auto& node : run_.nodes) {
      NodeRun& n = *node;
      for (int i = 0; i < n.call_slot_count; ++i) {
        const std::int64_t started = n.call_slots[i].started_ns.load();
        if (started == 0) continue;
        const double running = static_cast<double>(now_ns - started) * 1e-9;
        const Phase phase = static_cast<Phase>(n.call_slots[i].phase.load());
        const std::int64_t frame = n.call_slots[i].frame.load();
        if (n.timeout_s > 0 && running > n.timeout_s && !run_.stopping) {
          Failure f;
          f.kind = ErrorKind::timeout;
          f.reason = std::string("one call (") + to_string(phase) + ") took longer than the node's time limit of " +
                     seconds_text(n.timeout_s);
          attribute(f, n, phase, frame >= 0 ? std::optional<std::int64_t>(frame) : std::nullopt);
          run_.fail(std::move(f));
        }
        const bool node_over = n.timeout_s > 0 && running > n.timeout_s + grace(n.timeout_s);
        if (node_over || run_over) {
          hung_reported_ = true;
          spdlog::error("node {} ({}) has not returned from {}{} after {}; it is hung and cannot be stopped in this "
                        "process{}",
                        n.id, n.type->type.name, to_string(phase),
                        frame >= 0 ? " of frame " + std::to_string(frame) : std::string(), seconds_text(running),
                        run_.options.recorder ? "" : " (run with --isolate to have it ended)");
          if (run_.options.recorder) run_.options.recorder->hung(n.index);
          return;
        }
      }
    }
  }

  static double grace(double limit) { return std::clamp(limit, 1.0, 60.0); }
  static std::string seconds_text(double seconds) {
    char text[32];
    std::snprintf(text, sizeof text, "%g s", seconds);
    return text;
  }

  static std::uint64_t kernel_peak_rss() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // kB
    return 0;
  }

  RunState& run_;
  Clock::time_point started_ = Clock::now();
  bool hung_reported_ = false;
  std::uint64_t peak_;
  bool exact_peak_ = false;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;
};

std::string now_iso8601() {
  std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

void build_nodes(RunState& run, const ResolvedGraph& graph) {
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const ResolvedNode& r = graph.nodes[i];
    auto n = std::make_unique<NodeRun>();
    n->index = static_cast<int>(i);
    n->id = r.spec->id;
    n->type = r.type;
    n->spec = r.spec;
    n->params = r.params;
    n->outputs.resize(r.type->type.outputs.size());
    n->next_output_index.assign(r.type->type.outputs.size(), 0);
    n->timeout_s = r.spec->timeout ? *r.spec->timeout : run.options.node_timeout_s;
    n->call_slot_count = r.type->type.inputs.empty() ? 1 : std::max(1, r.type->type.concurrency);
    n->call_slots = std::make_unique<NodeRun::CallSlot[]>(static_cast<std::size_t>(n->call_slot_count));
    run.nodes.push_back(std::move(n));
  }
  for (std::size_t i = 0; i < graph.nodes.size(); ++i)
    for (std::size_t port = 0; port < graph.nodes[i].input_from.size(); ++port) {
      auto [producer, producer_port] = graph.nodes[i].input_from[port];
      if (producer < 0) continue;  // an optional port left unconnected
      auto edge = std::make_unique<Edge>();
      edge->producer = producer, edge->producer_port = producer_port;
      edge->consumer = static_cast<int>(i), edge->consumer_port = static_cast<int>(port);
      edge->capacity = std::max<std::size_t>(1, run.options.edge_capacity);
      run.nodes[i]->inputs.push_back(edge.get());
      run.nodes[producer]->outputs[producer_port].push_back(edge.get());
      run.edges.push_back(std::move(edge));
    }
  run.nodes_ready = true;
}

void fail_configure(RunState& run, NodeRun& n, Failure f) {
  attribute(f, n, Phase::configure, std::nullopt);
  n.state = NodeState::failed;
  run.fail(std::move(f));
}

// Stream negotiation, in topological order: each node sees its producers' output descriptions.
// What makes a stream description from configure() impossible, or empty. Checked where it is made,
// so the node that made it is blamed rather than the next one.
std::string impossible_stream(const StreamDesc& s) {
  if (s.width < 1 || s.height < 1 || s.width > 65536 || s.height > 65536)
    return "width and height must be 1 to 65536 pixels";
  if (s.channels < 1 || s.channels > 4) return "channels must be 1 to 4";
  if (s.fps.num <= 0 || s.fps.den <= 0) return "the frame rate must be positive";
  if (s.frame_count && *s.frame_count < 0) return "the frame count must not be negative";
  return {};
}

// Sound is kept by nodes whose frames span their input's time (they return its StreamDesc); a
// node that builds a new one loses it. Not an error (a generator restyling a clip makes new
// frames), but never silent.
void warn_if_audio_dropped(const NodeRun& n) {
  if (n.output_streams.empty()) return;  // a sink decides itself what to do with the audio
  const StreamDesc* with_audio = nullptr;
  for (const StreamDesc& in : n.input_streams)
    if (in.audio) with_audio = &in;
  if (!with_audio) return;
  for (const StreamDesc& out : n.output_streams)
    if (out.audio) return;
  spdlog::warn("node {} ({}) does not keep the {} audio of {}: its frames do not span its input's time, so what "
               "follows it is silent",
               n.id, n.type->type.name, with_audio->audio->codec, with_audio->audio->path);
}

// `stream` false: only planning (NodeConfig::dry_run).
void configure_all(RunState& run, const GraphSpec& graph, bool stream) {
  for (auto& n : run.nodes) {
    try {
      n->node = n->type->type.create();
      if (!n->node) throw Error(ErrorKind::internal, "the node type's factory returned no node");
      n->input_streams.assign(n->type->type.inputs.size(), StreamDesc{});
      for (Edge* e : n->inputs) {
        const PortSpec& port = n->type->type.inputs[e->consumer_port];
        const StreamDesc& stream = run.nodes[e->producer]->output_streams[e->producer_port];
        if (port.kind == PortKind::image && stream.frame_count != 1)
          throw GraphError(graph.file, n->id, n->spec->pointer + "/inputs/" + port.name,
                           "input '" + port.name + "' of node '" + n->id + "' takes one image, but its stream is " +
                               stream.str());
        n->input_streams[e->consumer_port] = stream;
      }
      NodeConfig config{n->id, n->params, n->input_streams, run.options.overwrite_outputs, !stream};
      {
        InNode in(run, *n, Phase::configure);
        n->output_streams = n->node->configure(config);
      }
      if (n->output_streams.size() != n->outputs.size())
        throw Error(ErrorKind::internal, "configure() described " + std::to_string(n->output_streams.size()) +
                                             " output streams, but the node type declares " +
                                             std::to_string(n->outputs.size()) + " output ports");
      for (std::size_t port = 0; port < n->output_streams.size(); ++port)
        if (std::string wrong = impossible_stream(n->output_streams[port]); !wrong.empty())
          throw Error(ErrorKind::internal, "configure() described output '" + n->type->type.outputs[port].name +
                                               "' as " + n->output_streams[port].str() + ": " + wrong);
      n->state = NodeState::configured;
      warn_if_audio_dropped(*n);
    } catch (const InvalidParamError& e) {
      Failure f = classify_exception(std::current_exception());
      f.file = graph.file;  // point at the graph field, like the schema checks do
      f.pointer = n->spec->pointer + "/params/" + e.param();
      fail_configure(run, *n, std::move(f));
      return;
    } catch (...) {
      fail_configure(run, *n, classify_exception(std::current_exception()));
      return;
    }
  }
}

void estimate_all(RunState& run) {
  for (auto& n : run.nodes) {
    try {
      InNode in(run, *n, Phase::plan);
      n->estimate = n->node->estimate();
    } catch (...) {
      spdlog::error("node {} ({}) threw from estimate(), which must not throw; its estimate is unknown", n->id,
                    n->type->type.name);
    }
  }
}

// While frames stream, every node of a pipeline holds its model at once: the plan's peak is the
// sum over nodes (progressive unloading lowers the real peak of graphs whose branches end early).
std::uint64_t estimated_peak_bytes(const RunState& run) {
  std::uint64_t total = 0;
  for (const auto& n : run.nodes)
    for (const MemoryEstimate& e : n->estimate) total += e.weight_bytes + e.working_bytes;
  return total;
}

void check_budget(RunState& run) {
  if (!run.options.memory_budget) return;
  std::uint64_t need = estimated_peak_bytes(run);
  if (need > *run.options.memory_budget) {
    Failure f;
    f.kind = ErrorKind::out_of_memory;
    f.phase = Phase::plan;
    f.reason = "the nodes' estimates add up to " + format_bytes(need) + ", over the memory budget of " +
               format_bytes(*run.options.memory_budget);
    f.hint = "Lower the resolution or tile size, or raise --max-memory.";
    run.fail(std::move(f));
  }
}

// The error path's heart: after a failure or cancel, EVERY node is told to drop partial outputs
// and to unload, in reverse topological order, each guarded so one misbehaving node cannot stop
// the others from releasing their memory.
void unload_all_nodes(RunState& run, bool failed) {
  for (auto it = run.nodes.rbegin(); it != run.nodes.rend(); ++it) {
    NodeRun& n = **it;
    if (!n.node) continue;
    if (failed) {
      try {
        n.node->discard_outputs();
      } catch (...) {
        Failure f = classify_exception(std::current_exception());
        n.cleanup_error = "discard_outputs threw: " + f.detail;
        spdlog::error("node {} ({}) threw from discard_outputs(): {}", n.id, n.type->type.name, f.detail);
      }
    }
    NodeState before = n.state;
    if (failed || before != NodeState::unloaded) unload_node(run, n);
    if (before == NodeState::failed) n.state = NodeState::failed;  // the report keeps who failed
  }
}

std::vector<NodeReport> node_reports(const RunState& run) {
  std::vector<NodeReport> reports;
  for (const auto& n : run.nodes) {
    NodeReport r;
    r.id = n->id;
    r.type = n->type->type.name;
    r.plugin = n->type->plugin_file.filename().string();
    r.state = n->state;
    r.outputs = n->output_streams;
    r.estimate = n->estimate;
    r.frames_in = n->frames_in;
    r.frames_out = n->frames_out;
    r.load_seconds = n->load_seconds;
    r.busy_seconds = static_cast<double>(n->busy_ns.load()) / 1e9;
    r.rss_after_load_bytes = n->rss_after_load_bytes;
    r.oom_retries = n->oom_retries;
    r.cleanup_error = n->cleanup_error;
    if (n->node) {
      try {
        r.counters = n->node->counters();
        r.facts = n->node->facts();
      } catch (...) {
        Failure f = classify_exception(std::current_exception());
        spdlog::error("node {} ({}) threw from counters() or facts(): {}", n->id, n->type->type.name, f.detail);
      }
    }
    reports.push_back(std::move(r));
  }
  return reports;
}

std::vector<WrittenFile> written_files(const RunState& run) {
  std::vector<WrittenFile> files;
  for (const auto& n : run.nodes) {
    if (!n->node) continue;
    try {
      for (const std::string& path : n->node->written_files()) {
        std::error_code ec;
        auto bytes = std::filesystem::file_size(path, ec);
        files.push_back({n->id, path, ec ? 0 : static_cast<std::uint64_t>(bytes)});
      }
    } catch (...) {
      Failure f = classify_exception(std::current_exception());
      spdlog::error("node {} ({}) threw from written_files(): {}", n->id, n->type->type.name, f.detail);
    }
  }
  return files;
}

std::vector<EdgeReport> edge_reports(const RunState& run) {
  std::vector<EdgeReport> reports;
  for (const auto& e : run.edges) {
    const NodeRun& from = *run.nodes[e->producer];
    const NodeRun& to = *run.nodes[e->consumer];
    EdgeReport r;
    r.from = from.id + "." + from.type->type.outputs[e->producer_port].name;
    r.to = to.id + "." + to.type->type.inputs[e->consumer_port].name;
    if (static_cast<std::size_t>(e->producer_port) < from.output_streams.size())
      r.stream = from.output_streams[e->producer_port];
    r.capacity = e->capacity;
    r.max_queued = e->max_queued;
    r.frames = e->frames;
    reports.push_back(std::move(r));
  }
  return reports;
}

RunResult execute(const GraphSpec& graph, const PluginCatalog& catalog, const RunOptions& options, bool stream) {
  auto start = std::chrono::steady_clock::now();
  RunResult result;
  result.graph_file = graph.file;
  result.graph_fingerprint = graph_fingerprint(graph);
  result.overrides = graph.overrides;
  result.started_at = now_iso8601();
  configure_host_allocator();
  release_cached_memory();
  result.memory_before = sample_memory();

  RunState run(options);
  run.run_timeout_s = graph.timeout ? *graph.timeout : options.run_timeout_s;
  RunMonitor monitor(run);
  try {
    ResolvedGraph resolved = resolve_graph(graph, catalog);
    build_nodes(run, resolved);
    if (options.recorder) {
      std::vector<std::string> ids, types, plugins;
      for (const auto& n : run.nodes)
        ids.push_back(n->id), types.push_back(n->type->type.name),
            plugins.push_back(n->type->plugin_file.filename().string());
      options.recorder->nodes(ids, types, plugins);
    }
    configure_all(run, graph, stream);
    if (!run.stopping) estimate_all(run);
    if (!run.stopping) check_budget(run);
    if (!run.stopping && run.cancel_requested()) run.fail(cancelled_failure());
    if (!run.stopping && stream) stream_frames(run);
  } catch (...) {
    Failure f = classify_exception(std::current_exception());
    if (f.phase == Phase::run) f.phase = Phase::validate;
    run.fail(std::move(f));
  }

  result.failure = run.failure();
  unload_all_nodes(run, result.failure.has_value());
  result.nodes = node_reports(run);
  result.edges = edge_reports(run);
  if (!result.failure) result.outputs = written_files(run);
  // Frames still queued and the node objects themselves hold memory too.
  run.edges.clear();
  for (auto& n : run.nodes) n->node.reset();
  release_cached_memory();
  result.peak_rss_bytes = monitor.stop();
  result.memory_after = sample_memory();
  result.threads = run.threads, result.torch_threads = run.torch_threads;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (result.failure) {
    spdlog::debug("run of {} failed: {}", graph.file, result.failure->detail);
  }
  return result;
}

// The last line of "never throws": what execute() cannot guard itself (starting the monitor
// thread, sampling a broken device) still ends as a classified failure.
RunResult execute_guarded(const GraphSpec& graph, const PluginCatalog& catalog, const RunOptions& options,
                          bool stream) noexcept {
  try {
    return execute(graph, catalog, options, stream);
  } catch (...) {
    RunResult result;
    result.graph_file = graph.file;
    result.failure = classify_exception(std::current_exception());
    release_cached_memory();
    return result;
  }
}
}  // namespace
}  // namespace detail

RunResult plan_graph(const GraphSpec& graph, const PluginCatalog& catalog, const RunOptions& options) {
  return detail::execute_guarded(graph, catalog, options, /*stream=*/false);
}

RunResult run_graph(const GraphSpec& graph, const PluginCatalog& catalog, const RunOptions& options) {
  return detail::execute_guarded(graph, catalog, options, /*stream=*/true);
}

}  // namespace reel
