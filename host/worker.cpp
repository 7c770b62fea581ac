// `reel worker`: a long-lived process that runs jobs given as JSON lines on stdin and answers
// with events as JSON lines on stdout. docs/worker.md has the protocol and
// docs/worker-events.schema.json the events.
//
// Two threads: a reader that takes lines (jobs, cancels, queue listings) as they come, also
// while a job runs, and watches for SIGINT/SIGTERM; and the main thread, which runs the queued
// jobs one after another. Every accepted job gets exactly one final event: `finished`.
#include "commands.h"
#include "console.h"
#include "isolation.h"
#include "memory_cgroup.h"
#include "job.h"
#include "progress.h"

#include <reel/output_file.h>
#include <reel/runtime/report.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace reel::host {

namespace {

// Bumped when an event or job field changes meaning or goes away (new fields do not bump it).
constexpr int kProtocolVersion = 1;

using nlohmann::json;
namespace fs = std::filesystem;

// The event stream (the process's original stdout; see take_stdout_for_events).
class EventStream {
 public:
  explicit EventStream(std::FILE* out) : out_(out) {}
  void emit(const json& event) {
    std::lock_guard lock(mutex_);
    std::string line = event.dump(-1, ' ', false, json::error_handler_t::replace);
    // One line per event, flushed at once: a UI reads it live.
    if (std::fprintf(out_, "%s\n", line.c_str()) < 0 || std::fflush(out_) != 0) closed_ = true;
  }
  // The client stopped reading (its end of the pipe closed): nobody can hear the results.
  bool closed() const { return closed_.load(); }

 private:
  std::mutex mutex_;
  std::FILE* out_;
  std::atomic<bool> closed_{false};
};

class EventObserver : public RunObserver {
 public:
  EventObserver(EventStream& events, json job) : events_(events), job_(std::move(job)) {}
  void on_node_state(const std::string& node_id, NodeState state) override {
    events_.emit({{"event", "node"}, {"job", job_}, {"node", node_id}, {"state", to_string(state)}});
  }
  void on_progress(const std::string& node_id, std::int64_t frames, std::optional<std::int64_t> expected) override {
    auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mutex_);
      if (now - last_ < std::chrono::milliseconds(250)) return;
      last_ = now;
    }
    events_.emit({{"event", "progress"},
                  {"job", job_},
                  {"node", node_id},
                  {"frames", frames},
                  {"expected", expected ? json(*expected) : json(nullptr)}});
  }
  void on_stage(const std::string& node_id, const std::string& stage, std::int64_t done, std::int64_t total) override {
    events_.emit(
        {{"event", "stage"}, {"job", job_}, {"node", node_id}, {"stage", stage}, {"done", done}, {"total", total}});
  }

 private:
  EventStream& events_;
  json job_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point last_{};
};

class Worker {
 public:
  Worker(PluginCatalog& catalog, const RunOptions& defaults, std::FILE* events, const WorkerArgs& args)
      : catalog_(catalog), defaults_(defaults), events_(events), args_(args) {}

  int run() {
    events_.emit({{"event", "hello"},
                  {"protocol", kProtocolVersion},
                  {"reel_version", REEL_VERSION_STRING},
                  {"node_types", catalog_.types().size()},
                  {"refused_plugins", catalog_.refused().size()}});
    std::thread reader([this] { read_input(); });
    run_jobs();
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    reader.join();
    if (events_.closed()) {
      spdlog::error("the worker's event stream was closed by its reader; the jobs were cancelled");
      return exit_code(ErrorKind::io);
    }
    const bool signalled = cancel_flag().load();
    events_.emit({{"event", "bye"}, {"reason", signalled ? "signal" : "end of input"}});
    return signalled ? exit_code(ErrorKind::cancelled) : 0;
  }

 private:
  // The main thread: one job at a time, in the order accepted.
  void run_jobs() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || input_ended_; });
        if (stopping_ || queue_.empty()) break;
        job = queue_.front();
        queue_.pop_front();
        running_ = job;
      }
      run_job(*job);  // clears running_ before the job's final event
    }
    // Stopped by a signal: every job still queued is answered.
    std::deque<std::shared_ptr<Job>> left;
    {
      std::lock_guard lock(mutex_);
      left.swap(queue_);
    }
    for (const auto& job : left) finish_unstarted(*job, "the worker was stopped by a signal before the job started");
  }

  void run_job(Job& job) {
    const std::string label = job.graph.is_string() ? job.graph.get<std::string>() : "job " + job.id.dump();
    events_.emit({{"event", "started"}, {"job", job.id}, {"graph", label}});
    int code = 0;
    json report = args_.isolate ? run_job_in_child(job, label, code) : run_job_here(job, label, code);
    json finished = {{"event", "finished"},
                     {"job", job.id},
                     {"status", report.value("status", "failed")},
                     {"exit_code", code},
                     {"seconds", report.value("seconds", 0.0)},
                     {"outputs", report.value("outputs", json::array())},
                     {"error", report.value("error", json(nullptr))},
                     {"memory", report.value("memory", json(nullptr))}};
    if (!job.report.empty()) {
      try {
        write_report_file(job.report, report);
        finished["report"] = job.report;
      } catch (const std::exception& e) {
        finished["report_error"] = e.what();
      }
    }
    {
      // From here a cancel of this id has nothing left to stop, and the id may be used again.
      std::lock_guard lock(mutex_);
      running_.reset();
    }
    events_.emit(finished);
  }

  // In this process (--no-isolate): a crash of a plugin ends the worker.
  json run_job_here(Job& job, const std::string& label, int& code) {
    RunResult result;
    try {
      RunOptions options = defaults_;
      options.overwrite_outputs = job.overwrite;
      EventObserver observer(events_, job.id);
      options.observer = &observer;
      options.cancel = &job.cancel;
      if (job.graph.is_string())
        result = run_graph_file(catalog_, label, job.sets, options);
      else
        result = run_graph_text(catalog_, job.graph.dump(), label, job.sets, options);
    } catch (...) {
      result.graph_file = label;
      result.failure = classify_exception(std::current_exception());
    }
    code = result.ok() ? 0 : exit_code(result.failure->kind);
    try {
      return run_report(result);
    } catch (...) {  // never lose the job's final event to a report that cannot be built
      result.failure = classify_exception(std::current_exception());
      code = exit_code(result.failure->kind);
      return {{"status", "failed"}, {"outputs", json::array()}, {"error", failure_json(*result.failure)},
              {"memory", nullptr}};
    }
  }

  // In a child process (the default): the child sends the job's events through a pipe, and a
  // crash loses only this job, reported naming the node.
  json run_job_in_child(Job& job, const std::string& label, int& code) {
    static std::atomic<int> jobs{0};
    const fs::path job_file =
        fs::temp_directory_path() / ("reel-job-" + std::to_string(::getpid()) + "-" + std::to_string(jobs++) + ".json");
    try {
      {
        std::ofstream out(job_file);
        out << json({{"id", job.id}, {"graph", job.graph}, {"sets", job.sets}, {"overwrite", job.overwrite}})
                   .dump(-1, ' ', false, json::error_handler_t::replace);
        if (!out) throw IoError(job_file.string(), "could not write the job file " + job_file.string());
      }
      ChildRequest request;
      request.argv = args_.command_line;
      request.job = job_file.string();
      request.label = label;
      request.sets = job.sets;
      request.cancel = &job.cancel;
      request.memory_limit = args_.memory_limit;
      request.on_event = [this](const std::string& line) {
        json event = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (!event.is_discarded()) events_.emit(event);
      };
      json report = run_in_child(request, code);
      std::error_code ec;
      fs::remove(job_file, ec);
      return report;
    } catch (...) {
      std::error_code ec;
      fs::remove(job_file, ec);
      RunResult result;
      result.graph_file = label;
      result.failure = classify_exception(std::current_exception());
      code = exit_code(result.failure->kind);
      return run_report(result);
    }
  }

  void finish_unstarted(const Job& job, const std::string& why) {
    Failure f;
    f.kind = ErrorKind::cancelled;
    f.phase = Phase::parse;
    f.reason = why;
    events_.emit({{"event", "finished"},
                  {"job", job.id},
                  {"status", "cancelled"},
                  {"exit_code", exit_code(ErrorKind::cancelled)},
                  {"seconds", 0},
                  {"outputs", json::array()},
                  {"error", failure_json(f)},
                  {"memory", nullptr}});
  }

  // The reader thread: lines as they arrive, and the signal flag between them.
  void read_input() {
    std::string buffer;
    bool eof = false;
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (done_) return;
      }
      if (cancel_flag().load() || events_.closed()) stop();
      if (eof) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      pollfd in{STDIN_FILENO, POLLIN, 0};
      int ready = ::poll(&in, 1, 100);
      if (ready < 0 && errno != EINTR) eof = true;
      if (ready <= 0 && !eof) continue;
      char chunk[65536];
      ssize_t n = eof ? 0 : ::read(STDIN_FILENO, chunk, sizeof chunk);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n > 0) {
        buffer.append(chunk, static_cast<std::size_t>(n));
        for (std::size_t end; (end = buffer.find('\n')) != std::string::npos;) {
          handle_line(buffer.substr(0, end));
          buffer.erase(0, end + 1);
        }
        continue;
      }
      // End of input: a last line without a newline still counts.
      if (!buffer.empty()) handle_line(buffer);
      buffer.clear();
      eof = true;
      std::lock_guard lock(mutex_);
      input_ended_ = true;
      wake_.notify_all();
    }
  }

  // A signal, or a client that stopped reading: cancel the running job, take no more.
  void stop() {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    if (running_) running_->cancel = true;
    wake_.notify_all();
  }

  void reject(const json& id, const std::string& field, const std::string& message, const std::string* line = nullptr) {
    // The id as given when it is one (1.5 included, so the client recognises its line), else null.
    json event = {{"event", "rejected"},
                  {"job", id.is_string() || id.is_number() ? id : json(nullptr)},
                  {"field", field.empty() ? json(nullptr) : json(field)},
                  {"message", message}};
    if (line) event["line"] = *line;
    events_.emit(event);
  }

  void handle_line(std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) return;
    if (json_nesting_depth(line) > kMaxJsonDepth)
      return reject(id_in_broken_line(line), "",
                    "the line nests arrays and objects more than " + std::to_string(kMaxJsonDepth) + " deep", &line);
    json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (message.is_discarded() || !message.is_object()) {
      return reject(id_in_broken_line(line), "",
                    "a line must be one JSON object: a job {\"graph\": ...}, {\"cancel\": ID} or {\"list\": true}",
                    &line);
    }
    json id = message.contains("id") ? message["id"] : json(nullptr);
    if (message.contains("cancel")) return handle_cancel(message);
    if (message.contains("list")) return handle_list(message);
    std::shared_ptr<Job> job;
    try {
      job = parse_job(message, defaults_.overwrite_outputs);
    } catch (const Rejection& r) {
      return reject(id, r.field, r.message);
    }
    std::lock_guard lock(mutex_);
    if (stopping_) return reject(job->id, "", "the worker is stopping; the job was not queued");
    if (job->id.is_null()) job->id = "job-" + std::to_string(++unnamed_);
    if (in_use_locked(job->id)) return reject(job->id, "id", "a job with id " + job->id.dump() + " is already queued or running");
    queue_.push_back(job);
    events_.emit({{"event", "queued"}, {"job", job->id}, {"ahead", queue_.size() - 1 + (running_ ? 1 : 0)}});
    wake_.notify_all();
  }

  void handle_cancel(const json& message) {
    if (message.size() != 1)
      return reject(message.contains("id") ? message["id"] : json(nullptr), "cancel",
                    "a cancel is {\"cancel\": ID} and nothing else");
    const json& id = message["cancel"];
    std::shared_ptr<Job> unstarted;
    {
      std::lock_guard lock(mutex_);
      if (running_ && running_->id == id) {
        running_->cancel = true;  // its `finished` event follows when the run has cleaned up
        return;
      }
      for (auto it = queue_.begin(); it != queue_.end(); ++it)
        if ((*it)->id == id) {
          unstarted = *it;
          queue_.erase(it);
          break;
        }
    }
    if (!unstarted) return reject(id, "cancel", "no queued or running job has id " + id.dump());
    finish_unstarted(*unstarted, "cancelled before it started");
  }

  void handle_list(const json& message) {
    if (message.size() != 1 || message["list"] != true)
      return reject(nullptr, "list", "a queue listing is {\"list\": true} and nothing else");
    std::lock_guard lock(mutex_);
    json queued = json::array();
    for (const auto& job : queue_) queued.push_back(job->id);
    events_.emit({{"event", "queue"}, {"running", running_ ? running_->id : json(nullptr)}, {"queued", queued}});
  }

  bool in_use_locked(const json& id) const {
    if (running_ && running_->id == id) return true;
    for (const auto& job : queue_)
      if (job->id == id) return true;
    return false;
  }

  PluginCatalog& catalog_;
  const RunOptions& defaults_;
  EventStream events_;
  const WorkerArgs& args_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::shared_ptr<Job> running_;
  bool input_ended_ = false, stopping_ = false, done_ = false;
  std::int64_t unnamed_ = 0;
};

}  // namespace

std::FILE* take_stdout_for_events() {
  // SIGPIPE is ignored (install_signal_handlers): a client that closes its end makes writes fail,
  // and the worker cancels and cleans up.
  std::fflush(stdout);
  int fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  std::FILE* events = fd >= 0 ? ::fdopen(fd, "w") : nullptr;
  if (!events) return stdout;  // cannot separate them; events still go out
  ::dup2(STDERR_FILENO, STDOUT_FILENO);
  return events;
}

namespace {

// An isolated child of a worker: runs the one job its parent wrote to a file, sends the job's
// events through the pipe it was given and writes the run report for the parent.
int run_isolated_job(PluginCatalog& catalog, RunOptions options, const ChildRole& role) {
  json job;
  {
    std::ifstream in(role.job);
    job = json::parse(in, nullptr, /*allow_exceptions=*/false);
  }
  std::FILE* pipe = ::fdopen(role.events_fd, "w");
  if (job.is_discarded() || !pipe) {
    std::fprintf(stderr, "reel: the isolated job %s cannot be read\n", role.job.c_str());
    return exit_code(ErrorKind::internal);
  }
  EventStream events(pipe);
  EventObserver observer(events, job["id"]);
  options.observer = &observer;
  options.cancel = &cancel_flag();
  options.overwrite_outputs = job.value("overwrite", false);
  const std::vector<std::string> sets = job.value("sets", std::vector<std::string>{});
  const json& graph = job["graph"];
  const std::string label = graph.is_string() ? graph.get<std::string>() : "job " + job["id"].dump();
  RunResult result = graph.is_string() ? run_graph_file(catalog, label, sets, options)
                                       : run_graph_text(catalog, graph.dump(), label, sets, options);
  print_run_outcome(result);
  write_report_file(role.report, run_report(result));
  isolated_child_finished();
  return result.ok() ? 0 : exit_code(result.failure->kind);
}

}  // namespace

int command_worker(PluginCatalog& catalog, const RunOptions& defaults, std::FILE* events, const WorkerArgs& args) {
  RunOptions options = defaults;
  if (auto child = become_isolated_child(options)) return run_isolated_job(catalog, options, *child);
  if (args.memory_limit)
    if (const int code = check_memory_limit(args.memory_limit)) return code;
  Worker worker(catalog, options, events, args);
  return worker.run();
}

}  // namespace reel::host
