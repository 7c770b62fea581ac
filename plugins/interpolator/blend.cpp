// interpolator.blend: frame interpolation by cross-fading, the model-free sibling of RIFE, on the
// same timeline: input frames stay unchanged at their own times, frames between two inputs are
// their mix at the right t. Nothing is invented past the last input.
#include "interpolators.h"

#include <reel/reel.h>

#include <ATen/ATen.h>

namespace reel::interp {

namespace {

class Blend : public Node {
 public:
  std::vector<StreamDesc> configure(const NodeConfig& config) override {
    Retiming r = retiming(config.params, config.inputs.at(0), "interpolator.blend");
    timeline_ = r.timeline;
    return {r.out};
  }

  void process(const Frame& frame, int, Emitter& out) override {
    at::Tensor a, b;
    for (const Placement& place : timeline_.at_input(inputs_)) {
      if (place.on_input()) {
        out.emit(frame.image);
        continue;
      }
      if (!a.defined()) a = previous_.to(at::kFloat), b = frame.image.to(at::kFloat);
      out.emit(at::lerp(a, b, place.t()).round_().clamp_(0, 255).to(at::kByte));
    }
    previous_ = frame.image;
    ++inputs_;
  }

  void finish(Emitter&) override { previous_ = at::Tensor(); }

  void unload() override { previous_ = at::Tensor(); }

 private:
  Timeline timeline_{{1, 1}, {2, 1}};
  at::Tensor previous_;
  std::int64_t inputs_ = 0;
};

}  // namespace

NodeType blend_node_type() {
  return {
      .name = "interpolator.blend",
      .description = "Frame interpolation by cross-fading: N frames -> (N-1)*m+1 frames at fps*m, or any target rate",
      .params = {multiplier_param(), fps_param()},
      .inputs = {{"in", PortKind::video, "Frames with a frame rate"}},
      .outputs = {{"out", PortKind::video, "Frames at the new rate"}},
      .frame_dependence = FrameDependence::adjacent_pair,
      .create = [] { return std::make_unique<Blend>(); },
  };
}

}  // namespace reel::interp
