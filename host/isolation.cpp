#include "isolation.h"

#include "commands.h"
#include "console.h"
#include "memory_cgroup.h"
#include "progress.h"

#include <reel/runtime/output_journal.h>
#include <reel/runtime/report.h>
#include <spdlog/spdlog.h>

#include <execinfo.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace fs = std::filesystem;

namespace reel::host {

namespace {

constexpr int kMaxNodes = 64;         // nodes past this are run but not named after a crash
constexpr int kMaxTemporaries = 256;  // output files past this are not removed after a crash
constexpr const char* kChildVariable = "REEL_ISOLATED_CHILD";

// Lives in memory shared by parent and child (a memfd both map); plain data and lock-free atomics
// only, written by the child, read by the parent once the child is gone.
struct SharedRecord {
  std::atomic<int> finished;  // the child wrote its report and is exiting on purpose
  std::atomic<int> node_count;
  struct Node {
    char id[96], type[64], plugin[96];
    std::atomic<int> calls;  // calls into the node's code now running (a node may run several)
    std::atomic<int> phase;
    std::atomic<long long> frame;  // -1: none
  } nodes[kMaxNodes];
  std::atomic<int> hung_node;     // 1 + the index of a node whose call was hung; 0: none
  std::atomic<int> crashed_node;  // 1 + the index of the node the crashing thread was in; 0: none
  std::atomic<int> crashed_phase;
  std::atomic<long long> crashed_frame;
  std::atomic<int> temporary_count;
  char temporaries[kMaxTemporaries][1024];
};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<long long>::is_always_lock_free);

void copy_text(char* to, std::size_t size, const std::string& from) {
  std::size_t n = std::min(size - 1, from.size());
  std::memcpy(to, from.data(), n);
  to[n] = '\0';
}

// --- the child --------------------------------------------------------------------------------

SharedRecord* g_record = nullptr;

// The call the current thread is in, so the fatal-signal handler (which runs on the thread that
// crashed: a segfault, an abort) names that node, not another one running at the same time.
thread_local int t_node = -1;
thread_local int t_phase = 0;
thread_local long long t_frame = -1;

class SharedCallRecorder final : public CallRecorder {
 public:
  void nodes(const std::vector<std::string>& ids, const std::vector<std::string>& types,
             const std::vector<std::string>& plugins) noexcept override {
    const int count = static_cast<int>(std::min<std::size_t>(ids.size(), kMaxNodes));
    for (int i = 0; i < count; ++i) {
      copy_text(g_record->nodes[i].id, sizeof g_record->nodes[i].id, ids[i]);
      copy_text(g_record->nodes[i].type, sizeof g_record->nodes[i].type, types[i]);
      copy_text(g_record->nodes[i].plugin, sizeof g_record->nodes[i].plugin, plugins[i]);
    }
    g_record->node_count = count;
  }
  void enter(int node, Phase phase, std::optional<std::int64_t> frame) noexcept override {
    if (node >= kMaxNodes) return;
    auto& n = g_record->nodes[node];
    n.phase = static_cast<int>(phase);
    n.frame = frame ? *frame : -1;
    n.calls.fetch_add(1);
    t_node = node, t_phase = static_cast<int>(phase), t_frame = frame ? *frame : -1;
  }
  void leave(int node) noexcept override {
    if (node < kMaxNodes) g_record->nodes[node].calls.fetch_sub(1);
    t_node = -1;
  }
  // A hung call cannot be stopped in the process: the parent is told which node it was and this
  // child ends at once (the parent removes its temporary outputs and reports the timeout).
  void hung(int node) noexcept override {
    g_record->hung_node = 1 + std::min(node, kMaxNodes - 1);
    std::fflush(stderr);
    ::_exit(124);
  }
};

void journal_temporary(const char* path) noexcept {
  const int i = g_record->temporary_count.fetch_add(1);
  if (i < kMaxTemporaries) copy_text(g_record->temporaries[i], sizeof g_record->temporaries[i], path);
}

const char* signal_name(int signal) {
  switch (signal) {
    case SIGSEGV: return "SIGSEGV (segmentation fault)";
    case SIGBUS: return "SIGBUS (bus error)";
    case SIGFPE: return "SIGFPE (arithmetic error)";
    case SIGILL: return "SIGILL (illegal instruction)";
    case SIGABRT: return "SIGABRT (abort: std::terminate, a failed assertion or abort())";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    default: return nullptr;
  }
}

void write_text(const char* text) { [[maybe_unused]] auto n = ::write(STDERR_FILENO, text, std::strlen(text)); }

// Async-signal-safe: write(2) and backtrace_symbols_fd only (backtrace() was called once at
// start-up, so it does not load libgcc here). Then the signal's default action ends the process,
// so the parent sees which signal it was.
extern "C" void on_fatal_signal(int signal) {
  if (g_record && t_node >= 0) {
    g_record->crashed_phase = t_phase;
    g_record->crashed_frame = t_frame;
    g_record->crashed_node = 1 + t_node;
  }
  write_text("reel: fatal signal ");
  const char* name = signal_name(signal);
  write_text(name ? name : "?");
  write_text(" in the isolated run; backtrace:\n");
  void* frames[64];
  int depth = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, depth, STDERR_FILENO);
  ::raise(signal);  // SA_RESETHAND restored the default action
}

void install_fatal_signal_handlers() {
  void* warm[1];
  ::backtrace(warm, 1);
  // Its own stack, so a stack overflow can still be reported.
  static std::vector<char> stack(std::max<std::size_t>(SIGSTKSZ, 64 * 1024));
  stack_t alternate{};
  alternate.ss_sp = stack.data();
  alternate.ss_size = stack.size();
  ::sigaltstack(&alternate, nullptr);
  struct sigaction action {};
  action.sa_handler = on_fatal_signal;
  action.sa_flags = SA_RESETHAND | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::sigaction(signal, &action, nullptr);
}

// --- the parent -------------------------------------------------------------------------------

SharedRecord* parent_record(int& fd) {
  static int record_fd = -1;
  static SharedRecord* record = nullptr;
  if (!record) {
    // No close-on-exec: the child maps the same memory through the inherited descriptor.
    record_fd = ::memfd_create("reel-isolated-run", 0);
    if (record_fd < 0 || ::ftruncate(record_fd, sizeof(SharedRecord)) != 0)
      throw IoError("", std::string("cannot create the shared record for --isolate: ") + std::strerror(errno));
    void* memory = ::mmap(nullptr, sizeof(SharedRecord), PROT_READ | PROT_WRITE, MAP_SHARED, record_fd, 0);
    if (memory == MAP_FAILED)
      throw IoError("", std::string("cannot map the shared record for --isolate: ") + std::strerror(errno));
    record = static_cast<SharedRecord*>(memory);
  }
  fd = record_fd;
  std::memset(static_cast<void*>(record), 0, sizeof(SharedRecord));
  return record;
}

// The node a hung call was in: its id, type, plugin and the phase and frame of its last call.
void name_node(Failure& f, const SharedRecord& record, int index) {
  const auto& n = record.nodes[index];
  f.node_id = n.id, f.node_type = n.type, f.plugin = n.plugin;
  f.phase = static_cast<Phase>(n.phase.load());
  if (n.frame.load() >= 0) f.frame = n.frame.load();
}

Failure hung_failure(const SharedRecord& record) {
  Failure f;
  f.kind = ErrorKind::timeout;
  name_node(f, record, record.hung_node.load() - 1);
  f.reason = "a call into the node did not return after its time limit and a grace period; the process running "
             "the graph was ended";
  f.detail = f.reason;
  return f;
}

// `memory_limit`: the child's cgroup limit when it had one (0: none).
Failure crash_failure(const SharedRecord& record, int status, bool oom_killed, std::uint64_t memory_limit) {
  Failure f;
  f.kind = oom_killed ? ErrorKind::out_of_memory : ErrorKind::internal;
  if (const int crashed = record.crashed_node.load(); crashed > 0) {
    // The thread that crashed was in this call.
    name_node(f, record, crashed - 1);
    f.phase = static_cast<Phase>(record.crashed_phase.load());
    f.frame.reset();
    if (record.crashed_frame.load() >= 0) f.frame = record.crashed_frame.load();
  } else {
    // exit() or a thread the executor does not know: the first node in a call, if any.
    for (int i = 0; i < std::min(record.node_count.load(), kMaxNodes); ++i) {
      if (record.nodes[i].calls.load() <= 0) continue;
      name_node(f, record, i);
      break;
    }
  }
  std::string died;
  if (WIFSIGNALED(status)) {
    const char* name = signal_name(WTERMSIG(status));
    died = std::string("the process running the graph was killed by ") +
           (name ? name : "signal " + std::to_string(WTERMSIG(status)));
    if (oom_killed) died += " from the kernel's out-of-memory killer";
    if (oom_killed && memory_limit)
      died += " at its memory limit of " + std::to_string(memory_limit / (1024 * 1024)) + " MiB (--memory-limit)";
  } else {
    died = "the process running the graph exited with code " + std::to_string(WEXITSTATUS(status)) +
           (WEXITSTATUS(status) == 0 ? " (success)" : "") + " before the run finished (exit() called by a plugin?)";
  }
  f.reason = died;
  if (f.node_id.empty()) f.reason += "; no node code was running (reel itself, or a thread a plugin started)";
  // SIGKILL (the OOM killer, a user) cannot be caught: no handler ran to print a backtrace.
  const bool has_backtrace = WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL;
  f.detail = died + (has_backtrace ? "; its backtrace is in the log (stderr)" : "");
  if (oom_killed)
    f.hint = memory_limit ? "Raise --memory-limit, or try a lower resolution or a smaller tile."
                          : "Try a lower resolution or a smaller tile, or give the job more memory.";
  return f;
}

}  // namespace

std::optional<ChildRole> become_isolated_child(RunOptions& options) {
  const char* value = std::getenv(kChildVariable);
  if (!value) return std::nullopt;
  // Lines of key=value: record, events, index, report, job.
  std::map<std::string, std::string> fields;
  std::istringstream lines(value);
  for (std::string line; std::getline(lines, line);)
    if (auto eq = line.find('='); eq != std::string::npos) fields[line.substr(0, eq)] = line.substr(eq + 1);
  ::unsetenv(kChildVariable);  // not for what this process starts
  ChildRole role;
  int record_fd = -1;
  try {
    record_fd = std::stoi(fields.at("record"));
    role.events_fd = std::stoi(fields.at("events"));
    role.graph_index = std::stoul(fields.at("index"));
    role.report = fields.at("report");
    role.job = fields.at("job");
  } catch (const std::exception&) {
    record_fd = -1;
  }
  void* memory = record_fd < 0 ? MAP_FAILED
                               : ::mmap(nullptr, sizeof(SharedRecord), PROT_READ | PROT_WRITE, MAP_SHARED, record_fd, 0);
  if (memory == MAP_FAILED) {
    std::fprintf(stderr, "reel: %s is malformed; not an isolated run\n", kChildVariable);
    std::exit(70);
  }
  ::close(record_fd);
  g_record = static_cast<SharedRecord*>(memory);
  static SharedCallRecorder recorder;
  options.recorder = &recorder;
  set_output_journal(&journal_temporary);
  install_fatal_signal_handlers();
  return role;
}

void isolated_child_finished() noexcept {
  if (g_record) g_record->finished = 1;
}

nlohmann::json run_in_child(const ChildRequest& request, int& exit_code) {
  int fd = -1;
  SharedRecord* record = parent_record(fd);
  static std::atomic<int> runs{0};
  const std::string run_name = "reel-" + std::to_string(::getpid()) + "-" + std::to_string(runs++);
  const fs::path report = fs::temp_directory_path() / (run_name + ".json");
  // Made before the child starts: a limit that cannot be applied fails the run, not the machine.
  std::optional<ChildCgroup> cgroup;
  if (request.memory_limit) cgroup.emplace(run_name, request.memory_limit);
  std::error_code ec;
  fs::remove(report, ec);
  // The worker's events: a pipe whose write end only the child keeps.
  int events[2] = {-1, -1};
  if (request.on_event) {
    if (::pipe(events) != 0)
      throw IoError("", std::string("cannot create the event pipe for an isolated run: ") + std::strerror(errno));
    ::fcntl(events[0], F_SETFD, FD_CLOEXEC);
  }

  const std::string role = "record=" + std::to_string(fd) + "\nevents=" + std::to_string(events[1]) +
                           "\nindex=" + std::to_string(request.graph_index) + "\nreport=" + report.string() +
                           "\njob=" + request.job;
  std::vector<std::string> variables = {std::string(kChildVariable) + "=" + role};
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, kChildVariable, std::strlen(kChildVariable)) != 0) variables.emplace_back(*e);
  std::vector<std::string> arguments = request.argv;
  const std::string engine = fs::read_symlink("/proc/self/exe", ec).string();
  std::vector<char*> argv, envp;
  for (auto& a : arguments) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& v : variables) envp.push_back(v.data());
  envp.push_back(nullptr);

  const std::optional<long long> oom_before = own_cgroup_oom_kills();
  pid_t child = 0;
  const int spawned = ::posix_spawn(&child, engine.c_str(), nullptr, nullptr, argv.data(), envp.data());
  if (events[1] >= 0) ::close(events[1]);
  if (spawned != 0) {
    if (events[0] >= 0) ::close(events[0]);
    throw IoError(engine, "cannot start " + engine + " for an isolated run: " + std::strerror(spawned));
  }
  if (cgroup) {
    // posix_spawn returns once the child has executed reel-engine, before it has loaded a plugin
    // or read its graph: everything that matters is charged to the cgroup.
    try {
      cgroup->add(child);
    } catch (...) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
      if (events[0] >= 0) ::close(events[0]);
      throw;
    }
  }
  int status = 0;
  bool forwarded = false;
  std::string pending;  // event text up to an incomplete line
  auto relay = [&](int timeout_ms) {
    if (events[0] < 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
      return;
    }
    pollfd ready{events[0], POLLIN, 0};
    if (::poll(&ready, 1, timeout_ms) <= 0) return;
    char buffer[65536];
    ssize_t n = ::read(events[0], buffer, sizeof buffer);
    if (n <= 0) {
      ::close(events[0]);
      events[0] = -1;
      return;
    }
    pending.append(buffer, static_cast<std::size_t>(n));
    for (std::size_t end; (end = pending.find('\n')) != std::string::npos;) {
      request.on_event(pending.substr(0, end));
      pending.erase(0, end + 1);
    }
  };
  for (;;) {
    pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) break;
    if (done < 0 && errno != EINTR) break;
    // SIGINT from a terminal reaches the child too; a signal sent to this process alone, or a
    // worker's cancel, is passed on, so the child cancels and cleans up as usual.
    if ((cancel_flag() || (request.cancel && request.cancel->load())) && !forwarded)
      ::kill(child, SIGTERM), forwarded = true;
    relay(20);
  }
  while (events[0] >= 0) relay(0);  // what the child wrote before it ended

  if (record->finished.load() && WIFEXITED(status)) {
    exit_code = WEXITSTATUS(status);
    nlohmann::json document;
    std::ifstream in(report);
    document = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    fs::remove(report, ec);
    if (!document.is_discarded()) return document;
    spdlog::error("the isolated run of {} wrote no readable report", request.label);
    RunResult missing;
    missing.graph_file = request.label;
    missing.failure = Failure{};
    missing.failure->reason = "the isolated run's report could not be read";
    return run_report(missing);
  }

  // The child died before it finished: name what was running, remove what it was writing.
  // With a cgroup of its own, its count is the child's alone; otherwise this process's cgroup's
  // count rose while the child died by SIGKILL (another OOM kill there at the same moment would
  // be taken for the child's).
  const std::optional<long long> oom_after = own_cgroup_oom_kills();
  const bool oom_killed =
      WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
      (cgroup ? cgroup->oom_kills() > 0 : oom_before && oom_after && *oom_after > *oom_before);
  RunResult result;
  result.graph_file = request.label;
  result.overrides = request.sets;
  if (forwarded && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) {
    // Cancelled before the child could handle the signal (it was still starting).
    result.failure = Failure{};
    result.failure->kind = ErrorKind::cancelled;
    result.failure->reason = "the run was cancelled";
  } else if (record->hung_node.load() > 0) {
    result.failure = hung_failure(*record);
  } else {
    result.failure = crash_failure(*record, status, oom_killed, request.memory_limit);
  }
  const int temporaries = std::min(record->temporary_count.load(), kMaxTemporaries);
  for (int i = 0; i < temporaries; ++i) {
    if (fs::remove(record->temporaries[i], ec))
      spdlog::info("removed {}, left by the crashed run", record->temporaries[i]);
  }
  fs::remove(report, ec);
  spdlog::error("{}: {}", request.label, result.failure->detail);
  print_run_outcome(result);
  exit_code = reel::exit_code(result.failure->kind);
  return run_report(result);
}

}  // namespace reel::host
