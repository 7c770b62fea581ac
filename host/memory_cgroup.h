#pragma once
// Memory cgroups for isolated children. With `--memory-limit`, each child runs in a memory cgroup
// of its own: the kernel holds it to the limit (swap included) and, when it goes over, kills that
// child alone, which the parent then reports as out of memory, knowing it for certain from the
// cgroup's own count of OOM kills. Without a limit, an OOM kill is recognised from the count of
// this process's cgroup rising while the child died by SIGKILL.
//
// cgroup v1 (a `memory` hierarchy): the child's cgroup is made under this process's memory cgroup.
// cgroup v2 (the unified hierarchy): the memory controller must be available to this process's
// cgroup; reel moves itself into a leaf `reel-<pid>` beside its children (v2 lets only leaves hold
// processes once a controller is enabled below) and enables the controller for them. Both need
// write access to the cgroup: root, or a delegated subtree (systemd-run --scope -p Delegate=yes).

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace reel::host {

class ChildCgroup {
 public:
  // Makes the cgroup `name` limited to `limit_bytes`. Throws IoError saying why and what to do
  // when this process cannot make one.
  ChildCgroup(const std::string& name, std::uint64_t limit_bytes);
  // Removes the cgroup; processes still in it (a plugin's own children) are killed first.
  ~ChildCgroup();
  ChildCgroup(const ChildCgroup&) = delete;
  ChildCgroup& operator=(const ChildCgroup&) = delete;

  // Moves `pid` into the cgroup. Throws IoError.
  void add(pid_t pid) const;
  // The kernel's count of OOM kills in this cgroup.
  long long oom_kills() const;

 private:
  std::filesystem::path dir_;
  bool v2_ = false;
};

// Makes and removes a limited cgroup, so that a command that will need them fails at its start
// rather than at its first graph or job. 0 when it worked; otherwise prints why and returns the
// exit code of an I/O error.
int check_memory_limit(std::uint64_t limit_bytes);

// The count of OOM kills in this process's own memory cgroup (v1 or v2), when it can be read.
std::optional<long long> own_cgroup_oom_kills();

}  // namespace reel::host
