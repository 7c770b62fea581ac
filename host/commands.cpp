#include "commands.h"

#include "console.h"

#include <reel/output_file.h>
#include <reel/runtime/report.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

namespace reel::host {

namespace {

std::string read_stdin() {
  std::stringstream text;
  text << std::cin.rdbuf();
  return text.str();
}

// Parses (`text` when given, else the file; "-" is standard input) and applies the overrides.
std::optional<Failure> load_graph(const PluginCatalog& catalog, const std::string& file,
                                  const std::optional<std::string>& text, const std::vector<std::string>& sets,
                                  GraphSpec& graph) {
  try {
    if (text)
      graph = parse_graph_text(*text, file);
    else
      graph = file == "-" ? parse_graph_text(read_stdin(), "-") : parse_graph_file(file);
    apply_overrides(graph, sets, &catalog);
    return std::nullopt;
  } catch (...) {
    Failure f = classify_exception(std::current_exception());
    f.phase = Phase::parse;
    if (f.file.empty() && f.kind != ErrorKind::usage) f.file = file;
    return f;
  }
}

RunResult load_and_run(const PluginCatalog& catalog, const std::string& file, const std::optional<std::string>& text,
                       const std::vector<std::string>& sets, const RunOptions& options, bool plan_only) {
  GraphSpec graph;
  if (auto failure = load_graph(catalog, file, text, sets, graph)) {
    RunResult r;
    r.graph_file = file;
    r.overrides = sets;
    r.failure = std::move(failure);
    return r;
  }
  return plan_only ? plan_graph(graph, catalog, options) : run_graph(graph, catalog, options);
}

}  // namespace

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

RunResult run_graph_file(const PluginCatalog& catalog, const std::string& file, const std::vector<std::string>& sets,
                         const RunOptions& options, bool plan_only) {
  return load_and_run(catalog, file, std::nullopt, sets, options, plan_only);
}

RunResult run_graph_text(const PluginCatalog& catalog, const std::string& text, const std::string& label,
                         const std::vector<std::string>& sets, const RunOptions& options) {
  return load_and_run(catalog, label, text, sets, options, /*plan_only=*/false);
}

int command_run(const PluginCatalog& catalog, RunArgs args) {
  // A report that cannot be written is found now, not after a long run.
  if (!args.report_file.empty()) {
    try {
      OutputFile check(args.report_file, /*overwrite=*/true);
    } catch (const Error& e) {
      std::fprintf(stderr, "reel: --report: %s\n%s\n", e.what(), e.hint().c_str());
      return exit_code(ErrorKind::io);
    }
  }
  auto progress = make_progress_printer(args.progress);
  args.options.observer = progress.get();
  args.options.cancel = &cancel_flag();
  std::vector<RunResult> results;
  for (const std::string& file : args.graphs) {
    if (cancel_flag()) break;  // a cancel stops the remaining graphs too
    std::fprintf(stderr, "reel: running %s\n", file.c_str());
    results.push_back(run_graph_file(catalog, file, args.sets, args.options));
    if (progress) progress->end_run();
    print_run_outcome(results.back());
  }

  int code = 0;
  std::size_t failed = 0;
  for (const RunResult& r : results)
    if (!r.ok()) {
      ++failed;
      if (code == 0) code = exit_code(r.failure->kind);
    }
  if (args.graphs.size() > 1) {
    std::fprintf(stderr, "reel: %zu graphs: %zu succeeded, %zu failed%s\n", args.graphs.size(), results.size() - failed,
                 failed, results.size() < args.graphs.size() ? ", the rest not started (cancelled)" : "");
    for (const RunResult& r : results)
      if (!r.ok()) std::fprintf(stderr, "  %s: %s\n", r.graph_file.c_str(), to_string(r.failure->kind));
  }
  if (!args.report_file.empty()) {
    nlohmann::json reports = nlohmann::json::array();
    for (const RunResult& r : results) reports.push_back(run_report(r));
    try {
      write_report_file(args.report_file, args.graphs.size() == 1 && reports.size() == 1 ? reports[0] : reports);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "reel: %s\n", e.what());
      if (code == 0) code = exit_code(ErrorKind::io);
    }
  }
  if (cancel_flag() && code == 0) code = exit_code(ErrorKind::cancelled);
  return code;
}

int command_validate(const PluginCatalog& catalog, const std::vector<std::string>& graphs,
                     const std::vector<std::string>& sets) {
  int code = 0;
  for (const std::string& file : graphs) {
    GraphSpec graph;
    std::optional<Failure> failure = load_graph(catalog, file, std::nullopt, sets, graph);
    if (!failure) {
      try {
        resolve_graph(graph, catalog);
      } catch (...) {
        failure = classify_exception(std::current_exception());
        failure->phase = Phase::validate;
      }
    }
    if (failure) {
      std::fprintf(stderr, "%s: invalid\n%s\n", file.c_str(), failure->user_message().c_str());
      if (code == 0) code = exit_code(failure->kind);
    } else {
      std::printf("%s: valid (%zu nodes)\n", file.c_str(), graph.nodes.size());
    }
  }
  return code;
}

int command_plan(const PluginCatalog& catalog, const std::string& file, const std::vector<std::string>& sets,
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

int command_plugins(const PluginCatalog& catalog, bool json) {
  if (json) {
    nlohmann::json doc = {{"node_types", nlohmann::json::array()}, {"refused", nlohmann::json::array()}};
    for (const auto& [name, entry] : catalog.types()) doc["node_types"].push_back(node_type_json(entry));
    for (const auto& r : catalog.refused())
      doc["refused"].push_back({{"library", r.plugin_file.string()}, {"reason", r.reason}});
    std::cout << doc.dump(2) << '\n';
    return 0;
  }
  for (const auto& [name, entry] : catalog.types())
    std::printf("%-24s %s  [%s]\n", name.c_str(), entry.type.description.c_str(), entry.plugin_file.filename().c_str());
  if (catalog.types().empty()) std::printf("no node types found; see --plugin-path and REEL_PLUGIN_PATH\n");
  for (const auto& r : catalog.refused()) std::printf("refused: %s\n", r.reason.c_str());
  return 0;
}

int command_describe(const PluginCatalog& catalog, const std::string& type_name, bool json) {
  const RegisteredType* entry = catalog.find(type_name);
  if (!entry) {
    std::fprintf(stderr, "reel: unknown node type '%s'; `reel plugins` lists the known ones\n", type_name.c_str());
    return exit_code(ErrorKind::invalid_graph);
  }
  if (json) {
    std::cout << node_type_json(*entry).dump(2) << '\n';
    return 0;
  }
  const NodeType& t = entry->type;
  std::printf("%s - %s\nplugin: %s\n", t.name.c_str(), t.description.c_str(), entry->plugin_file.string().c_str());
  if (t.concurrency > 1) std::printf("concurrency: up to %d frames at once\n", t.concurrency);
  auto ports = [](const char* title, const std::vector<PortSpec>& list) {
    std::printf("%s:%s\n", title, list.empty() ? " none" : "");
    for (const auto& p : list)
      std::printf("  %-10s %-6s %s%s\n", p.name.c_str(), to_string(p.kind), p.optional ? "(optional) " : "",
                  p.description.c_str());
  };
  ports("inputs", t.inputs);
  ports("outputs", t.outputs);
  std::printf("params:%s\n", t.params.empty() ? " none" : "");
  int width = 14;  // the name column, widened for the longest name
  for (const ParamSpec& p : t.params) width = std::max(width, static_cast<int>(p.name.size()));
  for (const ParamSpec& p : t.params) {
    std::string constraint;
    if (p.required)
      constraint = "required";
    else
      constraint = "default " + p.default_value.dump();
    if (p.min || p.max) constraint += ", " + p.range_text();
    if (!p.choices.empty()) {
      constraint += p.type == ParamType::integer ? ", or" : ", one of";
      for (const auto& c : p.choices) constraint += " " + c;
    }
    std::printf("  %-*s %-8s %s\n  %-*s %-8s (%s)\n", width, p.name.c_str(), to_string(p.type), p.description.c_str(),
                width, "", "", constraint.c_str());
  }
  if (!t.example_params.empty()) std::printf("example params: %s\n", t.example_params.dump().c_str());
  return 0;
}

}  // namespace reel::host
