// One test per way a graph can be wrong. Each asserts that the error names the file, the node
// and the field (JSON pointer), since that is what lets a person fix it.
#include "test_support.h"

#include <reel/runtime/graph.h>

#include <gtest/gtest.h>

using nlohmann::json;

namespace reel {
namespace {

struct Caught {
  std::string file, node, pointer, message, hint;
};

Caught validate_text(const std::string& text) {
  try {
    GraphSpec g = parse_graph_text(text, "bad.json");
    resolve_graph(g, test::catalog());
  } catch (const GraphError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_graph);
    return {e.file(), e.node_id(), e.pointer(), e.what(), e.hint()};
  }
  ADD_FAILURE() << "graph was accepted: " << text;
  return {};
}

Caught validate(const json& nodes) { return validate_text(test::graph_json(nodes).dump()); }

json source(const std::string& id = "src") {
  return {{"id", id}, {"type", "test.source"}, {"params", {{"frames", 3}}}};
}
json sink(const std::string& from, const std::string& id = "sink") {
  return {{"id", id}, {"type", "test.sink"}, {"inputs", {{"in", from}}}};
}

TEST(GraphValidation, AcceptsAValidGraphAndOrdersNodesTopologically) {
  // Listed sink first: the resolved order must still put the source first.
  GraphSpec g = test::graph(test::graph_json(
      {sink("m.out"), {{"id", "m"}, {"type", "test.map"}, {"inputs", {{"in", "src.out"}}}}, source()}));
  ResolvedGraph r = resolve_graph(g, test::catalog());
  ASSERT_EQ(r.nodes.size(), 3u);
  EXPECT_EQ(r.nodes[0].spec->id, "src");
  EXPECT_EQ(r.nodes[1].spec->id, "m");
  EXPECT_EQ(r.nodes[2].spec->id, "sink");
  EXPECT_EQ(r.nodes[2].input_from.at(0), std::make_pair(1, 0));
  EXPECT_EQ(r.nodes[1].params.integer("copies"), 1);  // default filled in
}

TEST(GraphValidation, InvalidJsonNamesLineAndColumn) {
  Caught c = validate_text("{\n  \"version\": 1,\n  \"nodes\": [,]\n}");
  EXPECT_EQ(c.file, "bad.json");
  EXPECT_NE(c.message.find("line 3"), std::string::npos) << c.message;
}

TEST(GraphValidation, WrongFormatVersion) {
  Caught c = validate_text(R"({"version": 2, "nodes": []})");
  EXPECT_EQ(c.pointer, "/version");
  EXPECT_NE(c.message.find("version 2"), std::string::npos);
}

TEST(GraphValidation, MissingVersion) { EXPECT_EQ(validate_text(R"({"nodes": []})").pointer, "/version"); }

TEST(GraphValidation, EmptyNodes) { EXPECT_EQ(validate_text(R"({"version": 1, "nodes": []})").pointer, "/nodes"); }

TEST(GraphValidation, UnknownTopLevelField) {
  Caught c = validate_text(R"({"version": 1, "nodes": [], "nodez": 1})");
  EXPECT_EQ(c.pointer, "/nodez");
}

TEST(GraphValidation, UnknownNodeField) {
  json s = source();
  s["param"] = json::object();
  Caught c = validate({s, sink("src.out")});
  EXPECT_EQ(c.node, "src");
  EXPECT_EQ(c.pointer, "/nodes/0/param");
}

TEST(GraphValidation, DuplicateNodeIds) {
  Caught c = validate({source("a"), source("a"), sink("a.out")});
  EXPECT_EQ(c.node, "a");
  EXPECT_EQ(c.pointer, "/nodes/1/id");
  EXPECT_NE(c.message.find("/nodes/0"), std::string::npos);
}

TEST(GraphValidation, InvalidNodeId) {
  Caught c = validate({source("my.src"), sink("src.out")});
  EXPECT_EQ(c.pointer, "/nodes/0/id");
}

TEST(GraphValidation, UnknownNodeTypeSuggestsTheNearestName) {
  Caught c = validate({{{"id", "src"}, {"type", "test.sourse"}}, sink("src.out")});
  EXPECT_EQ(c.node, "src");
  EXPECT_EQ(c.pointer, "/nodes/0/type");
  EXPECT_NE(c.message.find("test.sourse"), std::string::npos);
  EXPECT_NE(c.hint.find("test.source"), std::string::npos);
}

TEST(GraphValidation, UnknownParamSuggestsTheNearestName) {
  json s = source();
  s["params"]["frame"] = 4;
  Caught c = validate({s, sink("src.out")});
  EXPECT_EQ(c.node, "src");
  EXPECT_EQ(c.pointer, "/nodes/0/params/frame");
  EXPECT_NE(c.hint.find("'frames'"), std::string::npos);
}

TEST(GraphValidation, MissingRequiredParam) {
  Caught c = validate({{{"id", "src"}, {"type", "test.source"}}, sink("src.out")});
  EXPECT_EQ(c.node, "src");
  EXPECT_EQ(c.pointer, "/nodes/0/params/frames");
  EXPECT_NE(c.message.find("needs parameter 'frames'"), std::string::npos);
}

TEST(GraphValidation, IllTypedParam) {
  json s = source();
  s["params"]["frames"] = "ten";
  Caught c = validate({s, sink("src.out")});
  EXPECT_EQ(c.pointer, "/nodes/0/params/frames");
  EXPECT_NE(c.message.find("must be an integer"), std::string::npos);
}

TEST(GraphValidation, FractionalValueForIntegerParam) {
  json s = source();
  s["params"]["frames"] = 2.5;
  EXPECT_EQ(validate({s, sink("src.out")}).pointer, "/nodes/0/params/frames");
}

TEST(GraphValidation, OutOfRangeParam) {
  json s = source();
  s["params"]["width"] = 0;
  Caught c = validate({s, sink("src.out")});
  EXPECT_EQ(c.pointer, "/nodes/0/params/width");
  EXPECT_NE(c.message.find("from 1 to 8192"), std::string::npos) << c.message;
}

TEST(GraphValidation, ValueNotAmongChoices) {
  json s = source();
  s["params"]["fail_with"] = "c10_om";
  Caught c = validate({s, sink("src.out")});
  EXPECT_EQ(c.pointer, "/nodes/0/params/fail_with");
  EXPECT_NE(c.hint.find("c10_oom"), std::string::npos);
}

TEST(GraphValidation, ConnectionToUnknownNode) {
  Caught c = validate({source(), sink("scr.out")});
  EXPECT_EQ(c.node, "sink");
  EXPECT_EQ(c.pointer, "/nodes/1/inputs/in");
  EXPECT_NE(c.hint.find("'src'"), std::string::npos);
}

TEST(GraphValidation, ConnectionToUnknownOutputPort) {
  Caught c = validate({source(), sink("src.output")});
  EXPECT_EQ(c.pointer, "/nodes/1/inputs/in");
  EXPECT_NE(c.message.find("no output port 'output'"), std::string::npos);
}

TEST(GraphValidation, ConnectionWithoutPort) {
  Caught c = validate({source(), sink("src")});
  EXPECT_EQ(c.pointer, "/nodes/1/inputs/in");
}

TEST(GraphValidation, UnknownInputPort) {
  json k = sink("src.out");
  k["inputs"]["extra"] = "src.out";
  Caught c = validate({source(), k});
  EXPECT_EQ(c.pointer, "/nodes/1/inputs/extra");
}

TEST(GraphValidation, UnconnectedInputPort) {
  Caught c = validate({source(), {{"id", "sink"}, {"type", "test.sink"}}});
  EXPECT_EQ(c.node, "sink");
  EXPECT_EQ(c.pointer, "/nodes/1/inputs/in");
  EXPECT_NE(c.message.find("not connected"), std::string::npos);
}

TEST(GraphValidation, VideoIntoImagePortIsIllTyped) {
  Caught c = validate({source(), {{"id", "still"}, {"type", "test.image_sink"}, {"inputs", {{"image", "src.out"}}}}});
  EXPECT_EQ(c.node, "still");
  EXPECT_EQ(c.pointer, "/nodes/1/inputs/image");
  EXPECT_NE(c.message.find("takes an image"), std::string::npos);
}

TEST(GraphValidation, CycleIsNamed) {
  Caught c = validate({source(),
                       {{"id", "a"}, {"type", "test.map"}, {"inputs", {{"in", "b.out"}}}},
                       {{"id", "b"}, {"type", "test.map"}, {"inputs", {{"in", "a.out"}}}},
                       sink("b.out")});
  EXPECT_NE(c.message.find("cycle"), std::string::npos);
  bool names_both =
      c.message.find("a -> b -> a") != std::string::npos || c.message.find("b -> a -> b") != std::string::npos;
  EXPECT_TRUE(names_both) << c.message;
  EXPECT_TRUE(c.node == "a" || c.node == "b");
}

TEST(GraphValidation, SelfLoopIsACycle) {
  Caught c = validate({source(), {{"id", "a"}, {"type", "test.map"}, {"inputs", {{"in", "a.out"}}}}, sink("src.out")});
  EXPECT_NE(c.message.find("a -> a"), std::string::npos) << c.message;
}

TEST(GraphValidation, GraphWithoutSink) {
  Caught c = validate(json::array({source()}));  // {x} alone would copy x, not wrap it
  EXPECT_EQ(c.pointer, "/nodes");
  EXPECT_NE(c.message.find("no sink"), std::string::npos) << c.message;
}

TEST(GraphValidation, MissingGraphFileNamesThePath) {
  try {
    parse_graph_file("/nonexistent/graph.json");
    FAIL();
  } catch (const GraphError& e) {
    EXPECT_EQ(e.file(), "/nonexistent/graph.json");
    EXPECT_NE(std::string(e.what()).find("/nonexistent/graph.json"), std::string::npos);
  }
}

TEST(GraphOverrides, SetParsesJsonValuesAndBareStrings) {
  GraphSpec g = test::graph(test::graph_json({source(), sink("src.out")}));
  apply_overrides(g, {"src.frames=7", "sink.path=out.txt", "src.degradable=true"});
  EXPECT_EQ(g.nodes[0].params["frames"], 7);
  EXPECT_EQ(g.nodes[0].params["degradable"], true);
  EXPECT_EQ(g.nodes[1].params["path"], "out.txt");
}

TEST(GraphOverrides, ANumberForAStringParamIsTakenAsItsText) {
  GraphSpec g = test::graph(test::graph_json({source(), sink("src.out")}));
  apply_overrides(g, {"sink.path=2024"});  // read as JSON: a number
  EXPECT_EQ(g.nodes[1].params["path"], 2024);
  ResolvedGraph resolved = resolve_graph(g, test::catalog());
  EXPECT_EQ(resolved.nodes[1].params.string("path"), "2024");
  json k = sink("src.out");
  k["params"]["path"] = json::array();  // other types stay refused
  EXPECT_EQ(validate({source(), k}).pointer, "/nodes/1/params/path");
}

// A bad override is the command line's fault (exit 64), named as the user typed it.
TEST(GraphOverrides, SetOnUnknownNodeIsAUsageErrorNamingTheNodes) {
  GraphSpec g = test::graph(test::graph_json({source(), sink("src.out")}));
  try {
    apply_overrides(g, {"nope.frames=7"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_NE(std::string(e.what()).find("--set 'nope.frames=7'"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("src, sink"), std::string::npos) << e.hint();
  }
  try {
    apply_overrides(g, {"frames=7"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
  }
  EXPECT_EQ(exit_code(ErrorKind::usage), 64);
}

// With the catalog the value takes the param's declared type: "30" for a string param stays the
// text "30", a word for an integer param is refused before anything runs.
TEST(GraphOverrides, ValuesAreTypedByTheDeclaredParam) {
  GraphSpec g = test::graph(test::graph_json({source(), sink("src.out")}));
  const PluginCatalog& catalog = test::catalog();
  apply_overrides(g, {"sink.path=2024", "src.frames=7", "src.degradable=true", "src.journal=\"quoted\""}, &catalog);
  EXPECT_EQ(g.nodes[1].params["path"], "2024");
  EXPECT_EQ(g.nodes[0].params["frames"], 7);
  EXPECT_EQ(g.nodes[0].params["degradable"], true);
  EXPECT_EQ(g.nodes[0].params["journal"], "quoted");
  EXPECT_EQ(g.overrides.size(), 4u);
  auto refused = [&](const std::string& assignment, const std::string& says) {
    GraphSpec copy = g;
    try {
      apply_overrides(copy, {assignment}, &catalog);
      ADD_FAILURE() << assignment << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::usage) << assignment;
      EXPECT_NE((std::string(e.what()) + " " + e.hint()).find(says), std::string::npos) << e.what() << e.hint();
    }
  };
  refused("src.frames=many", "frames takes an integer, not 'many'");
  refused("src.frames=2.5", "an integer");
  refused("src.degradable=yes", "true or false");
  refused("src.framez=3", "has no param 'framez'");
  refused("src.framez=3", "frames");  // the hint lists the params
}

TEST(GraphOverrides, FingerprintFollowsTheEffectiveGraphNotTheFormatting) {
  json doc = test::graph_json({source(), sink("src.out")});
  GraphSpec compact = parse_graph_text(doc.dump(), "a.json");
  GraphSpec pretty = parse_graph_text(doc.dump(4), "b.json");
  EXPECT_EQ(graph_fingerprint(compact), graph_fingerprint(pretty));
  apply_overrides(pretty, {"src.frames=99"});
  EXPECT_NE(graph_fingerprint(compact), graph_fingerprint(pretty));
}

TEST(GraphOverrides, SetValueIsValidatedLikeTheFile) {
  GraphSpec g = test::graph(test::graph_json({source(), sink("src.out")}));
  apply_overrides(g, {"src.frames=-3"});
  try {
    resolve_graph(g, test::catalog());
    FAIL();
  } catch (const GraphError& e) {
    EXPECT_EQ(e.pointer(), "/nodes/0/params/frames");
  }
}

}  // namespace
}  // namespace reel

namespace reel {
namespace {

// Found by hand next to the fuzzer (whose inputs are too short to nest this deep): a graph whose
// params nest 100,000 levels used to overflow the stack in the recursive JSON copy.
TEST(GraphParse, DeeplyNestedJsonIsRefusedNotACrash) {
  const int levels = 100000;
  const std::string deep = std::string(levels, '[') + std::string(levels, ']');
  EXPECT_EQ(json_nesting_depth(deep), levels);
  EXPECT_EQ(json_nesting_depth(R"({"a": "[[[[", "b": [{"c": "\"]]"}]})"), 3) << "brackets in strings do not count";
  const std::string graph = R"({"version": 1, "nodes": [{"id": "a", "type": "test.map", "params": {"x": )" + deep + "}}]}";
  try {
    parse_graph_text(graph, "deep.json");
    FAIL() << "a 100,000-level graph was accepted";
  } catch (const GraphError& e) {
    EXPECT_NE(std::string(e.what()).find("more than 64 deep"), std::string::npos) << e.what();
  }
  GraphSpec ok = parse_graph_text(R"({"version": 1, "nodes": [{"id": "a", "type": "unknown.type"}]})", "ok.json");
  apply_overrides(ok, {"a.x=" + deep});  // untyped: kept as text, not parsed
  EXPECT_TRUE(ok.nodes[0].params["x"].is_string());
}

}  // namespace
}  // namespace reel

namespace reel {
namespace {

TEST(GraphParse, TimeoutsArePositiveSecondsAndPartOfTheFingerprint) {
  auto graph = [](const std::string& node_timeout, const std::string& run_timeout) {
    return R"({"version": 1)" + (run_timeout.empty() ? "" : R"(, "timeout": )" + run_timeout) +
           R"(, "nodes": [{"id": "a", "type": "t")" + (node_timeout.empty() ? "" : R"(, "timeout": )" + node_timeout) +
           "}]}";
  };
  GraphSpec plain = parse_graph_text(graph("", ""), "g.json");
  EXPECT_FALSE(plain.timeout);
  EXPECT_FALSE(plain.nodes[0].timeout);
  GraphSpec limited = parse_graph_text(graph("2.5", "600"), "g.json");
  EXPECT_EQ(limited.nodes[0].timeout, 2.5);
  EXPECT_EQ(limited.timeout, 600);
  EXPECT_NE(graph_fingerprint(plain), graph_fingerprint(limited));
  for (const auto& [node, run, pointer] : {std::tuple<std::string, std::string, std::string>{"0", "", "/nodes/0/timeout"},
                                           {"-1", "", "/nodes/0/timeout"},
                                           {"\"10\"", "", "/nodes/0/timeout"},
                                           {"", "0", "/timeout"},
                                           {"", "true", "/timeout"}}) {
    try {
      parse_graph_text(graph(node, run), "g.json");
      ADD_FAILURE() << "accepted timeout " << node << run;
    } catch (const GraphError& e) {
      EXPECT_EQ(e.pointer(), pointer);
    }
  }
}

}  // namespace
}  // namespace reel
