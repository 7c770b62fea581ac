// The upscaler plugin: upscaler.resize (libswscale) and upscaler.esrgan (Real-ESRGAN).
#include "nodes.h"

namespace {
void register_nodes(reel::Registry& registry) {
  registry.add(reel::sr::resize_node_type());
  registry.add(reel::sr::esrgan_node_type());
}
}  // namespace

REEL_PLUGIN(register_nodes)
