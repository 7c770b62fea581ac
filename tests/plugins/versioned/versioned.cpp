// One plugin in two versions (REEL_TEST_VERSION 1 or 2): the same file name, a different node
// type, so a test can replace one with the other and see whether the plugin cache noticed.
#include <reel/reel.h>

#define REEL_TEST_TYPE_NAME "versioned.v" REEL_STRINGIFY(REEL_TEST_VERSION)

namespace {
class Versioned : public reel::Node {
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig&) override { return {}; }
  void unload() override {}
};
void register_nodes(reel::Registry& registry) {
  registry.add({.name = REEL_TEST_TYPE_NAME,
                .description = "version " REEL_STRINGIFY(REEL_TEST_VERSION) " of a test plugin",
                .params = {reel::ParamSpec::integer("level", REEL_TEST_VERSION, "a param with a default").range(0, 9)},
                .inputs = {{"in", reel::PortKind::video, "frames"}},
                .create = [] { return std::make_unique<Versioned>(); }});
}
}  // namespace

REEL_PLUGIN(register_nodes)
