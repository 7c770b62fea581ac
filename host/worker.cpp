// `reel worker`: a long-lived process that runs jobs given as JSON lines on stdin and answers
// with events as JSON lines on stdout (docs/worker.md has the protocol).
#include "commands.h"
#include "console.h"

#include <reel/runtime/report.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>

namespace reel::host {

namespace {

std::mutex out_mutex;

void emit(const nlohmann::json& event) {
  std::lock_guard lock(out_mutex);
  std::cout << event.dump() << std::endl;  // one line per event, flushed: a UI reads it live
}

class EventObserver : public RunObserver {
 public:
  explicit EventObserver(nlohmann::json job) : job_(std::move(job)) {}
  void on_node_state(const std::string& node_id, NodeState state) override {
    emit({{"event", "node"}, {"job", job_}, {"node", node_id}, {"state", to_string(state)}});
  }
  void on_progress(const std::string& node_id, std::int64_t frames, std::optional<std::int64_t> expected) override {
    auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mutex_);
      if (now - last_ < std::chrono::milliseconds(250)) return;
      last_ = now;
    }
    emit({{"event", "progress"},
          {"job", job_},
          {"node", node_id},
          {"frames", frames},
          {"expected", expected ? nlohmann::json(*expected) : nlohmann::json(nullptr)}});
  }

  void on_stage(const std::string& node_id, const std::string& stage, std::int64_t done, std::int64_t total) override {
    emit({{"event", "stage"}, {"job", job_}, {"node", node_id}, {"stage", stage}, {"done", done}, {"total", total}});
  }

 private:
  nlohmann::json job_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

int command_worker(const PluginCatalog& catalog, const RunOptions& defaults) {
  emit({{"event", "ready"}, {"reel_version", REEL_VERSION_STRING}, {"node_types", catalog.types().size()}});
  std::string line;
  while (!cancel_flag() && std::getline(std::cin, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json job = nlohmann::json::parse(line, nullptr, false);
    if (job.is_discarded() || !job.is_object() || !job.contains("graph") || !job["graph"].is_string()) {
      emit({{"event", "rejected"},
            {"line", line},
            {"message", "a job is one JSON object per line with at least {\"graph\": \"path\"}"}});
      continue;
    }
    nlohmann::json id = job.value("id", nlohmann::json(nullptr));
    std::vector<std::string> sets;
    if (job.contains("set") && job["set"].is_array())
      for (const auto& s : job["set"]) sets.push_back(s.is_string() ? s.get<std::string>() : s.dump());
    RunOptions options = defaults;
    options.overwrite_outputs = job.value("overwrite", defaults.overwrite_outputs);
    EventObserver observer(id);
    options.observer = &observer;
    options.cancel = &cancel_flag();

    emit({{"event", "started"}, {"job", id}, {"graph", job["graph"]}});
    RunResult result = run_graph_file(catalog, job["graph"].get<std::string>(), sets, options);
    nlohmann::json report = run_report(result);
    if (job.contains("report") && job["report"].is_string())
      std::ofstream(job["report"].get<std::string>()) << report.dump(2);
    emit({{"event", "finished"},
          {"job", id},
          {"status", report["status"]},
          {"exit_code", result.ok() ? 0 : exit_code(result.failure->kind)},
          {"seconds", result.seconds},
          {"error", report["error"]},
          {"memory", report["memory"]}});
  }
  return cancel_flag() ? exit_code(ErrorKind::cancelled) : 0;
}

}  // namespace reel::host
