// Executor benchmarks (docs/benchmarks.md has the command and the results):
//  - overhead per frame per node, with nodes that do nothing;
//  - pipelining of 4 sleep-bound stages against the ideal N x slowest + fill, and against
//    running each stage over the whole clip before the next starts (what a batch tool does).
#include <reel/reel.h>
#include <reel/runtime/executor.h>

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace {

// Emits the same small tensor `frames` times: the cost measured is the executor's, not memory.
class NoopSource : public reel::Node {
 public:
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig& config) override {
    frames_ = config.params.integer("frames");
    image_ = at::zeros({3, 4, 4}, at::kByte);
    reel::StreamDesc s;
    s.width = 4, s.height = 4, s.fps = {24, 1}, s.frame_count = frames_;
    return {s};
  }
  bool produce(reel::Emitter& out) override {
    if (next_ >= frames_) return false;
    out.emit(image_);
    return ++next_ < frames_;
  }
  void unload() override {}

 private:
  std::int64_t frames_ = 0, next_ = 0;
  at::Tensor image_;
};

// Sleeps `latency_us` per frame (a GPU or I/O wait). batch=true holds every frame until finish,
// then works through them all: a stage that only starts once the previous one is done.
class Stage : public reel::Node {
 public:
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig& config) override {
    latency_ = std::chrono::microseconds(config.params.integer("latency_us"));
    batch_ = config.params.boolean("batch");
    return config.inputs;
  }
  void process(const reel::Frame& frame, int, reel::Emitter& out) override {
    if (batch_) {
      held_.push_back(frame.image);
      return;
    }
    work();
    out.emit(frame.image);
  }
  void finish(reel::Emitter& out) override {
    for (auto& image : held_) {
      work();
      out.emit(image);
    }
    held_.clear();
  }
  void unload() override { held_.clear(); }

 private:
  void work() const {
    if (latency_.count() > 0) std::this_thread::sleep_for(latency_);
  }
  std::chrono::microseconds latency_{0};
  bool batch_ = false;
  std::vector<at::Tensor> held_;
};

class Sink : public reel::Node {
 public:
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig&) override { return {}; }
  void process(const reel::Frame&, int, reel::Emitter&) override {}
  void unload() override {}
};

const reel::PluginCatalog& catalog() {
  static reel::PluginCatalog* c = [] {
    auto* c = new reel::PluginCatalog();
    using reel::ParamSpec;
    c->add_builtin(
        {.name = "bench.source", .params = {ParamSpec::integer("frames", 100, "")}, .outputs = {{"out"}}, .create = [] {
           return std::make_unique<NoopSource>();
         }});
    c->add_builtin({.name = "bench.stage",
                    .params = {ParamSpec::integer("latency_us", 0, ""), ParamSpec::boolean("batch", false, "")},
                    .inputs = {{"in"}},
                    .outputs = {{"out"}},
                    .create = [] { return std::make_unique<Stage>(); }});
    c->add_builtin({.name = "bench.sink", .inputs = {{"in"}}, .create = [] { return std::make_unique<Sink>(); }});
    return c;
  }();
  return *c;
}

reel::GraphSpec chain(std::int64_t frames, const std::vector<std::int64_t>& latencies_us, bool batch) {
  nlohmann::json nodes = nlohmann::json::array();
  nodes.push_back({{"id", "src"}, {"type", "bench.source"}, {"params", {{"frames", frames}}}});
  std::string previous = "src";
  for (std::size_t i = 0; i < latencies_us.size(); ++i) {
    std::string id = std::string("s") + std::to_string(i);
    nodes.push_back({{"id", id},
                     {"type", "bench.stage"},
                     {"inputs", {{"in", previous + ".out"}}},
                     {"params", {{"latency_us", latencies_us[i]}, {"batch", batch}}}});
    previous = id;
  }
  nodes.push_back({{"id", "sink"}, {"type", "bench.sink"}, {"inputs", {{"in", previous + ".out"}}}});
  return reel::parse_graph_text(nlohmann::json({{"version", 1}, {"nodes", nodes}}).dump(), "bench.json");
}

// The run's wall time; the executor threads it used are counted in `state`.
double run_seconds(const reel::GraphSpec& graph, const reel::RunOptions& options, benchmark::State& state) {
  auto start = std::chrono::steady_clock::now();
  reel::RunResult r = reel::run_graph(graph, catalog(), options);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!r.ok()) throw std::runtime_error(r.failure->user_message());
  state.counters["threads"] = r.threads;
  return seconds;
}

// --threads=N on the command line: the executor's worker threads in every benchmark (0: the
// default of `reel run`). Unset, each benchmark uses the default too.
int g_threads = -1;

// Per frame per node: a chain of `stages` no-op nodes moving `frames` frames.
void BM_ExecutorOverhead(benchmark::State& state) {
  const std::int64_t frames = 20000;
  const auto stages = static_cast<std::size_t>(state.range(0));
  reel::GraphSpec graph = chain(frames, std::vector<std::int64_t>(stages, 0), false);
  reel::RunOptions options;
  if (g_threads >= 0) options.threads = g_threads;
  double total = 0;
  for (auto _ : state) {
    double seconds = run_seconds(graph, options, state);
    state.SetIterationTime(seconds);
    total += seconds;
  }
  // Every node counts: the source and sink too.
  double node_frames = static_cast<double>(frames) * static_cast<double>(stages + 2);
  state.counters["us_per_frame_per_node"] = total / static_cast<double>(state.iterations()) / node_frames * 1e6;
}
BENCHMARK(BM_ExecutorOverhead)
    ->Arg(1)
    ->Arg(8)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Repetitions(5);

// 4 stages of 1, 2, 3 and 4 ms per frame, 100 frames. Ideal streaming: 100 x 4 ms + (1+2+3) ms.
const std::vector<std::int64_t> kLatenciesUs = {1000, 2000, 3000, 4000};
constexpr std::int64_t kPipelineFrames = 100;

void BM_Pipeline(benchmark::State& state) {
  bool batch = state.range(0) != 0;
  reel::GraphSpec graph = chain(kPipelineFrames, kLatenciesUs, batch);
  reel::RunOptions options;
  if (g_threads >= 0) options.threads = g_threads;
  double total = 0;
  for (auto _ : state) {
    double seconds = run_seconds(graph, options, state);
    state.SetIterationTime(seconds);
    total += seconds;
  }
  double ideal = (kPipelineFrames * 4000 + 1000 + 2000 + 3000) * 1e-6;
  state.counters["ideal_ms"] = ideal * 1e3;
  state.counters["x_ideal"] = total / static_cast<double>(state.iterations()) / ideal;
  state.SetLabel(batch ? "stages one after another (batch)" : "streamed");
}
BENCHMARK(BM_Pipeline)
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Repetitions(5)
    ->Iterations(1);

}  // namespace

// Google Benchmark's main, with --threads=N taken out first. Every repetition is printed, then
// the aggregates (--benchmark_report_aggregates_only=true prints only those).
int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--threads=", 0) == 0) {
      g_threads = std::stoi(arg.substr(10));
      continue;
    }
    rest.push_back(argv[i]);
  }
  int count = static_cast<int>(rest.size());
  benchmark::Initialize(&count, rest.data());
  if (benchmark::ReportUnrecognizedArguments(count, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
