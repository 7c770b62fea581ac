#pragma once
// A graph file (format v1, docs/graph-format.md): parsed, overridden by --set, and validated
// against the plugin catalog before anything is configured or loaded.

#include <reel/error.h>
#include <reel/runtime/plugin_catalog.h>

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace reel {

// Every error found before the run names the file, the node and the field (a JSON pointer).
class GraphError : public Error {
 public:
  GraphError(std::string file, std::string node_id, std::string pointer, const std::string& message,
             std::string hint = {});
  ~GraphError() override;
  const std::string& file() const noexcept { return file_; }
  const std::string& node_id() const noexcept { return node_id_; }
  const std::string& pointer() const noexcept { return pointer_; }

 private:
  std::string file_, node_id_, pointer_;
};

struct PortRef {
  std::string node;
  std::string port;
};

struct NodeSpec {
  std::string id;
  std::string type;
  nlohmann::json params = nlohmann::json::object();
  std::map<std::string, PortRef> inputs;  // input port -> producer's output port
  std::string pointer;                    // "/nodes/3"
};

struct GraphSpec {
  std::string file;         // as given by the user ("<inline>" for text)
  std::string fingerprint;  // FNV-1a 64 of the file's bytes, hex
  std::vector<NodeSpec> nodes;
};

GraphSpec parse_graph_file(const std::string& path);
GraphSpec parse_graph_text(const std::string& text, const std::string& file_label);

// Applies `node.param=value` overrides. The value is read as JSON when it parses as JSON
// (numbers, true/false, quoted strings), as a plain string otherwise.
void apply_overrides(GraphSpec& graph, const std::vector<std::string>& assignments);

// A graph whose every reference resolves and whose params match their schemas.
struct ResolvedNode {
  const NodeSpec* spec = nullptr;
  const RegisteredType* type = nullptr;
  Params params;                                // defaults filled
  std::vector<std::pair<int, int>> input_from;  // per input port: (producer index, output port); (-1, -1) when an optional port is unconnected
};

struct ResolvedGraph {
  const GraphSpec* spec = nullptr;
  std::vector<ResolvedNode> nodes;  // in topological order; input_from uses these indices
};

// Checks `values` against a node type's schema and fills in defaults. Throws GraphError naming
// `file`, `node_id` and the field under `pointer` (e.g. "/nodes/2").
Params validate_params(const NodeType& type, const nlohmann::json& values, const std::string& file = {},
                       const std::string& node_id = {}, const std::string& pointer = {});

// Checks types, params, connections, cycles and sinks. Throws GraphError on the first problem.
ResolvedGraph resolve_graph(const GraphSpec& graph, const PluginCatalog& catalog);

}  // namespace reel
