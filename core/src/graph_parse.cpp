// Graph files: JSON text -> GraphSpec, and --set overrides. Structure only; what the names refer
// to is checked by resolve_graph (graph_resolve.cpp).
#include <reel/runtime/fnv.h>
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
                       std::string hint, ErrorKind kind)
    : Error(kind, message, std::move(hint)),
      file_(std::move(file)),
      node_id_(std::move(node_id)),
      pointer_(std::move(pointer)) {}
GraphError::~GraphError() = default;

namespace {

constexpr int kFormatVersion = 1;

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
    if (json_nesting_depth(text) > kMaxJsonDepth)
      fail("", "the file nests arrays and objects more than " + std::to_string(kMaxJsonDepth) + " deep",
           {}, "A graph needs a few levels; this is not a graph file.");
    nlohmann::json root;
    try {
      root = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      fail("", "the file is not valid JSON at " + line_and_column(text, e.byte == 0 ? 0 : e.byte - 1));
    }
    GraphSpec graph;
    graph.file = file_;
    if (!root.is_object()) fail("", "the graph must be a JSON object with \"version\" and \"nodes\"");
    for (const auto& [key, value] : root.items())
      if (key != "version" && key != "nodes" && key != "description" && key != "$schema" && key != "timeout")
        fail("/" + key, "unknown top-level field '" + key + "'", {},
             "allowed: version, nodes, description, timeout, $schema");
    if (root.contains("$schema") && !root["$schema"].is_string())
      fail("/$schema", "\"$schema\" must be a string (the schema's path or URL, for editors)");
    check_description(root, "");
    graph.timeout = read_timeout(root, "");
    if (!root.contains("version")) fail("/version", "the graph has no \"version\"", {}, "add \"version\": 1");
    // A number equal to 1 (1.0 too: JSON Schema compares numbers by value, and so does reel).
    if (!root["version"].is_number() || root["version"].get<double>() != kFormatVersion)
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
  // "timeout": seconds, a positive number (a node's: the longest one call into it may take; the
  // graph's: the longest the whole run may take).
  std::optional<double> read_timeout(const nlohmann::json& object, const std::string& pointer,
                                     const std::string& node = {}) const {
    if (!object.contains("timeout")) return std::nullopt;
    const auto& value = object["timeout"];
    if (!value.is_number() || !(value.get<double>() > 0) || value.get<double>() > 1e9)
      fail(pointer + "/timeout", "\"timeout\" must be a number of seconds above 0", node,
           "for example \"timeout\": 600");
    return value.get<double>();
  }

  void check_description(const nlohmann::json& object, const std::string& pointer, const std::string& node = {}) const {
    if (object.contains("description") && !object["description"].is_string())
      fail(pointer + "/description", "\"description\" must be a string", node);
  }

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
      if (key != "id" && key != "type" && key != "params" && key != "inputs" && key != "description" &&
          key != "timeout")
        fail(pointer + "/" + key, "unknown field '" + key + "' in node '" + spec.id + "'", spec.id,
             "allowed: id, type, params, inputs, description, timeout");
    check_description(node, pointer, spec.id);
    spec.timeout = read_timeout(node, pointer, spec.id);
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

int json_nesting_depth(std::string_view text) noexcept {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

GraphSpec parse_graph_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw GraphError(path, "", "", "cannot read the graph file " + path + ": " + std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_graph_text(buffer.str(), path);
}

nlohmann::json effective_graph_json(const GraphSpec& graph) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const NodeSpec& n : graph.nodes) {
    nlohmann::json inputs = nlohmann::json::object();
    for (const auto& [port, ref] : n.inputs) inputs[port] = ref.node + "." + ref.port;
    nodes.push_back({{"id", n.id}, {"type", n.type}, {"params", n.params}, {"inputs", inputs}});
    if (n.timeout) nodes.back()["timeout"] = *n.timeout;
  }
  nlohmann::json document = {{"version", kFormatVersion}, {"nodes", nodes}};
  if (graph.timeout) document["timeout"] = *graph.timeout;
  return document;
}

std::string graph_fingerprint(const GraphSpec& graph) {
  // nlohmann::json keeps object keys sorted, so the dump is canonical.
  Fnv1a64 hash;
  hash.add(effective_graph_json(graph).dump());
  return hash.hex();
}

Override parse_override(const std::string& assignment) {
  auto eq = assignment.find('=');
  auto dot = assignment.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot > eq || dot == 0 || dot + 1 == eq)
    throw Error(ErrorKind::usage, "--set '" + assignment + "' is not node.param=value",
                "For example --set encode.crf=20.");
  return {assignment.substr(0, dot), assignment.substr(dot + 1, eq - dot - 1), assignment.substr(eq + 1)};
}

namespace {

// The value of `o` for a param of `spec`'s declared type.
nlohmann::json typed_value(const Override& o, const ParamSpec& spec, const std::string& type,
                           const std::string& assignment) {
  auto refuse = [&](const std::string& expected) {
    return Error(ErrorKind::usage,
                 "--set '" + assignment + "': " + o.param + " takes " + expected + ", not '" + o.value + "'",
                 "`reel describe " + type + "` lists its params.");
  };
  if (json_nesting_depth(o.value) > kMaxJsonDepth) throw refuse("a value nested at most " + std::to_string(kMaxJsonDepth) + " deep");
  nlohmann::json parsed = nlohmann::json::parse(o.value, nullptr, /*allow_exceptions=*/false);
  switch (spec.type) {
    case ParamType::string:
    case ParamType::choice:
      // The text as it is; a JSON string ("\"x\"") is unquoted, so quoting is never wrong.
      return parsed.is_string() ? parsed : nlohmann::json(o.value);
    case ParamType::integer:
      if (parsed.is_number_integer()) return parsed;
      if (std::find(spec.choices.begin(), spec.choices.end(), o.value) != spec.choices.end()) return o.value;
      throw refuse(spec.choices.empty() ? "an integer" : "an integer or one of its words");
    case ParamType::number:
      if (parsed.is_number()) return parsed;
      throw refuse("a number");
    case ParamType::boolean:
      if (parsed.is_boolean()) return parsed;
      throw refuse("true or false");
  }
  throw refuse("a value");
}

}  // namespace

void apply_overrides(GraphSpec& graph, const std::vector<std::string>& assignments, const PluginCatalog* catalog) {
  for (const std::string& assignment : assignments) {
    Override o = parse_override(assignment);
    auto node =
        std::find_if(graph.nodes.begin(), graph.nodes.end(), [&](const NodeSpec& n) { return n.id == o.node; });
    if (node == graph.nodes.end()) {
      std::string ids;
      for (const NodeSpec& n : graph.nodes) ids += (ids.empty() ? "" : ", ") + n.id;
      throw Error(ErrorKind::usage, "--set '" + assignment + "': " + graph.file + " has no node '" + o.node + "'",
                  "Its nodes are: " + ids + ".");
    }
    const RegisteredType* type = catalog ? catalog->find(node->type) : nullptr;
    if (!type) {
      // A bare word, or text nested too deep to be read as JSON, is a string.
      nlohmann::json value = json_nesting_depth(o.value) > kMaxJsonDepth
                                 ? nlohmann::json(nlohmann::json::value_t::discarded)
                                 : nlohmann::json::parse(o.value, nullptr, /*allow_exceptions=*/false);
      node->params[o.param] = value.is_discarded() ? nlohmann::json(o.value) : value;
    } else {
      const auto& params = type->type.params;
      auto spec = std::find_if(params.begin(), params.end(), [&](const ParamSpec& p) { return p.name == o.param; });
      if (spec == params.end()) {
        std::string names;
        for (const ParamSpec& p : params) names += (names.empty() ? "" : ", ") + p.name;
        throw Error(ErrorKind::usage,
                    "--set '" + assignment + "': " + node->type + " (node '" + o.node + "') has no param '" +
                        o.param + "'",
                    names.empty() ? "It takes no params." : "Its params are: " + names + ".");
      }
      node->params[o.param] = typed_value(o, *spec, node->type, assignment);
    }
    graph.overrides.push_back(assignment);
  }
}

}  // namespace reel
