// What `reel run` prints while graphs run and when each ends: the progress line and the outcome.
#include "progress.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

namespace reel::host {

namespace {

using Clock = std::chrono::steady_clock;

// "0:07", "12:34", "1:02:03".
std::string clock_text(double seconds) {
  auto total = static_cast<long long>(std::max(0.0, seconds) + 0.5);
  char text[32];
  if (total >= 3600)
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60, total % 60);
  else
    std::snprintf(text, sizeof text, "%lld:%02lld", total / 60, total % 60);
  return text;
}

// One line for the whole run, like ffmpeg's: frames per node, then the pace of the run (frames
// per second of the node furthest behind), the time elapsed and, when lengths are known, the time
// left. Redrawn in place on a terminal; every 5 s as plain lines otherwise (logs, pipes).
class ProgressPrinter : public ProgressDisplay {
 public:
  ProgressPrinter() : terminal_(::isatty(STDERR_FILENO) != 0) {}
  ~ProgressPrinter() override {
    if (terminal_ && drawn_) std::fprintf(stderr, "\n");
  }

  void on_node_state(const std::string& node_id, NodeState state) override {
    std::lock_guard lock(mutex_);
    started();
    if (state == NodeState::unloaded || state == NodeState::failed) {
      if (!terminal_) {
        std::fprintf(stderr, "  %s: %s after %lld frames\n", node_id.c_str(), to_string(state),
                     static_cast<long long>(entry(node_id).frames));
      }
    }
  }

  void on_progress(const std::string& node_id, std::int64_t frames, std::optional<std::int64_t> expected) override {
    std::lock_guard lock(mutex_);
    started();
    Progress& p = entry(node_id);
    if (p.frames == 0 && frames > 0) p.first_frame = Clock::now();
    if (frames > p.frames) p.last_frame = Clock::now();
    p.frames = frames, p.expected = expected;
    p.stage.clear();  // frames are flowing: the stage inside a call is over
    draw(false);
  }

  // Steps inside one long call (a generator's denoising): slow, so a log prints every one.
  void on_stage(const std::string& node_id, const std::string& stage, std::int64_t done, std::int64_t total) override {
    std::lock_guard lock(mutex_);
    started();
    entry(node_id).stage = stage + " " + std::to_string(done) + "/" + std::to_string(total);
    if (!terminal_) {
      std::fprintf(stderr, "  %s: %s step %lld/%lld (%s elapsed)\n", node_id.c_str(), stage.c_str(),
                   static_cast<long long>(done), static_cast<long long>(total), clock_text(elapsed()).c_str());
      return;
    }
    draw(true);
  }

  void end_run() override {
    std::lock_guard lock(mutex_);
    if (!progress_.empty()) {
      finished_ = true;
      draw(true);
    }
    if (terminal_ && drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
    finished_ = false;
    progress_.clear();
    run_start_.reset();
  }

 private:
  struct Progress {
    std::string node;
    std::int64_t frames = 0;
    std::optional<std::int64_t> expected;
    std::string stage;  // "denoising 12/50" while a call reports steps
    Clock::time_point first_frame{}, last_frame{};
  };

  void started() {
    if (!run_start_) run_start_ = Clock::now();
  }
  double elapsed() const {
    return run_start_ ? std::chrono::duration<double>(Clock::now() - *run_start_).count() : 0.0;
  }

  // The node that sets the pace: the one with a known length that is furthest behind (the
  // furthest downstream among equals), else the last to report (the furthest downstream).
  const Progress* pace() const {
    const Progress* slowest = nullptr;
    for (const Progress& p : progress_)
      if (p.expected && *p.expected > 0 &&
          (!slowest || static_cast<double>(p.frames) / *p.expected <=
                           static_cast<double>(slowest->frames) / *slowest->expected))
        slowest = &p;
    return slowest ? slowest : (progress_.empty() ? nullptr : &progress_.back());
  }

  std::string summary() const {
    std::string text;
    const Progress* p = pace();
    if (p && p->frames > 0) {
      // Frames per second from that node's first frame to its latest: model loading is not part
      // of the pace, and a node that has finished keeps the rate it had.
      double busy = std::chrono::duration<double>(p->last_frame - p->first_frame).count();
      double fps = p->frames > 1 && busy > 0 ? static_cast<double>(p->frames - 1) / busy : 0.0;
      char rate[32];
      std::snprintf(rate, sizeof rate, "%.3g fps", fps);
      if (fps > 0) text += rate;
      if (!finished_ && fps > 0 && p->expected && *p->expected > p->frames)
        text += std::string(text.empty() ? "" : "  ") + "ETA " +
                clock_text(static_cast<double>(*p->expected - p->frames) / fps);
    }
    text += std::string(text.empty() ? "" : "  ") + clock_text(elapsed()) + " elapsed";
    return text;
  }

  void draw(bool now_anyway) {
    auto now = Clock::now();
    auto interval = terminal_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(5000);
    if (!now_anyway && now - last_ < interval) return;
    last_ = now;
    std::string line;
    for (const Progress& p : progress_) {
      if (!line.empty()) line += " | ";
      line += p.node;
      line += ' ';
      if (!p.stage.empty()) {
        line += p.stage;
        continue;
      }
      line += std::to_string(p.frames);
      if (p.expected) {
        line += '/';
        line += std::to_string(*p.expected);
      }
    }
    line += "  " + summary();
    if (terminal_) {
      std::fprintf(stderr, "\r\033[K  %s", line.c_str());
      drawn_ = true;
    } else {
      std::fprintf(stderr, "  progress: %s\n", line.c_str());
    }
  }

  bool terminal_;
  bool drawn_ = false, finished_ = false;
  std::mutex mutex_;
  std::optional<Clock::time_point> run_start_;
  // In the order nodes first report, which follows the graph from its sources.
  Progress& entry(const std::string& node) {
    for (Progress& p : progress_)
      if (p.node == node) return p;
    return progress_.emplace_back(Progress{node, 0, std::nullopt, {}, {}, {}});
  }
  std::vector<Progress> progress_;
  Clock::time_point last_{};
};

}  // namespace

std::unique_ptr<ProgressDisplay> make_progress_printer(bool enabled) {
  if (!enabled) return nullptr;
  return std::make_unique<ProgressPrinter>();
}

namespace {

// "out.mp4 (1.2 MiB)", or for many files the first and last and their total.
std::string outputs_text(const std::vector<WrittenFile>& files) {
  std::uint64_t total = 0;
  for (const auto& f : files) total += f.bytes;
  if (files.size() > 3)
    return std::to_string(files.size()) + " files, " + files.front().path + " ... " + files.back().path + " (" +
           format_bytes(total) + ")";
  std::string text;
  for (const auto& f : files) text += (text.empty() ? "" : ", ") + f.path + " (" + format_bytes(f.bytes) + ")";
  return text;
}

}  // namespace

void print_run_outcome(const RunResult& r) {
  if (r.ok()) {
    std::fprintf(stderr, "reel: %s succeeded in %.2f s (peak host memory %s)%s%s\n", r.graph_file.c_str(), r.seconds,
                 format_bytes(r.peak_rss_bytes).c_str(), r.outputs.empty() ? "" : ", wrote ",
                 outputs_text(r.outputs).c_str());
    // What nodes counted or settled themselves (an interpolator's scene cuts, a generator's
    // seed), one line per node.
    for (const NodeReport& n : r.nodes) {
      if (n.counters.empty() && n.facts.empty()) continue;
      std::string line;
      for (const auto& [name, value] : n.facts) line += (line.empty() ? "" : ", ") + name + " " + value;
      for (const auto& [name, value] : n.counters)
        line += (line.empty() ? "" : ", ") + name + " " + std::to_string(value);
      std::fprintf(stderr, "  %s: %s\n", n.id.c_str(), line.c_str());
    }
    return;
  }
  std::fprintf(stderr, "reel: %s %s\n%s\n", r.graph_file.c_str(), r.cancelled() ? "was cancelled" : "failed",
               r.failure->user_message().c_str());
  spdlog::info("{} failed; detail: {}", r.graph_file, r.failure->detail);
}

}  // namespace reel::host
