#pragma once
// The node types of the upscaler plugin (registered in plugin.cpp).
#include <reel/plugin.h>

#include <functional>

namespace reel::sr {

reel::NodeType resize_node_type();

// `before_tile` (tests only) is called with the tile index before each tile is computed; it may
// throw to simulate a failure at that tile.
reel::NodeType esrgan_node_type(std::function<void(int)> before_tile = {});

}  // namespace reel::sr
