// The upscaler plugin: upscaler.esrgan (Real-ESRGAN) and, where FFmpeg is present, upscaler.resize.
#include "nodes.h"

namespace {
void register_nodes(reel::Registry& registry) {
#ifdef REEL_UPSCALER_WITH_RESIZE
  registry.add(reel::sr::resize_node_type());
#endif
  registry.add(reel::sr::esrgan_node_type());
}
}  // namespace

REEL_PLUGIN(register_nodes)
