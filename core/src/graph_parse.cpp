// Graph files: JSON text -> GraphSpec, and --set overrides. Structure only; what the names refer
// to is checked by resolve_graph (graph_resolve.cpp).
#include <reel/runtime/graph.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

namespace reel {

GraphError::GraphError(std::string file, std::string node_id, std::string pointer, const std::string& message,
                       std::string hint)
    : Error(ErrorKind::invalid_graph, message, std::move(hint)),
      file_(std::move(file)),
      node_id_(std::move(node_id)),
      pointer_(std::move(pointer)) {}
GraphError::~GraphError() = default;

namespace {

constexpr int kFormatVersion = 1;

std::string fingerprint(const std::string& bytes) {
  std::uint64_t hash = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : bytes) hash = (hash ^ c) * 1099511628211ull;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

std::string line_and_column(const std::string& text, std::size_t byte) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n')
      ++line, column = 1;
    else
      ++column;
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

bool valid_id(const std::string& id) {
  static const std::regex pattern("[A-Za-z_][A-Za-z0-9_-]*");
  return std::regex_match(id, pattern);
}

class Parser {
 public:
  Parser(const std::string& file) : file_(file) {}

  [[noreturn]] void fail(const std::string& pointer, const std::string& message, const std::string& node = {},
                         std::string hint = {}) const {
    throw GraphError(file_, node, pointer, message, std::move(hint));
  }

  GraphSpec parse(const std::string& text) {
    nlohmann::json root;
    try {
      root = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      fail("", "the file is not valid JSON at " + line_and_column(text, e.byte == 0 ? 0 : e.byte - 1));
    }
    GraphSpec graph;
    graph.file = file_;
    graph.fingerprint = fingerprint(text);
    if (!root.is_object()) fail("", "the graph must be a JSON object with \"version\" and \"nodes\"");
    for (const auto& [key, value] : root.items())
      if (key != "version" && key != "nodes" && key != "description")
        fail("/" + key, "unknown top-level field '" + key + "'", {}, "allowed: version, nodes, description");
    if (!root.contains("version")) fail("/version", "the graph has no \"version\"", {}, "add \"version\": 1");
    if (!root["version"].is_number_integer() || root["version"].get<std::int64_t>() != kFormatVersion)
      fail("/version", "graph format version " + root["version"].dump() + " is not supported", {},
           "this reel reads version " + std::to_string(kFormatVersion));
    if (!root.contains("nodes") || !root["nodes"].is_array() || root["nodes"].empty())
      fail("/nodes", "\"nodes\" must be a non-empty array of nodes");

    const auto& nodes = root["nodes"];
    for (std::size_t i = 0; i < nodes.size(); ++i)
      graph.nodes.push_back(parse_node(nodes[i], "/nodes/" + std::to_string(i)));
    for (std::size_t i = 0; i < graph.nodes.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (graph.nodes[i].id == graph.nodes[j].id)
          fail(graph.nodes[i].pointer + "/id",
               "node id '" + graph.nodes[i].id + "' is used twice (also at " + graph.nodes[j].pointer + ")",
               graph.nodes[i].id);
    return graph;
  }

 private:
  NodeSpec parse_node(const nlohmann::json& node, const std::string& pointer) {
    NodeSpec spec;
    spec.pointer = pointer;
    if (!node.is_object()) fail(pointer, "a node must be a JSON object");
    if (!node.contains("id") || !node["id"].is_string()) fail(pointer + "/id", "the node has no string \"id\"");
    spec.id = node["id"].get<std::string>();
    if (!valid_id(spec.id))
      fail(pointer + "/id", "node id '" + spec.id + "' is not valid", spec.id,
           "use letters, digits, '_' and '-', starting with a letter or '_'");
    for (const auto& [key, value] : node.items())
      if (key != "id" && key != "type" && key != "params" && key != "inputs" && key != "description")
        fail(pointer + "/" + key, "unknown field '" + key + "' in node '" + spec.id + "'", spec.id,
             "allowed: id, type, params, inputs, description");
    if (!node.contains("type") || !node["type"].is_string())
      fail(pointer + "/type", "node '" + spec.id + "' has no string \"type\"", spec.id);
    spec.type = node["type"].get<std::string>();
    if (node.contains("params")) {
      if (!node["params"].is_object()) fail(pointer + "/params", "\"params\" must be an object", spec.id);
      spec.params = node["params"];
    }
    if (node.contains("inputs")) {
      if (!node["inputs"].is_object())
        fail(pointer + "/inputs", "\"inputs\" must be an object mapping input ports to \"node.port\"", spec.id);
      for (const auto& [port, ref] : node["inputs"].items()) {
        std::string where = pointer + "/inputs/" + port;
        if (!ref.is_string()) fail(where, "input '" + port + "' must be a string \"node.port\"", spec.id);
        std::string text = ref.get<std::string>();
        auto dot = text.find('.');
        if (dot == std::string::npos || dot == 0 || dot + 1 == text.size())
          fail(where, "input '" + port + "' is \"" + text + "\", not \"node.port\"", spec.id,
               "for example \"source.out\"");
        spec.inputs[port] = PortRef{text.substr(0, dot), text.substr(dot + 1)};
      }
    }
    return spec;
  }

  std::string file_;
};

}  // namespace

GraphSpec parse_graph_text(const std::string& text, const std::string& file_label) {
  return Parser(file_label).parse(text);
}

GraphSpec parse_graph_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw GraphError(path, "", "", "cannot read the graph file " + path + ": " + std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_graph_text(buffer.str(), path);
}

void apply_overrides(GraphSpec& graph, const std::vector<std::string>& assignments) {
  for (const std::string& assignment : assignments) {
    auto eq = assignment.find('=');
    auto dot = assignment.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq || dot == 0 || dot + 1 == eq)
      throw GraphError(graph.file, "", "", "--set '" + assignment + "' is not node.param=value");
    std::string node_id = assignment.substr(0, dot);
    std::string param = assignment.substr(dot + 1, eq - dot - 1);
    std::string text = assignment.substr(eq + 1);
    auto node =
        std::find_if(graph.nodes.begin(), graph.nodes.end(), [&](const NodeSpec& n) { return n.id == node_id; });
    if (node == graph.nodes.end())
      throw GraphError(graph.file, node_id, "/nodes",
                       "--set '" + assignment + "': the graph has no node '" + node_id + "'");
    nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) value = text;  // a bare word is a string
    node->params[param] = value;
  }
}

}  // namespace reel
