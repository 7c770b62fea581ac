#include "memory_cgroup.h"

#include <reel/error.h>
#include <reel/runtime/failure.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace reel::host {

namespace {

const char* const kHint =
    "run reel as root, or inside a cgroup delegated to it (e.g. systemd-run --scope -p Delegate=yes reel ...), "
    "or leave out --memory-limit";

bool has_word(const std::string& list, const std::string& word, char separator) {
  std::stringstream items(list);
  for (std::string item; std::getline(items, item, separator);)
    if (item == word) return true;
  return false;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string first_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

// 0, or the errno of opening or writing `file`.
int write_text(const fs::path& file, const std::string& text) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int err = n == static_cast<ssize_t>(text.size()) ? 0 : (n < 0 ? errno : EIO);
  ::close(fd);
  return err;
}

void write_or_throw(const fs::path& file, const std::string& text) {
  if (const int err = write_text(file, text))
    throw IoError(file.string(), "cannot write '" + text + "' to " + file.string() + ": " + std::strerror(err), kHint);
}

// The value of `key` in a file of "key value" lines (memory.events, memory.oom_control).
std::optional<long long> keyed_value(const fs::path& file, const std::string& key) {
  std::ifstream in(file);
  for (std::string name; in >> name;) {
    long long value = 0;
    if (!(in >> value)) return std::nullopt;
    if (name == key) return value;
  }
  return std::nullopt;
}

// Where this process's memory cgroup is, in whichever hierarchy has the memory controller.
struct Hierarchy {
  fs::path own;  // this process's memory cgroup when reel started
  bool v2 = false;
};

std::optional<Hierarchy> find_hierarchy() {
  // Mounts: "36 25 0:31 /root /mount/point rw,... - cgroup cgroup rw,memory"
  struct Mount {
    std::string root, point;
  };
  std::optional<Mount> v1, v2;
  std::ifstream mounts("/proc/self/mountinfo");
  for (std::string line; std::getline(mounts, line);) {
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream left(line.substr(0, dash)), right(line.substr(dash + 3));
    std::string id, parent, device, root, point, type, source, options;
    if (!(left >> id >> parent >> device >> root >> point) || !(right >> type >> source >> options)) continue;
    if (type == "cgroup" && has_word(options, "memory", ',')) v1 = Mount{root, point};
    if (type == "cgroup2" && !v2) v2 = Mount{root, point};
  }
  // Membership: "4:memory:/path" (v1), "0::/path" (v2).
  std::optional<std::string> v1_path, v2_path;
  std::ifstream groups("/proc/self/cgroup");
  for (std::string line; std::getline(groups, line);) {
    const auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1), path = line.substr(second + 1);
    if (has_word(controllers, "memory", ',')) v1_path = path;
    if (line.rfind("0::", 0) == 0) v2_path = path;
  }
  auto folder = [](const Mount& mount, std::string path) {
    if (mount.root != "/" && path.rfind(mount.root, 0) == 0) path = path.substr(mount.root.size());
    return fs::path(mount.point) / fs::path(path).relative_path();
  };
  if (v1 && v1_path) return Hierarchy{folder(*v1, *v1_path), false};
  if (v2 && v2_path) {
    Hierarchy h{folder(*v2, *v2_path), true};
    if (has_word(first_line(h.own / "cgroup.controllers"), "memory", ' ')) return h;
  }
  return std::nullopt;
}

const std::optional<Hierarchy>& hierarchy() {
  static const std::optional<Hierarchy> found = find_hierarchy();
  return found;
}

// The folder children's cgroups are made in. v1: this process's memory cgroup. v2: the same,
// once this process has moved into a leaf of its own there and enabled the memory controller
// below it (done once; the leaf stays until the process ends).
fs::path children_folder() {
  static std::mutex mutex;
  static std::optional<fs::path> folder;
  std::lock_guard lock(mutex);
  if (folder) return *folder;
  const auto& h = hierarchy();
  if (!h)
    throw IoError("", "--memory-limit needs a memory cgroup (cgroup v1's memory hierarchy, or cgroup v2 with the "
                      "memory controller) and none is available to this process", kHint);
  if (h->v2) {
    if (!has_word(first_line(h->own / "cgroup.subtree_control"), "memory", ' ')) {
      const fs::path leaf = h->own / ("reel-" + std::to_string(::getpid()));
      std::error_code ec;
      fs::create_directory(leaf, ec);
      if (ec) throw IoError(leaf.string(), "cannot make the cgroup " + leaf.string() + ": " + ec.message(), kHint);
      write_or_throw(leaf / "cgroup.procs", std::to_string(::getpid()));
      if (const int err = write_text(h->own / "cgroup.subtree_control", "+memory")) {
        write_text(h->own / "cgroup.procs", std::to_string(::getpid()));
        fs::remove(leaf, ec);
        throw IoError((h->own / "cgroup.subtree_control").string(),
                      "cannot enable the memory controller for reel's children in " + h->own.string() + ": " +
                          std::strerror(err) + (err == EBUSY ? " (other processes share the cgroup)" : ""),
                      kHint);
      }
    }
  }
  folder = h->own;
  return *folder;
}

}  // namespace

ChildCgroup::ChildCgroup(const std::string& name, std::uint64_t limit_bytes)
    : dir_(children_folder() / name), v2_(hierarchy()->v2) {
  std::error_code ec;
  fs::remove(dir_, ec);  // one left by an earlier process with this id
  if (!fs::create_directory(dir_, ec) || ec)
    throw IoError(dir_.string(), "cannot make the cgroup " + dir_.string() + ": " + ec.message(), kHint);
  try {
    const std::string limit = std::to_string(limit_bytes);
    if (v2_) {
      write_or_throw(dir_ / "memory.max", limit);
      if (fs::exists(dir_ / "memory.swap.max")) write_or_throw(dir_ / "memory.swap.max", "0");
    } else {
      write_or_throw(dir_ / "memory.limit_in_bytes", limit);
      // memory + swap: the same figure, so swap cannot stretch the limit.
      if (fs::exists(dir_ / "memory.memsw.limit_in_bytes")) write_or_throw(dir_ / "memory.memsw.limit_in_bytes", limit);
    }
  } catch (...) {
    fs::remove(dir_, ec);
    throw;
  }
}

ChildCgroup::~ChildCgroup() {
  // A cgroup can be removed once no process is in it. The child has been waited for; what is
  // left are processes a plugin started, which would otherwise outlive their job.
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::istringstream pids(read_text(dir_ / "cgroup.procs"));
    bool any = false;
    for (pid_t pid; pids >> pid;) ::kill(pid, SIGKILL), any = true;
    if (!any && ::rmdir(dir_.c_str()) == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  spdlog::warn("could not remove the cgroup {}: {}", dir_.string(), std::strerror(errno));
}

void ChildCgroup::add(pid_t pid) const { write_or_throw(dir_ / "cgroup.procs", std::to_string(pid)); }

long long ChildCgroup::oom_kills() const {
  return keyed_value(dir_ / (v2_ ? "memory.events" : "memory.oom_control"), "oom_kill").value_or(0);
}

int check_memory_limit(std::uint64_t limit_bytes) {
  try {
    ChildCgroup probe("reel-" + std::to_string(::getpid()) + "-check", limit_bytes);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "reel: --memory-limit: %s\n%s\n", e.what(), e.hint().c_str());
    return exit_code(ErrorKind::io);
  }
}

std::optional<long long> own_cgroup_oom_kills() {
  const auto& h = hierarchy();
  if (!h) return std::nullopt;
  return keyed_value(h->own / (h->v2 ? "memory.events" : "memory.oom_control"), "oom_kill");
}

}  // namespace reel::host
