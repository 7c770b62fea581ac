#pragma once
// A graph file (format v1, docs/graph-format.md): parsed, overridden by --set, and validated
// against the plugin catalog before anything is configured or loaded.

#include <reel/error.h>
#include <reel/runtime/plugin_catalog.h>

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace reel {

// Every error found before the run names the file, the node and the field (a JSON pointer).
class GraphError : public Error {
 public:
  // `kind` is invalid_graph except where the graph is right but reel cannot serve it (a node type
  // whose plugin was refused: ErrorKind::plugin).
  GraphError(std::string file, std::string node_id, std::string pointer, const std::string& message,
             std::string hint = {}, ErrorKind kind = ErrorKind::invalid_graph);
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
  std::optional<double> timeout;          // seconds one call into the node may take ("timeout")
};

struct GraphSpec {
  std::string file;  // as given by the user ("<inline>" for text, "-" for stdin)
  std::vector<NodeSpec> nodes;
  std::vector<std::string> overrides;  // the `node.param=value` assignments applied, in order
  std::optional<double> timeout;       // seconds the whole run may take ("timeout")
};

// JSON from outside (a graph file, an override, a worker's line) may nest at most this deep: the
// code that copies and prints JSON is recursive, and 100,000 levels would exhaust the stack.
inline constexpr int kMaxJsonDepth = 64;
// How deep `text` nests arrays and objects (brackets inside strings do not count). Never throws.
int json_nesting_depth(std::string_view text) noexcept;

GraphSpec parse_graph_file(const std::string& path);
GraphSpec parse_graph_text(const std::string& text, const std::string& file_label);

// The graph as it will run (overrides applied), as a graph document.
nlohmann::json effective_graph_json(const GraphSpec& graph);
// FNV-1a 64 (hex) of the effective graph: the same for the same nodes, params and connections
// however the file is formatted, different when an override changes anything.
std::string graph_fingerprint(const GraphSpec& graph);

// One `node.param=value` assignment (--set, a worker job's "set").
struct Override {
  std::string node, param, value;
};
// Splits the text; throws Error(ErrorKind::usage) quoting it when it is not node.param=value.
Override parse_override(const std::string& assignment);

// Applies overrides in order. With the catalog, the value is typed by the param's declared type:
// a string param takes the text as it is ("30" stays a string), an integer, number or boolean
// param must parse as one (or be one of the integer param's words). Without it (or for a node of
// unknown type) the value is read as JSON when it parses, as a plain string otherwise. Throws
// Error(ErrorKind::usage) naming the assignment: bad syntax, no such node, no such param, a value
// of the wrong type.
void apply_overrides(GraphSpec& graph, const std::vector<std::string>& assignments,
                     const PluginCatalog* catalog = nullptr);

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
