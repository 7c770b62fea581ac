// `reel schema [TYPE]`: JSON Schemas (draft 2020-12) an editor binds to graph files, made from the
// node types this reel has loaded, so completion and checking match `reel validate`.
#include "commands.h"

#include <iostream>

namespace reel::host {

namespace {

using nlohmann::json;

// What validate_params accepts for one param, as a JSON Schema. null always means "the default".
json param_schema(const ParamSpec& p) {
  json s = {{"description", p.description}};
  if (!p.required) s["default"] = p.default_value;
  auto bound = [&](double v) { return p.type == ParamType::integer ? json(static_cast<std::int64_t>(v)) : json(v); };
  auto with_range = [&](json number) {
    if (p.min) number["minimum"] = bound(*p.min);
    if (p.max) number["maximum"] = bound(*p.max);
    return number;
  };
  switch (p.type) {
    case ParamType::integer:
      // Words accepted in place of a number ("auto") are listed beside it.
      if (p.choices.empty())
        s["anyOf"] = {with_range({{"type", "integer"}}), {{"type", "null"}}};
      else
        s["anyOf"] = {with_range({{"type", "integer"}}), {{"enum", p.choices}}, {{"type", "null"}}};
      break;
    case ParamType::number:
      s["anyOf"] = {with_range({{"type", "number"}}), {{"type", "null"}}};
      break;
    case ParamType::boolean:
      s["type"] = {"boolean", "null"};
      break;
    case ParamType::string:
      s["type"] = {"string", "number", "null"};  // a number is taken as its text ("fps": 24)
      break;
    case ParamType::choice: {
      json choices = p.choices;
      choices.push_back(nullptr);
      s["enum"] = choices;
      break;
    }
  }
  return s;
}

json params_schema(const NodeType& type) {
  json properties = json::object();
  json required = json::array();
  for (const ParamSpec& p : type.params) {
    properties[p.name] = param_schema(p);
    if (p.required) required.push_back(p.name);
  }
  json s = {{"type", "object"}, {"properties", properties}, {"additionalProperties", false}};
  if (!required.empty()) {
    s["required"] = required;
    // A required param given as null is missing too.
    for (const auto& name : required) {
      json& prop = s["properties"][name.get<std::string>()];
      if (prop.contains("anyOf")) {
        json kept = json::array();
        for (const auto& alternative : prop["anyOf"])
          if (alternative != json{{"type", "null"}}) kept.push_back(alternative);
        prop["anyOf"] = kept;
      } else if (prop.contains("type")) {
        json kept = json::array();
        for (const auto& t : prop["type"])
          if (t != "null") kept.push_back(t);
        prop["type"] = kept;
      } else if (prop.contains("enum")) {
        prop["enum"].erase(prop["enum"].size() - 1);
      }
    }
  }
  return s;
}

json port_names(const std::vector<PortSpec>& ports) {
  json names = json::array();
  for (const auto& p : ports) names.push_back(p.name);
  return names;
}

// The node object for one type: its params, and input ports by name.
json node_schema(const NodeType& type) {
  json inputs = {{"type", "object"},
                 {"propertyNames", {{"enum", port_names(type.inputs)}}},
                 {"additionalProperties", {{"type", "string"}, {"pattern", "^[^.]+\\.[^.]+$"}}}};
  json s = {{"description", type.description},
            {"properties", {{"type", {{"const", type.name}}}, {"params", params_schema(type)}, {"inputs", inputs}}}};
  json required_inputs = json::array();
  for (const auto& p : type.inputs)
    if (!p.optional) required_inputs.push_back(p.name);
  if (!required_inputs.empty()) {
    s["properties"]["inputs"]["required"] = required_inputs;
    s["required"] = {"inputs"};
  }
  bool params_required = false;
  for (const ParamSpec& p : type.params) params_required |= p.required;
  if (params_required) s["required"].push_back("params");
  return s;
}

json graph_schema(const PluginCatalog& catalog) {
  json types = json::array();
  json per_type = json::array();
  for (const auto& [name, entry] : catalog.types()) {
    types.push_back(name);
    // Inline rather than a $ref, so no type name needs escaping into a JSON pointer.
    json condition = {{"properties", {{"type", {{"const", name}}}}}, {"required", json::array({"type"})}};
    per_type.push_back({{"if", condition}, {"then", node_schema(entry.type)}});
  }
  json node = {{"type", "object"},
               {"required", {"id", "type"}},
               {"additionalProperties", false},
               {"properties",
                {{"id", {{"type", "string"}, {"pattern", "^[A-Za-z_][A-Za-z0-9_-]*$"}}},
                 {"type", {{"enum", types}, {"description", "A node type; `reel plugins` lists them"}}},
                 {"description", {{"type", "string"}}},
                 {"params", {{"type", "object"}}},
                 {"inputs", {{"type", "object"}}},
                 {"timeout", {{"type", "number"},
                              {"exclusiveMinimum", 0},
                              {"maximum", 1e9},
                              {"description", "Seconds one call into this node may take (a frame, a model load)"}}}}}};
  if (!per_type.empty()) node["allOf"] = per_type;  // draft 2020-12 forbids an empty allOf
  return {{"$schema", "https://json-schema.org/draft/2020-12/schema"},
          {"$id", "reel-graph-v1-" REEL_VERSION_STRING ".schema.json"},
          {"title", "reel graph, format version 1, with the node types of this reel"},
          {"type", "object"},
          {"required", {"version", "nodes"}},
          {"additionalProperties", false},
          {"properties",
           {{"$schema", {{"type", "string"}}},
            {"version", {{"const", 1}}},
            {"description", {{"type", "string"}}},
            {"timeout",
             {{"type", "number"}, {"exclusiveMinimum", 0}, {"maximum", 1e9}, {"description", "Seconds the whole run may take"}}},
            {"nodes", {{"type", "array"}, {"minItems", 1}, {"items", node}}}}}};
}

}  // namespace

int command_schema(const PluginCatalog& catalog, const std::string& type_name) {
  if (type_name.empty()) {
    std::cout << graph_schema(catalog).dump(2) << '\n';
    return 0;
  }
  const RegisteredType* entry = catalog.find(type_name);
  if (!entry) {
    std::fprintf(stderr, "reel: unknown node type '%s'; `reel plugins` lists the known ones\n", type_name.c_str());
    return exit_code(ErrorKind::invalid_graph);
  }
  json s = params_schema(entry->type);
  s["$schema"] = "https://json-schema.org/draft/2020-12/schema";
  s["title"] = "params of " + type_name;
  s["description"] = entry->type.description;
  std::cout << s.dump(2) << '\n';
  return 0;
}

}  // namespace reel::host
