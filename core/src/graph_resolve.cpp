// Graph validation: every name resolves, every param matches its schema, every connection fits,
// no cycles, at least one sink. Runs before anything is configured or loaded.
#include <reel/runtime/graph.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <queue>

namespace reel {

namespace {

// The producer index of an optional input port left unconnected.
constexpr std::size_t kUnconnected = static_cast<std::size_t>(-1);

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// "did you mean 'x'?" for a near miss, or the list of what exists.
std::string suggest(const std::string& wrong, const std::vector<std::string>& known) {
  std::string best;
  std::size_t best_distance = 3;
  for (const auto& name : known)
    if (std::size_t d = edit_distance(wrong, name); d < best_distance) best = name, best_distance = d;
  if (!best.empty()) return "did you mean '" + best + "'?";
  if (known.empty()) return {};
  std::string list;
  for (const auto& name : known) list += (list.empty() ? "" : ", ") + name;
  return "known: " + list;
}

// Schema checks for one node's params.
class ParamChecker {
 public:
  ParamChecker(std::string file, std::string node, std::string pointer)
      : file_(std::move(file)), node_(std::move(node)), pointer_(std::move(pointer)) {}

  nlohmann::json check(const NodeType& type, const nlohmann::json& given) const {
    nlohmann::json values = nlohmann::json::object();
    std::vector<std::string> names;
    for (const auto& spec : type.params) names.push_back(spec.name);
    for (const auto& [name, value] : given.items()) {
      if (std::find(names.begin(), names.end(), name) == names.end())
        fail(pointer_ + "/params/" + name, "node '" + node_ + "' (" + type.name + ") has no parameter '" + name + "'",
             suggest(name, names));
    }
    for (const ParamSpec& spec : type.params) {
      std::string pointer = pointer_ + "/params/" + spec.name;
      auto it = given.find(spec.name);
      if (it == given.end() || it->is_null()) {
        if (spec.required) fail(pointer, "node '" + node_ + "' needs parameter '" + spec.name + "'", spec.description);
        values[spec.name] = spec.default_value;
        continue;
      }
      values[spec.name] = check_value(spec, *it, pointer);
    }
    return values;
  }

  nlohmann::json check_value(const ParamSpec& spec, const nlohmann::json& value, const std::string& pointer) const {
    auto wrong_type = [&] {
      fail(pointer, "parameter '" + spec.name + "' of node '" + node_ + "' must be " +
                        (spec.type == ParamType::integer ? "an integer" : std::string("a ") + to_string(spec.type)) +
                        ", not " + value.dump());
    };
    switch (spec.type) {
      case ParamType::integer:
        if (value.is_string() && std::find(spec.choices.begin(), spec.choices.end(), value.get<std::string>()) !=
                                     spec.choices.end())
          return value;  // a word the type accepts in place of a number
        if (!value.is_number_integer()) {
          // 2.0 is an integer to a person.
          if (!value.is_number_float() || value.get<double>() != std::floor(value.get<double>())) wrong_type();
        }
        break;
      case ParamType::number:
        if (!value.is_number()) wrong_type();
        break;
      case ParamType::boolean:
        if (!value.is_boolean()) wrong_type();
        break;
      case ParamType::string:
        // A number where text is expected is meant as its text: "fps": 60, --set out.path=2024.
        if (value.is_number()) return value.dump();
        if (!value.is_string()) wrong_type();
        break;
      case ParamType::choice: {
        if (!value.is_string()) wrong_type();
        auto text = value.get<std::string>();
        if (std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end())
          fail(pointer,
               "parameter '" + spec.name + "' of node '" + node_ + "' is '" + text + "', not one of its choices",
               suggest(text, spec.choices));
        break;
      }
    }
    if (spec.type == ParamType::integer || spec.type == ParamType::number) {
      double v = value.get<double>();
      if ((spec.min && v < *spec.min) || (spec.max && v > *spec.max))
        fail(pointer, "parameter '" + spec.name + "' of node '" + node_ + "' is " + value.dump() +
                          ", out of range: it must be " + spec.range_text());
      if (spec.type == ParamType::integer) return static_cast<std::int64_t>(v);
    }
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& pointer, const std::string& message, std::string hint = {}) const {
    throw GraphError(file_, node_, pointer, message, std::move(hint));
  }

  std::string file_, node_, pointer_;
};

class Resolver {
 public:
  Resolver(const GraphSpec& graph, const PluginCatalog& catalog) : graph_(graph), catalog_(catalog) {}

  ResolvedGraph resolve() {
    std::map<std::string, std::size_t> index_of;
    for (std::size_t i = 0; i < graph_.nodes.size(); ++i) index_of[graph_.nodes[i].id] = i;

    std::vector<ResolvedNode> nodes(graph_.nodes.size());
    for (std::size_t i = 0; i < graph_.nodes.size(); ++i) {
      nodes[i].spec = &graph_.nodes[i];
      nodes[i].type = resolve_type(graph_.nodes[i]);
      nodes[i].params = validate_params(nodes[i].type->type, graph_.nodes[i].params, graph_.file, graph_.nodes[i].id,
                                        graph_.nodes[i].pointer);
    }
    // Connections, by original index for now.
    std::vector<std::vector<std::pair<std::size_t, int>>> from(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) from[i] = resolve_inputs(nodes[i], nodes, index_of);

    std::vector<std::size_t> order = topological_order(from);
    std::vector<std::size_t> position(nodes.size());
    for (std::size_t k = 0; k < order.size(); ++k) position[order[k]] = k;

    ResolvedGraph resolved;
    resolved.spec = &graph_;
    for (std::size_t original : order) {
      ResolvedNode node = std::move(nodes[original]);
      for (auto [producer, port] : from[original])
        node.input_from.emplace_back(producer == kUnconnected ? -1 : static_cast<int>(position[producer]), port);
      resolved.nodes.push_back(std::move(node));
    }
    bool has_sink = std::any_of(resolved.nodes.begin(), resolved.nodes.end(),
                                [](const ResolvedNode& n) { return n.type->type.outputs.empty(); });
    if (!has_sink)
      fail({}, "/nodes",
           "the graph has no sink (a node without outputs, such as an encoder), so it would produce nothing",
           "add an output node and connect it");
    return resolved;
  }

 private:
  [[noreturn]] void fail(const std::string& node, const std::string& pointer, const std::string& message,
                         std::string hint = {}) const {
    throw GraphError(graph_.file, node, pointer, message, std::move(hint));
  }

  const RegisteredType* resolve_type(const NodeSpec& node) const {
    if (const RegisteredType* type = catalog_.find(node.type)) return type;
    std::vector<std::string> known;
    for (const auto& [name, entry] : catalog_.types()) known.push_back(name);
    std::string hint = suggest(node.type, known);
    const auto& refused = catalog_.refused();
    std::string message = "node '" + node.id + "' has unknown type '" + node.type + "'";
    const bool near_miss = hint.rfind("did you mean", 0) == 0;
    if (refused.empty() || near_miss) {
      if (!refused.empty())
        hint += "; " + std::to_string(refused.size()) + " plugin(s) were refused at start-up (see `reel plugins`)";
      fail(node.id, node.pointer + "/type", message, hint);
    }
    // No near miss among the known types, and a library was refused: most likely the type lives
    // in it. That is a plugin problem (exit 78), and the refusal says what to fix.
    message += ", and " + std::to_string(refused.size()) + " plugin librar" + (refused.size() == 1 ? "y was" : "ies were") +
               " refused at start-up:";
    for (const RefusedPlugin& r : refused) message += "\n  " + r.reason;
    throw GraphError(graph_.file, node.id, node.pointer + "/type", message,
                     "If that library provides '" + node.type + "', rebuild it against this reel or fix what the "
                     "refusal names; `reel plugins` lists the types that did load.",
                     ErrorKind::plugin);
  }

  std::vector<std::pair<std::size_t, int>> resolve_inputs(const ResolvedNode& node,
                                                          const std::vector<ResolvedNode>& nodes,
                                                          const std::map<std::string, std::size_t>& index_of) const {
    const NodeSpec& spec = *node.spec;
    const NodeType& type = node.type->type;
    std::vector<std::string> port_names;
    for (const auto& port : type.inputs) port_names.push_back(port.name);
    for (const auto& [port, ref] : spec.inputs)
      if (std::find(port_names.begin(), port_names.end(), port) == port_names.end())
        fail(spec.id, spec.pointer + "/inputs/" + port,
             "node '" + spec.id + "' (" + type.name + ") has no input port '" + port + "'",
             port_names.empty() ? type.name + " is a source and takes no inputs" : suggest(port, port_names));

    std::vector<std::pair<std::size_t, int>> from;
    for (const PortSpec& port : type.inputs) {
      std::string pointer = spec.pointer + "/inputs/" + port.name;
      auto it = spec.inputs.find(port.name);
      if (it == spec.inputs.end() && port.optional) {
        from.emplace_back(kUnconnected, -1);
        continue;
      }
      if (it == spec.inputs.end())
        fail(spec.id, pointer, "input port '" + port.name + "' of node '" + spec.id + "' is not connected",
             "add \"inputs\": {\"" + port.name + "\": \"<node>.<port>\"}");
      const PortRef& ref = it->second;
      auto producer = index_of.find(ref.node);
      if (producer == index_of.end()) {
        std::vector<std::string> ids;
        for (const auto& [id, i] : index_of) ids.push_back(id);
        fail(spec.id, pointer,
             "input '" + port.name + "' of node '" + spec.id + "' refers to node '" + ref.node +
                 "', which is not in the graph",
             suggest(ref.node, ids));
      }
      const NodeType& producer_type = nodes[producer->second].type->type;
      int output = -1;
      std::vector<std::string> outputs;
      for (std::size_t k = 0; k < producer_type.outputs.size(); ++k) {
        outputs.push_back(producer_type.outputs[k].name);
        if (producer_type.outputs[k].name == ref.port) output = static_cast<int>(k);
      }
      if (output < 0)
        fail(spec.id, pointer,
             "input '" + port.name + "' of node '" + spec.id + "' refers to '" + ref.node + "." + ref.port + "', but " +
                 producer_type.name + " has no output port '" + ref.port + "'",
             outputs.empty() ? producer_type.name + " is a sink and has no outputs" : suggest(ref.port, outputs));
      if (port.kind == PortKind::image && producer_type.outputs[output].kind != PortKind::image)
        fail(spec.id, pointer,
             "input '" + port.name + "' of node '" + spec.id + "' takes an image, but '" + ref.node + "." + ref.port +
                 "' is a video stream",
             "connect an image source (such as source.image) here");
      from.emplace_back(producer->second, output);
    }
    return from;
  }

  // Kahn's algorithm, keeping file order among ready nodes so runs and reports are stable.
  std::vector<std::size_t> topological_order(const std::vector<std::vector<std::pair<std::size_t, int>>>& from) const {
    std::size_t n = from.size();
    std::vector<int> waiting(n, 0);
    std::vector<std::vector<std::size_t>> consumers(n);
    for (std::size_t i = 0; i < n; ++i)
      for (auto [producer, port] : from[i])
        if (producer != kUnconnected) ++waiting[i], consumers[producer].push_back(i);
    std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> ready;
    for (std::size_t i = 0; i < n; ++i)
      if (waiting[i] == 0) ready.push(i);
    std::vector<std::size_t> order;
    while (!ready.empty()) {
      std::size_t i = ready.top();
      ready.pop();
      order.push_back(i);
      for (std::size_t c : consumers[i])
        if (--waiting[c] == 0) ready.push(c);
    }
    if (order.size() != n) {
      std::size_t stuck = 0;
      while (waiting[stuck] == 0) ++stuck;
      // Walk back along unfinished producers until a node repeats: that loop is the cycle.
      std::vector<std::size_t> path{stuck};
      for (;;) {
        std::size_t next = stuck;
        for (auto [producer, port] : from[path.back()])
          if (waiting[producer] != 0) {
            next = producer;
            break;
          }
        auto seen = std::find(path.begin(), path.end(), next);
        if (seen != path.end()) {
          // path runs against the flow (each entry is fed by the next), so read it backwards.
          std::vector<std::size_t> cycle(seen, path.end());
          std::string text = graph_.nodes[cycle[0]].id;
          for (std::size_t k = cycle.size() - 1; k >= 1; --k) text += " -> " + graph_.nodes[cycle[k]].id;
          text += " -> " + graph_.nodes[cycle[0]].id;
          const NodeSpec& node = graph_.nodes[cycle[0]];
          fail(node.id, node.pointer + "/inputs", "the graph has a cycle: " + text,
               "a graph must flow one way; remove one of these connections");
        }
        path.push_back(next);
      }
    }
    return order;
  }

  const GraphSpec& graph_;
  const PluginCatalog& catalog_;
};

}  // namespace

Params validate_params(const NodeType& type, const nlohmann::json& values, const std::string& file,
                       const std::string& node_id, const std::string& pointer) {
  if (!values.is_object()) throw GraphError(file, node_id, pointer + "/params", "\"params\" must be an object");
  return Params(ParamChecker(file, node_id, pointer).check(type, values));
}

ResolvedGraph resolve_graph(const GraphSpec& graph, const PluginCatalog& catalog) {
  return Resolver(graph, catalog).resolve();
}

}  // namespace reel
