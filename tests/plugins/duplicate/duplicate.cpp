// A plugin that declares a node type the testkit plugin already provides.
#include <reel/reel.h>

namespace {
class Duplicate : public reel::Node {
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig&) override { return {}; }
  void unload() override {}
};
void register_nodes(reel::Registry& registry) {
  registry.add({.name = "test.source", .description = "a second test.source", .create = [] {
                  return std::make_unique<Duplicate>();
                }});
}
}  // namespace

REEL_PLUGIN(register_nodes)
