// The interpolator plugin: interpolator.rife (RIFE) and interpolator.blend (cross-fading).
#include "interpolators.h"

namespace {
void register_nodes(reel::Registry& registry) {
  registry.add(reel::interp::rife_node_type());
  registry.add(reel::interp::blend_node_type());
}
}  // namespace

REEL_PLUGIN(register_nodes)
