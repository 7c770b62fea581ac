#pragma once
// One function per `reel` subcommand. Each returns the process exit code (docs/errors.md).

#include <reel/runtime/executor.h>
#include <reel/runtime/plugin_catalog.h>

#include <string>
#include <vector>

namespace reel::host {

struct RunArgs {
  std::vector<std::string> graphs;
  std::vector<std::string> sets;
  std::string report_file;
  bool progress = true;
  RunOptions options;
};

int command_run(const PluginCatalog& catalog, RunArgs args);
int command_validate(const PluginCatalog& catalog, const std::vector<std::string>& graphs,
                     const std::vector<std::string>& sets);
int command_plan(const PluginCatalog& catalog, const std::string& graph, const std::vector<std::string>& sets,
                 const RunOptions& options, bool json);
int command_plugins(const PluginCatalog& catalog, bool json);
int command_describe(const PluginCatalog& catalog, const std::string& type, bool json);
int command_worker(const PluginCatalog& catalog, const RunOptions& options);
// `reel models [DIR...]` (default: the model folders) and `reel models convert IN OUT`.
int command_models(const PluginCatalog& catalog, std::vector<std::string> dirs, bool json);
int command_models_convert(const PluginCatalog& catalog, const std::string& in, const std::string& out,
                           bool overwrite);

// Parses the graph file, applies --set, then runs it (or only plans it). A file that cannot be
// parsed comes back as a failed result; never throws.
RunResult run_graph_file(const PluginCatalog& catalog, const std::string& file, const std::vector<std::string>& sets,
                         const RunOptions& options, bool plan_only = false);

}  // namespace reel::host
