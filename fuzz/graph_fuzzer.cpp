// libFuzzer target: a graph file and `--set` overrides, as untrusted input. The input is the graph
// text, then (after a NUL byte, when there is one) one `node.param=value` assignment per line.
// Everything reel does with them before anything loads runs: parsing, overrides typed by the
// params, validation against node types (ports, kinds, params, cycles), the fingerprint. Any
// outcome but a reel::Error or a std::exception that says what is wrong is a bug: a crash, a leak,
// undefined behaviour, an exception of another type.
#include <reel/runtime/graph.h>

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace {

// Node types like the in-tree ones, described only (validation never creates a node).
const reel::PluginCatalog& catalog() {
  static const reel::PluginCatalog* types = [] {
    using reel::ParamSpec;
    using reel::PortKind;
    auto* c = new reel::PluginCatalog();
    c->add_builtin({.name = "fuzz.source",
                    .params = {ParamSpec::integer("frames", 0, "frames").range(0, std::nullopt).make_required(),
                               ParamSpec::string("fps", "24", "rate"),
                               ParamSpec::choice("pattern", "bars", {"bars", "noise"}, "what")},
                    .outputs = {{"out", PortKind::video, "frames"}}});
    c->add_builtin({.name = "fuzz.image",
                    .params = {ParamSpec::string("path", "", "file").make_required()},
                    .outputs = {{"out", PortKind::video, "one frame"}}});
    c->add_builtin({.name = "fuzz.map",
                    .params = {ParamSpec::number("scale", 1.0, "factor").range(0.1, 8),
                               ParamSpec::integer("tile", 0, "tile").or_words({"auto"}),
                               ParamSpec::boolean("fast", false, "flag")},
                    .inputs = {{"in", PortKind::video, "frames"}, {"image", PortKind::image, "an image", true}},
                    .outputs = {{"out", PortKind::video, "frames"}, {"side", PortKind::video, "more frames"}}});
    c->add_builtin({.name = "fuzz.sink",
                    .params = {ParamSpec::string("path", "", "file").make_required()},
                    .inputs = {{"in", PortKind::video, "frames"}}});
    return c;
  }();
  return *types;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find('\0');
  const std::string text = input.substr(0, split);
  std::vector<std::string> sets;
  if (split != std::string::npos) {
    std::istringstream lines(input.substr(split + 1));
    for (std::string line; std::getline(lines, line);) sets.push_back(line);
  }
  try {
    reel::GraphSpec graph = reel::parse_graph_text(text, "fuzz.json");
    reel::apply_overrides(graph, sets, &catalog());
    reel::resolve_graph(graph, catalog());
    (void)reel::graph_fingerprint(graph);
  } catch (const reel::Error&) {
  } catch (const std::exception&) {
    // Accepted only when it explains itself: a standard exception with a message.
  }
  return 0;
}
