#include "interpolators.h"

#include <reel/error.h>

#include <cstdio>

namespace reel::interp {

ParamSpec multiplier_param() {
  return ParamSpec::integer("multiplier", 2, "Output frames per input interval (m): N frames -> (N-1)*m+1 at fps*m")
      .range(2, 16);
}

ParamSpec fps_param() {
  return ParamSpec::string("fps", "",
                           "Output rate instead of a multiplier (60, 24000/1001, 29.97): every frame at its exact "
                           "time, made from its two neighbours; empty: use multiplier");
}

ParamSpec scene_threshold_param() {
  return ParamSpec::number("scene_threshold", 0.2,
                           "Scene cut when two neighbours' 64x64 luma thumbnails differ by more than this (mean "
                           "absolute difference, 0..1): the earlier frame repeats instead; 1: never")
      .range(0, 1);
}

Retiming retiming(const Params& params, const StreamDesc& in, const std::string& node_type) {
  if (in.fps.num <= 0 || in.fps.den <= 0)
    throw BadInputError(node_type + " needs the input's frame rate, but the stream has none (" + in.str() + ")");
  const std::int64_t multiplier = params.integer("multiplier");
  Rational rate = in.fps * multiplier;
  const std::string& fps = params.string("fps");
  if (!fps.empty()) {
    if (multiplier != 2)
      throw InvalidParamError("fps", "both fps and multiplier are set; fps gives the output rate on its own",
                              "remove multiplier, or remove fps");
    auto parsed = Rational::parse(fps);
    if (!parsed) throw InvalidParamError("fps", "fps '" + fps + "' is not a rate such as 60, 24000/1001 or 29.97");
    rate = parsed->reduced();
    if (rate.num > 1'000'000'000 || rate.den > 1'000'000'000)
      throw InvalidParamError("fps", "fps '" + fps + "' has terms above 10^9; no encoder stores such a rate exactly");
  }
  Retiming r{Timeline(in.fps, rate), in};
  if (r.timeline.ratio() > 16) {
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.4g", r.timeline.ratio());
    throw InvalidParamError("fps", "fps " + rate.str() + " asks for " + ratio +
                                       " output frames per input frame of a " + in.fps.str() +
                                       " fps input; at most 16 are made",
                            "interpolate in two nodes, or ask for a lower rate");
  }
  r.out.fps = rate;
  if (in.frame_count) r.out.frame_count = r.timeline.output_count(*in.frame_count);
  return r;
}

}  // namespace reel::interp
