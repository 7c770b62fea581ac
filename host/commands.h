#pragma once
// One function per `reel` subcommand. Each returns the process exit code (docs/errors.md).
//
// `reel` itself links libreel-base only and answers the commands that read descriptions (validate,
// plugins, describe, schema). The commands that run node code (run, plan, worker, models) are in
// reel-engine, the same command line linked with libreel and libtorch, which `reel` executes in its
// own place (same process id, arguments and streams).

#include <reel/runtime/executor.h>
#include <reel/runtime/failure.h>
#include <reel/runtime/graph.h>
#include <reel/runtime/plugin_catalog.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace reel::host {

// --- reel (inspect.cpp, schema.cpp) -----------------------------------------------------------

int command_validate(const PluginCatalog& catalog, const std::vector<std::string>& graphs,
                     const std::vector<std::string>& sets);
int command_plugins(const PluginCatalog& catalog, bool json);
// The JSON Schema for graph files with every known node type's params, or one type's params.
int command_schema(const PluginCatalog& catalog, const std::string& type);
int command_describe(const PluginCatalog& catalog, const std::string& type, bool json);

// Parses the graph (`text` when given, else the file; "-" is standard input) and applies the
// overrides, typed by the catalog. A failure comes back classified (a bad override:
// ErrorKind::usage); never throws.
std::optional<Failure> read_graph(const PluginCatalog& catalog, const std::string& file,
                                  const std::optional<std::string>& text, const std::vector<std::string>& sets,
                                  GraphSpec& graph);

// --- reel-engine (run.cpp, worker.cpp, models.cpp) --------------------------------------------
// These take the catalog to change: they load the plugins they use (catalog.load_types).

struct RunArgs {
  std::vector<std::string> graphs;
  std::vector<std::string> sets;
  std::string report_file;
  bool progress = true;
  bool isolate = false;                   // each graph in a child process (isolation.h)
  std::uint64_t memory_limit = 0;         // bytes per isolated child (memory_cgroup.h); 0: none
  std::vector<std::string> command_line;  // this process's arguments, for the isolated children
  RunOptions options;
};

int command_run(PluginCatalog& catalog, RunArgs args);
int command_plan(PluginCatalog& catalog, const std::string& graph, const std::vector<std::string>& sets,
                 const RunOptions& options, bool json);
// For `reel worker`: keeps the process's stdout for the event stream and points fd 1 at stderr,
// so that whatever else prints to stdout (a plugin, a library) lands in the log instead of
// corrupting the events. Call before plugins load.
std::FILE* take_stdout_for_events();
struct WorkerArgs {
  bool isolate = true;                    // each job in a child process (isolation.h)
  std::uint64_t memory_limit = 0;         // bytes per isolated child (memory_cgroup.h); 0: none
  std::vector<std::string> command_line;  // this process's arguments, for those children
};
int command_worker(PluginCatalog& catalog, const RunOptions& options, std::FILE* events, const WorkerArgs& args);
// `reel models [DIR...]` (default: the model folders) and `reel models convert IN OUT`.
int command_models(PluginCatalog& catalog, std::vector<std::string> dirs, bool json);
int command_models_convert(PluginCatalog& catalog, const std::string& in, const std::string& out, bool overwrite);

// Parses the graph file ("-": standard input), applies the overrides (typed by the catalog),
// loads the plugins it uses, then runs it (or only plans it). A graph that cannot be parsed,
// overridden or loaded comes back as a failed result; never throws.
RunResult run_graph_file(PluginCatalog& catalog, const std::string& file, const std::vector<std::string>& sets,
                         const RunOptions& options, bool plan_only = false);
// The same for a graph given as text (a worker job's inline graph), called `label` in messages.
RunResult run_graph_text(PluginCatalog& catalog, const std::string& text, const std::string& label,
                         const std::vector<std::string>& sets, const RunOptions& options);

// Loads the plugins that provide the graph's node types, and only those (the others are known from
// the plugin cache). Throws what loading a library throws.
void load_graph_types(PluginCatalog& catalog, const GraphSpec& graph);

// Writes a run report (or an array of them) atomically: a temporary file renamed into place.
// Throws IoError naming the path.
void write_report_file(const std::string& path, const nlohmann::json& report);

}  // namespace reel::host
