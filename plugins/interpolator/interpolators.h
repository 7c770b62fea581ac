#pragma once
// The node types of the interpolator plugin (registered in plugin.cpp) and the parameters and
// rate arithmetic they share.
#include "timeline.h"

#include <reel/plugin.h>

#include <functional>

namespace reel::interp {

reel::NodeType blend_node_type();

// `before_model` (tests only) is called with the flow scale before each model call; it may throw
// to simulate running out of memory there.
reel::NodeType rife_node_type(std::function<void(double)> before_model = {});

// `multiplier` and `fps`: the output rate, as a multiple of the input's or as a rate of its own.
reel::ParamSpec multiplier_param();
reel::ParamSpec fps_param();
reel::ParamSpec scene_threshold_param();

// The output stream and its timeline for `in` under the `multiplier` / `fps` params. Throws
// InvalidParamError for a bad or contradictory rate, BadInputError for an input without a rate.
struct Retiming {
  Timeline timeline;
  StreamDesc out;
};
Retiming retiming(const reel::Params& params, const StreamDesc& in, const std::string& node_type);

}  // namespace reel::interp
