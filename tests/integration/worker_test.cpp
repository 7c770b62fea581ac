// `reel worker` driven from a separate process through its pipes, as a UI or a job queue drives
// it: the protocol of docs/worker.md, checked event by event and against
// docs/worker-events.schema.json.
#include "test_support.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel {
namespace {

class WorkerProcess {
 public:
  explicit WorkerProcess(std::vector<std::string> extra = {}) {
    int to_child[2], from_child[2];
    EXPECT_EQ(::pipe(to_child), 0);
    EXPECT_EQ(::pipe(from_child), 0);
    std::vector<std::string> args = {REEL_EXECUTABLE, "--plugin-path", REEL_TEST_PLUGIN_DIR, "worker"};
    args.insert(args.end(), extra.begin(), extra.end());
    stderr_file_ = test::temp_dir("worker") / "stderr";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(to_child[0], 0);
      ::dup2(from_child[1], 1);
      int err = ::open(stderr_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(err, 2);
      ::close(to_child[1]);
      ::close(from_child[0]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    in_ = to_child[1];
    out_ = from_child[0];
  }
  ~WorkerProcess() {
    close_input();
    if (pid_ > 0 && !waited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
  }

  void send_line(const std::string& line) {
    std::string text = line + "\n";
    ASSERT_EQ(::write(in_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  void send(const json& message) { send_line(message.dump()); }
  void close_output() {
    ::close(out_);
    out_ = -1;
  }
  void close_input() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }

  // The next event, or null after `timeout` or at the end of the stream.
  json next(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        lines_.push_back(line);
        json event = json::parse(line, nullptr, false);
        EXPECT_FALSE(event.is_discarded()) << "not one JSON event per line: " << line;
        return event;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return nullptr;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return nullptr;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  // Events until one matches (kept in `seen`), or null.
  json until(const std::function<bool(const json&)>& match, std::vector<json>* seen = nullptr) {
    for (json e; !(e = next()).is_null();) {
      if (seen) seen->push_back(e);
      if (match(e)) return e;
    }
    return nullptr;
  }
  json until_event(const std::string& name, const json& job = nullptr, std::vector<json>* seen = nullptr) {
    return until([&](const json& e) { return e["event"] == name && (job.is_null() || e["job"] == job); }, seen);
  }

  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    waited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  void signal(int sig) { ::kill(pid_, sig); }
  pid_t pid() const { return pid_; }
  const std::vector<std::string>& lines() const { return lines_; }
  std::string stderr_text() const {
    std::ifstream in(stderr_file_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  bool waited_ = false;
  std::string buffer_;
  std::vector<std::string> lines_;
  fs::path stderr_file_;
};

fs::path write_graph(const json& document) {
  fs::path file = test::temp_dir("graph") / "graph.json";
  test::write_file(file, document.dump(2));
  return file;
}

// A job that takes a while: `frames` frames at 20 ms each in the sink.
json slow_graph(const fs::path& out, int frames = 500) {
  return test::chain(frames, {"test.map"}, {{"sink", {{"path", out.string()}, {"delay_us", 20000}}}});
}

// Every line a worker wrote is an event the published schema allows.
void expect_events_match_schema(const std::vector<std::string>& lines) {
  fs::path file = test::temp_dir("events") / "events.jsonl";
  std::ofstream out(file);
  for (const auto& line : lines) out << line << '\n';
  out.close();
  std::string command =
      "/usr/bin/python3 -c \"import json,sys,jsonschema\n"
      "schema = json.load(open(sys.argv[2]))\n"
      "v = jsonschema.Draft202012Validator(schema)\n"
      "bad = [(l, e.message) for l in open(sys.argv[1]) for e in v.iter_errors(json.loads(l))]\n"
      "[print(b) for b in bad]\n"
      "sys.exit(1 if bad else 0)\" '" +
      file.string() + "' '" + REEL_SOURCE_DIR + "/docs/worker-events.schema.json'";
  EXPECT_EQ(std::system(command.c_str()), 0) << "events outside docs/worker-events.schema.json";
}

TEST(WorkerProtocol, HelloThenJobsThenByeAtEndOfInput) {
  fs::path dir = test::temp_dir();
  WorkerProcess worker;
  json hello = worker.next();
  EXPECT_EQ(hello["event"], "hello");
  EXPECT_EQ(hello["protocol"], 1);
  EXPECT_GT(hello["node_types"].get<int>(), 0);
  worker.send(json{{"id", "a"}, {"graph", write_graph(test::chain(3, {}, {{"sink", {{"path", (dir / "a.txt").string()}}}})).string()}});
  // An inline graph, and no id: the worker names the job.
  worker.send(json{{"graph", test::chain(2, {}, {{"sink", {{"path", (dir / "b.txt").string()}}}})}});
  worker.close_input();  // queued jobs still run
  std::vector<json> events;
  json bye = worker.until_event("bye", nullptr, &events);
  ASSERT_FALSE(bye.is_null());
  EXPECT_EQ(bye["reason"], "end of input");
  EXPECT_EQ(worker.wait(), 0);
  std::vector<json> finished;
  json auto_id;
  for (const auto& e : events) {
    if (e["event"] == "finished") finished.push_back(e);
    if (e["event"] == "queued" && e["job"] != "a") auto_id = e["job"];
  }
  ASSERT_EQ(finished.size(), 2u);
  EXPECT_EQ(finished[0]["job"], "a");
  EXPECT_EQ(finished[0]["status"], "succeeded");
  EXPECT_EQ(finished[0]["outputs"][0]["path"], (dir / "a.txt").string());
  EXPECT_TRUE(auto_id.is_string()) << "a job without id gets one in its queued event";
  EXPECT_EQ(finished[1]["job"], auto_id);
  EXPECT_EQ(finished[1]["status"], "succeeded");
  EXPECT_EQ(test::read_lines(dir / "b.txt").size(), 2u);
  expect_events_match_schema(worker.lines());
}

// Each malformed line is rejected with the job's id and the field at fault, and the worker goes
// on: no line can kill it.
TEST(WorkerProtocol, MalformedJobsAreRejectedNamingIdAndField) {
  fs::path dir = test::temp_dir();
  std::string graph = write_graph(test::chain(3, {}, {{"sink", {{"path", (dir / "ok.txt").string()}}}})).string();
  WorkerProcess worker;
  worker.next();  // hello
  struct Case {
    json line;
    json id;
    std::string field;
  };
  std::vector<Case> cases = {
      {{{"id", "t1"}, {"graph", graph}, {"overwrite", "yes"}}, "t1", "overwrite"},
      {{{"id", "t2"}, {"graph", graph}, {"set", "src.frames=3"}}, "t2", "set"},
      {{{"id", "t3"}, {"graph", graph}, {"set", {{{"src.frames", 3}}}}}, "t3", "set"},
      {{{"id", "t4"}, {"graph", graph}, {"set", {"frames3"}}}, "t4", "set"},
      {{{"id", "t5"}, {"graph", graph}, {"sets", {"src.frames=3"}}}, "t5", "sets"},
      {{{"id", "t6"}, {"graph", graph}, {"report", (dir / "no" / "r.json").string()}}, "t6", "report"},
      {{{"id", "t7"}, {"graph", 42}}, "t7", "graph"},
      {{{"id", "t8"}}, "t8", "graph"},
      {{{"id", 1.5}, {"graph", graph}}, 1.5, "id"},
      {{{"id", 5}, {"graph", graph}, {"overwrite", 1}}, 5, "overwrite"},
      {{{"cancel", "x"}, {"id", "t9"}}, "t9", "cancel"},
  };
  for (const auto& c : cases) {
    worker.send(c.line);
    json e = worker.next();
    EXPECT_EQ(e["event"], "rejected") << c.line.dump();
    EXPECT_EQ(e["job"], c.id) << c.line.dump();
    EXPECT_EQ(e["field"], c.field) << c.line.dump() << " -> " << e.dump();
  }
  worker.send_line("not json at all");
  json e = worker.next();
  EXPECT_EQ(e["event"], "rejected");
  EXPECT_EQ(e["line"], "not json at all");
  EXPECT_TRUE(e["job"].is_null());
  // Broken JSON whose id can still be read: the rejection names the job.
  worker.send_line(R"({"id": "cut", "graph": "a.json", "set": ["x.y=1"],)");
  EXPECT_EQ(worker.next()["job"], "cut");
  // Only the outer object's id counts, not an inline graph's node ids.
  worker.send_line(R"({"graph": {"version": 1, "nodes": [{"id": "src", "type": "x"}]}, "id": "outer",)");
  EXPECT_EQ(worker.next()["job"], "outer");
  worker.send(json{{"cancel", "nobody"}});
  EXPECT_EQ(worker.next()["field"], "cancel");
  // Still alive: a good job runs, and a typed override refused at run time is a usage error.
  worker.send(json{{"id", "good"}, {"graph", graph}});
  json done = worker.until_event("finished", "good");
  EXPECT_EQ(done["status"], "succeeded");
  worker.send(json{{"id", "typed"}, {"graph", graph}, {"set", {"src.frames=many"}}});
  json typed = worker.until_event("finished", "typed");
  EXPECT_EQ(typed["exit_code"], 64) << typed.dump();
  worker.close_input();
  EXPECT_EQ(worker.wait(), 0);
  expect_events_match_schema(worker.lines());
}

TEST(WorkerProtocol, CancelStopsTheRunningJobAndRemovesItsOutput) {
  fs::path dir = test::temp_dir();
  WorkerProcess worker;
  worker.next();
  worker.send(json{{"id", 7}, {"graph", write_graph(slow_graph(dir / "slow.txt")).string()}});
  ASSERT_FALSE(worker.until_event("progress", 7).is_null());
  worker.send(json{{"cancel", 7}});
  json finished = worker.until_event("finished", 7);
  EXPECT_EQ(finished["status"], "cancelled");
  EXPECT_EQ(finished["exit_code"], 130);
  EXPECT_LT(finished["seconds"].get<double>(), 8.0) << "500 frames x 20 ms would take 10 s";
  EXPECT_FALSE(fs::exists(dir / "slow.txt"));
  // The worker carries on with the next job.
  worker.send(json{{"id", 8}, {"graph", write_graph(test::chain(2, {}, {{"sink", {{"path", (dir / "next.txt").string()}}}})).string()}});
  EXPECT_EQ(worker.until_event("finished", 8)["status"], "succeeded");
  worker.close_input();
  EXPECT_EQ(worker.wait(), 0);
}

TEST(WorkerProtocol, QueuedJobsAreListedAndCancellable) {
  fs::path dir = test::temp_dir();
  WorkerProcess worker;
  worker.next();
  worker.send(json{{"id", "A"}, {"graph", write_graph(slow_graph(dir / "a.txt")).string()}});
  worker.until_event("started", "A");
  worker.send(json{{"id", "B"}, {"graph", write_graph(slow_graph(dir / "b.txt", 2)).string()}});
  json queued = worker.until_event("queued", "B");
  EXPECT_EQ(queued["ahead"], 1);
  worker.send(json{{"id", "C"}, {"graph", write_graph(slow_graph(dir / "c.txt", 2)).string()}});
  worker.until_event("queued", "C");
  worker.send(json{{"id", "C"}, {"graph", "x.json"}});
  json duplicate = worker.until_event("rejected");
  EXPECT_EQ(duplicate["field"], "id");
  worker.send(json{{"list", true}});
  json list = worker.until_event("queue");
  EXPECT_EQ(list["running"], "A");
  EXPECT_EQ(list["queued"], json::array({"B", "C"}));
  worker.send(json{{"cancel", "B"}});
  json b = worker.until_event("finished", "B");
  EXPECT_EQ(b["status"], "cancelled");
  worker.send(json{{"cancel", "A"}});
  std::vector<json> seen;
  EXPECT_EQ(worker.until_event("finished", "A", &seen)["status"], "cancelled");
  EXPECT_EQ(worker.until_event("finished", "C", &seen)["status"], "succeeded");
  for (const auto& e : seen) EXPECT_FALSE(e["event"] == "started" && e["job"] == "B") << "B never started";
  worker.close_input();
  EXPECT_EQ(worker.wait(), 0);
  expect_events_match_schema(worker.lines());
}

// SIGTERM with a queue: the running job is cancelled and cleaned up, every queued job is
// answered, the worker says goodbye and exits 130. Exactly one final event per job.
TEST(WorkerProtocol, SignalCancelsTheRunningJobAndAnswersTheQueue) {
  fs::path dir = test::temp_dir();
  WorkerProcess worker;
  worker.next();
  for (const char* id : {"r", "q1", "q2"})
    worker.send(json{{"id", id}, {"graph", write_graph(slow_graph(dir / (std::string(id) + ".txt"))).string()}});
  std::vector<json> events;
  worker.until_event("progress", "r", &events);
  worker.signal(SIGTERM);
  json bye = worker.until_event("bye", nullptr, &events);
  ASSERT_FALSE(bye.is_null()) << worker.stderr_text();
  EXPECT_EQ(bye["reason"], "signal");
  EXPECT_EQ(worker.wait(), 130);
  std::map<std::string, int> finals;
  for (const auto& e : events)
    if (e["event"] == "finished") {
      ++finals[e["job"].get<std::string>()];
      EXPECT_EQ(e["status"], "cancelled") << e.dump();
    }
  EXPECT_EQ(finals, (std::map<std::string, int>{{"r", 1}, {"q1", 1}, {"q2", 1}}));
  for (const auto& entry : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << entry.path();
}

// A client that stops reading (closes its end of the event pipe) must not kill the worker in the
// middle of a job: the job is cancelled and cleaned up, and the worker exits with an I/O error.
TEST(WorkerProtocol, AClosedEventStreamCancelsAndCleansUp) {
  fs::path dir = test::temp_dir();
  WorkerProcess worker;
  worker.next();
  worker.send(json{{"id", "s"}, {"graph", write_graph(slow_graph(dir / "s.txt")).string()}});
  ASSERT_FALSE(worker.until_event("progress", "s").is_null());
  worker.close_output();
  EXPECT_EQ(worker.wait(), 74) << worker.stderr_text();
  for (const auto& entry : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << entry.path();
}

// A failure whose message is invalid UTF-8 and escape sequences is reported like any other, and
// the worker goes on with the next job.
TEST(WorkerProtocol, AHostileErrorMessageDoesNotStopTheWorker) {
  fs::path dir = test::temp_dir();
  WorkerProcess worker;
  worker.next();
  json hostile = test::chain(3, {"test.map"}, {{"m0", {{"fail_phase", "process"}, {"fail_with", "hostile_message"}}}});
  worker.send(json{{"id", "h"}, {"graph", hostile}, {"report", (dir / "h.json").string()}});
  json failed = worker.until_event("finished", "h");
  EXPECT_EQ(failed["status"], "failed");
  EXPECT_EQ(failed["report"], (dir / "h.json").string());
  EXPECT_NO_THROW(json::parse(std::ifstream(dir / "h.json")));
  worker.send(json{{"id", "next"}, {"graph", test::chain(2, {}, {{"sink", {{"path", (dir / "n.txt").string()}}}})}});
  EXPECT_EQ(worker.until_event("finished", "next")["status"], "succeeded");
  worker.close_input();
  EXPECT_EQ(worker.wait(), 0);
  for (const auto& line : worker.lines()) EXPECT_EQ(line.find('\x1b'), std::string::npos);
}

// What /proc says about a process: resident memory, open descriptors, threads, children.
struct ProcessState {
  std::uint64_t rss_kib = 0;
  std::size_t fds = 0, threads = 0, children = 0;
};

ProcessState state_of(pid_t pid) {
  ProcessState s;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::stoull(line.substr(6));
    if (line.rfind("Threads:", 0) == 0) s.threads = std::stoul(line.substr(8));
  }
  for ([[maybe_unused]] const auto& fd : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++s.fds;
  std::ifstream children("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  for (std::string child; children >> child;) ++s.children;
  return s;
}

// Many small jobs through one worker (isolated, the default), a third of them failing in every
// way a run can fail (out of memory, plugin exceptions, bad input, an invalid graph, a bad
// override, a hostile message, a cancel, and crashes: segfault, abort, terminate, exit): every job
// gets exactly one final event, and afterwards memory, descriptors, threads and child processes
// (no zombies) are back where they were. REEL_SOAK_JOBS sets the
// count (bench/worker-soak.sh runs 1,000 and prints the figures).
TEST(WorkerSoak, ManyJobsFailingInEveryWayLeaveTheWorkerAsItWas) {
  const char* env = std::getenv("REEL_SOAK_JOBS");
  const int jobs = env ? std::atoi(env) : 150;
  fs::path dir = test::temp_dir();
  const std::vector<json> failing = {
      test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "process"}, {"fail_with", "c10_oom"}, {"model_mib", 32}}}}),
      test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "load"}, {"fail_with", "runtime_error"}}}}),
      test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "finish"}, {"fail_with", "bad_input"}}}}),
      test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "process"}, {"fail_with", "hostile_message"}}}}),
      test::chain(4, {"test.map"}, {{"m0", {{"emit", "float"}}}}),
      test::chain(4, {"test.map"}, {{"m0", {{"copies", 99}}}}),  // invalid graph
      test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "process"}, {"fail_with", "segfault"}}}}),
      test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "load"}, {"fail_with", "abort"}}}}),
      test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "process"}, {"fail_with", "terminate_thread"}}}}),
      test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "finish"}, {"fail_with", "exit0"}}}}),
  };
  auto job = [&](int k) {
    json line = {{"id", k}};
    if (k % 3 == 1) {
      line["graph"] = failing[static_cast<std::size_t>(k / 3) % failing.size()];
    } else {
      line["graph"] = test::chain(6, {"test.map"}, {{"m0", {{"model_mib", 16}}}, {"sink", {{"path", (dir / ("o" + std::to_string(k) + ".txt")).string()}}}});
      if (k % 9 == 5) line["set"] = {"m0.copies=lots"};  // a bad override: exit 64
    }
    return line;
  };
  WorkerProcess worker;
  worker.next();
  const int warm_up = 12;
  for (int k = 0; k < warm_up; ++k) worker.send(job(k));
  for (int k = 0; k < warm_up; ++k) ASSERT_FALSE(worker.until_event("finished", k).is_null());
  ProcessState before = state_of(worker.pid());

  std::map<int, int> finals;
  std::map<std::string, int> statuses, failure_kinds;
  for (int k = warm_up; k < warm_up + jobs; ++k) {
    worker.send(job(k));
    if (k % 10 == 3) worker.send(json{{"cancel", k}});  // cancelled queued, running, or already done
  }
  for (int done = 0; done < jobs;) {
    json e = worker.next();
    ASSERT_FALSE(e.is_null()) << "the worker stopped answering after " << done << " jobs";
    if (e["event"] != "finished") continue;
    ++finals[e["job"].get<int>()];
    ++statuses[e["status"].get<std::string>()];
    if (e["error"].is_object()) ++failure_kinds[e["error"]["kind"].get<std::string>()];
    ++done;
  }
  ProcessState after = state_of(worker.pid());
  worker.close_input();
  EXPECT_EQ(worker.wait(), 0);
  for (int k = warm_up; k < warm_up + jobs; ++k) EXPECT_EQ(finals[k], 1) << "job " << k;
  std::printf("soak: %d jobs: %d succeeded, %d failed, %d cancelled; RSS %llu -> %llu KiB, fds %zu -> %zu, "
              "threads %zu -> %zu, children %zu -> %zu\n",
              jobs, statuses["succeeded"], statuses["failed"], statuses["cancelled"],
              static_cast<unsigned long long>(before.rss_kib), static_cast<unsigned long long>(after.rss_kib),
              before.fds, after.fds, before.threads, after.threads, before.children, after.children);
  for (const auto& [kind, count] : failure_kinds) std::printf("soak: %d %s\n", count, kind.c_str());
  EXPECT_GT(statuses["failed"], jobs / 4);
  EXPECT_GT(statuses["succeeded"], jobs / 3);
  EXPECT_EQ(after.fds, before.fds);
  EXPECT_EQ(after.threads, before.threads);
  EXPECT_EQ(after.children, 0u);
  EXPECT_LT(after.rss_kib, before.rss_kib + 24 * 1024) << "memory is back near its baseline";
}

// A job whose plugin crashes the process loses only itself: its final event names the node, the
// next job runs, and --no-isolate is the in-process worker where the same crash ends it.
TEST(WorkerProtocol, ACrashingJobIsReportedAndTheNextJobRuns) {
  fs::path dir = test::temp_dir();
  const json crash = test::chain(5, {"test.map"},
                                 {{"m0", {{"fail_phase", "process"}, {"fail_with", "segfault"}, {"fail_frame", 1}}},
                                  {"sink", {{"path", (dir / "crash.txt").string()}}}});
  WorkerProcess worker;
  worker.next();
  worker.send(json{{"id", "crash"}, {"graph", crash}, {"report", (dir / "crash.json").string()}});
  worker.send(json{{"id", "next"}, {"graph", test::chain(3, {"test.map"}, {{"sink", {{"path", (dir / "next.txt").string()}}}})}});
  json crashed = worker.until_event("finished", "crash");
  EXPECT_EQ(crashed["status"], "failed");
  EXPECT_EQ(crashed["exit_code"], 70);
  EXPECT_EQ(crashed["error"]["node"], "m0");
  EXPECT_EQ(crashed["error"]["phase"], "process");
  EXPECT_EQ(crashed["error"]["frame"], 1);
  EXPECT_NE(crashed["error"]["message"].get<std::string>().find("SIGSEGV"), std::string::npos) << crashed;
  EXPECT_EQ(json::parse(std::ifstream(dir / "crash.json"))["error"]["node"], "m0");
  EXPECT_EQ(worker.until_event("finished", "next")["status"], "succeeded");
  worker.close_input();
  EXPECT_EQ(worker.wait(), 0);
  expect_events_match_schema(worker.lines());
  EXPECT_FALSE(fs::exists(dir / "crash.txt"));
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_EQ(entry.path().string().find("reel-partial"), std::string::npos) << entry.path();

  WorkerProcess in_process({"--no-isolate"});
  in_process.next();
  in_process.send(json{{"id", "crash"}, {"graph", crash}});
  in_process.close_input();
  EXPECT_EQ(in_process.wait(), 128 + SIGSEGV) << "documented: without isolation a crash ends the worker";
}

// --memory-limit holds each job's child to its limit: a job over it is killed by the kernel and
// reported as out of memory; the worker and its next job do not notice.
TEST(WorkerProtocol, AJobOverTheMemoryLimitFailsAsOutOfMemoryAndTheNextJobRuns) {
  fs::path dir = test::temp_dir();
  WorkerProcess worker({"--memory-limit", "1200MiB"});  // a job of an ASan build needs about 0.5 GiB
  worker.next();
  worker.send(json{{"id", "big"},
                   {"graph", test::chain(3, {"test.map"},
                                         {{"m0", {{"model_mib", 3072}}}, {"sink", {{"path", (dir / "big.txt").string()}}}})}});
  worker.send(json{{"id", "next"}, {"graph", test::chain(3, {"test.map"}, {{"sink", {{"path", (dir / "next.txt").string()}}}})}});
  json big = worker.until_event("finished", "big");
  EXPECT_EQ(big["exit_code"], 75) << big;
  EXPECT_EQ(big["error"]["kind"], "out of memory") << big;
  EXPECT_EQ(big["error"]["node"], "m0");
  EXPECT_NE(big["error"]["message"].get<std::string>().find("memory limit of 1200 MiB"), std::string::npos) << big;
  EXPECT_EQ(worker.until_event("finished", "next")["status"], "succeeded");
  worker.close_input();
  EXPECT_EQ(worker.wait(), 0);
  EXPECT_FALSE(fs::exists(dir / "big.txt"));
}

// A plugin printing on stdout cannot corrupt the event stream: its text goes to stderr.
TEST(WorkerProtocol, PluginStdoutGoesToTheLogNotTheEvents) {
  fs::path dir = test::temp_dir();
  WorkerProcess worker;
  worker.next();
  worker.send(json{{"id", "p"},
                   {"graph", test::chain(3, {"test.map"}, {{"m0", {{"print", "chatty plugin"}}}, {"sink", {{"path", (dir / "o.txt").string()}}}})}});
  EXPECT_EQ(worker.until_event("finished", "p")["status"], "succeeded");
  worker.close_input();
  EXPECT_EQ(worker.wait(), 0);
  for (const auto& line : worker.lines()) EXPECT_EQ(line.find("chatty"), std::string::npos) << line;
  EXPECT_NE(worker.stderr_text().find("chatty plugin load"), std::string::npos) << worker.stderr_text();
}

}  // namespace
}  // namespace reel
