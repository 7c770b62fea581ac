// A plugin whose handshake claims a plugin ABI this reel does not have. The host must refuse it
// before calling reel_plugin_register (which would add "test.never_registered").
#include <reel/reel.h>

extern "C" __attribute__((visibility("default"))) const reel_plugin_handshake_v1* reel_plugin_handshake() {
  static const reel_plugin_handshake_v1 handshake{
      999, 0, "9.9.9", REEL_COMPILER_ID, REEL_TORCH_VERSION, _GLIBCXX_USE_CXX11_ABI};
  return &handshake;
}

namespace {
class Never : public reel::Node {
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig&) override { return {}; }
  void unload() override {}
};
}  // namespace

extern "C" __attribute__((visibility("default"))) void reel_plugin_register(reel::Registry& registry) {
  registry.add({.name = "test.never_registered", .create = [] { return std::make_unique<Never>(); }});
}
