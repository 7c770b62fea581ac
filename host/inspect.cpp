// The commands that read graphs and node type descriptions only: no node code runs, and with a
// warm plugin cache no plugin library (nor libtorch) is loaded.
#include "commands.h"

#include <reel/runtime/failure.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace reel::host {

namespace {

std::string read_stdin() {
  std::stringstream text;
  text << std::cin.rdbuf();
  return text.str();
}

}  // namespace

std::optional<Failure> read_graph(const PluginCatalog& catalog, const std::string& file,
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

int command_validate(const PluginCatalog& catalog, const std::vector<std::string>& graphs,
                     const std::vector<std::string>& sets) {
  int code = 0;
  for (const std::string& file : graphs) {
    GraphSpec graph;
    std::optional<Failure> failure = read_graph(catalog, file, std::nullopt, sets, graph);
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
  switch (t.frame_dependence) {
    case FrameDependence::same_frame:
      std::printf("frames: each output frame from its own input frame\n");
      break;
    case FrameDependence::adjacent_pair:
      std::printf("frames: the frames between two input frames from those two\n");
      break;
    case FrameDependence::undeclared:
      std::printf("frames: not declared (`reel shard` does not split a graph with this node)\n");
      break;
  }
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
