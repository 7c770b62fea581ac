// The commands that run node code: `reel run` and `reel plan` (in reel-engine).
#include "commands.h"

#include "console.h"
#include "isolation.h"
#include "memory_cgroup.h"
#include "progress.h"

#include <reel/output_file.h>
#include <reel/runtime/report.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>

namespace reel::host {

namespace {

RunResult load_and_run(PluginCatalog& catalog, const std::string& file, const std::optional<std::string>& text,
                       const std::vector<std::string>& sets, const RunOptions& options, bool plan_only) {
  GraphSpec graph;
  if (auto failure = read_graph(catalog, file, text, sets, graph)) {
    RunResult r;
    r.graph_file = file;
    r.overrides = sets;
    r.failure = std::move(failure);
    return r;
  }
  // Only the plugins this graph uses are loaded (the others are known from the plugin cache).
  try {
    load_graph_types(catalog, graph);
  } catch (...) {
    RunResult r;
    r.graph_file = file;
    r.overrides = sets;
    r.failure = classify_exception(std::current_exception());
    r.failure->phase = Phase::load;
    return r;
  }
  return plan_only ? plan_graph(graph, catalog, options) : run_graph(graph, catalog, options);
}

}  // namespace

void load_graph_types(PluginCatalog& catalog, const GraphSpec& graph) {
  std::vector<std::string> types;
  for (const NodeSpec& node : graph.nodes) types.push_back(node.type);
  catalog.load_types(types);
}

void write_report_file(const std::string& path, const nlohmann::json& report) {
  OutputFile file(path, /*overwrite=*/true);
  {
    std::ofstream out(file.temporary());
    // Text from plugins and file names may hold invalid UTF-8: replaced, never a throw.
    out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    out.close();
    if (!out) throw IoError(path, "could not write the report " + path);
  }
  file.commit();
}

RunResult run_graph_file(PluginCatalog& catalog, const std::string& file, const std::vector<std::string>& sets,
                         const RunOptions& options, bool plan_only) {
  return load_and_run(catalog, file, std::nullopt, sets, options, plan_only);
}

RunResult run_graph_text(PluginCatalog& catalog, const std::string& text, const std::string& label,
                         const std::vector<std::string>& sets, const RunOptions& options) {
  return load_and_run(catalog, label, text, sets, options, /*plan_only=*/false);
}

int command_run(PluginCatalog& catalog, RunArgs args) {
  const std::optional<ChildRole> child = become_isolated_child(args.options);
  if (child) {  // one graph of the parent's command line, reported to the parent
    args.graphs = {args.graphs.at(child->graph_index)};
    args.report_file = child->report;
    args.isolate = false;
  }
  if (args.isolate && std::count(args.graphs.begin(), args.graphs.end(), "-") > 0) {
    std::fprintf(stderr, "reel: --isolate runs graph files; '-' (standard input) cannot be handed to the isolated run\n");
    return exit_code(ErrorKind::usage);
  }
  // A memory limit that cannot be applied, or a report that cannot be written, is found now, not
  // after a long run.
  if (args.isolate && args.memory_limit)
    if (const int code = check_memory_limit(args.memory_limit)) return code;
  if (!args.report_file.empty()) {
    try {
      OutputFile check(args.report_file, /*overwrite=*/true);
    } catch (const Error& e) {
      std::fprintf(stderr, "reel: --report: %s\n%s\n", e.what(), e.hint().c_str());
      return exit_code(ErrorKind::io);
    }
  }
  auto progress = make_progress_printer(args.progress && !args.isolate);  // an isolated run draws its own
  args.options.observer = progress.get();
  args.options.cancel = &cancel_flag();
  // Per graph run: its report and exit code (0: succeeded).
  std::vector<std::pair<nlohmann::json, int>> outcomes;
  for (std::size_t i = 0; i < args.graphs.size(); ++i) {
    if (cancel_flag()) break;  // a cancel stops the remaining graphs too
    int code = 0;
    if (args.isolate) {
      ChildRequest request;
      request.argv = args.command_line;
      request.graph_index = i;
      request.label = args.graphs[i];
      request.sets = args.sets;
      request.memory_limit = args.memory_limit;
      nlohmann::json report = run_in_child(request, code);
      outcomes.emplace_back(std::move(report), code);
      continue;
    }
    std::fprintf(stderr, "reel: running %s\n", args.graphs[i].c_str());
    RunResult result = run_graph_file(catalog, args.graphs[i], args.sets, args.options);
    if (progress) progress->end_run();
    print_run_outcome(result);
    outcomes.emplace_back(run_report(result), result.ok() ? 0 : exit_code(result.failure->kind));
  }

  int code = 0;
  std::size_t failed = 0;
  for (const auto& [report, graph_code] : outcomes)
    if (graph_code != 0) {
      ++failed;
      if (code == 0) code = graph_code;
    }
  if (args.graphs.size() > 1) {
    std::fprintf(stderr, "reel: %zu graphs: %zu succeeded, %zu failed%s\n", args.graphs.size(), outcomes.size() - failed,
                 failed, outcomes.size() < args.graphs.size() ? ", the rest not started (cancelled)" : "");
    for (const auto& [report, graph_code] : outcomes)
      if (graph_code != 0)
        std::fprintf(stderr, "  %s: %s\n", report["graph"]["file"].get<std::string>().c_str(),
                     report["error"].is_object() ? report["error"]["kind"].get<std::string>().c_str() : "failed");
  }
  if (!args.report_file.empty()) {
    nlohmann::json reports = nlohmann::json::array();
    for (const auto& [report, graph_code] : outcomes) reports.push_back(report);
    try {
      write_report_file(args.report_file, args.graphs.size() == 1 && reports.size() == 1 ? reports[0] : reports);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "reel: %s\n", e.what());
      if (code == 0) code = exit_code(ErrorKind::io);
    }
  }
  if (cancel_flag() && code == 0) code = exit_code(ErrorKind::cancelled);
  if (child) isolated_child_finished();
  return code;
}

int command_plan(PluginCatalog& catalog, const std::string& file, const std::vector<std::string>& sets,
                 const RunOptions& options, bool json) {
  RunResult plan = run_graph_file(catalog, file, sets, options, /*plan_only=*/true);

  if (json) {
    nlohmann::json report = run_report(plan);
    std::cout << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else if (plan.ok()) {
    std::printf("graph %s\n", file.c_str());
    std::uint64_t total = 0;
    for (const NodeReport& n : plan.nodes) {
      std::uint64_t weights = 0, working = 0;
      for (const auto& e : n.estimate) weights += e.weight_bytes, working += e.working_bytes;
      total += weights + working;
      std::printf("  %-12s %-22s weights %-10s working %s\n", n.id.c_str(), n.type.c_str(),
                  format_bytes(weights).c_str(), format_bytes(working).c_str());
    }
    std::printf("streams\n");
    for (const EdgeReport& e : plan.edges)
      std::printf("  %s -> %s: %s\n", e.from.c_str(), e.to.c_str(), e.stream ? e.stream->str().c_str() : "?");
    std::printf("estimated peak memory: %s (available now: %s)\n", format_bytes(total).c_str(),
                format_bytes(host_available_bytes()).c_str());
  }
  if (!plan.ok()) {
    std::fprintf(stderr, "reel: cannot plan %s\n%s\n", file.c_str(), plan.failure->user_message().c_str());
    return exit_code(plan.failure->kind);
  }
  return 0;
}

}  // namespace reel::host
