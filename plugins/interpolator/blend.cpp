// interpolator.blend: frame interpolation by cross-fading, the model-free sibling of RIFE.
// N frames at multiplier m become (N-1)*m+1 frames at fps*m; input frame k stays unchanged at
// output position k*m. The last frame is not paired with itself, so nothing is invented past the
// end of the clip.
#include <reel/reel.h>

#include <ATen/ATen.h>

namespace {

class Blend : public reel::Node {
 public:
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig& config) override {
    multiplier_ = config.params.integer("multiplier");
    reel::StreamDesc out = config.inputs.at(0);
    out.fps = out.fps * multiplier_;
    if (out.frame_count && *out.frame_count > 0) out.frame_count = (*out.frame_count - 1) * multiplier_ + 1;
    return {out};
  }

  void process(const reel::Frame& frame, int, reel::Emitter& out) override {
    if (previous_.defined()) {
      out.emit(previous_);
      at::Tensor a = previous_.to(at::kFloat), b = frame.image.to(at::kFloat);
      for (std::int64_t j = 1; j < multiplier_; ++j)
        out.emit(at::lerp(a, b, static_cast<double>(j) / multiplier_).round_().clamp_(0, 255).to(at::kByte));
    }
    previous_ = frame.image;
  }

  void finish(reel::Emitter& out) override {
    if (previous_.defined()) out.emit(previous_);
    previous_ = at::Tensor();
  }

  void unload() override { previous_ = at::Tensor(); }

 private:
  std::int64_t multiplier_ = 2;
  at::Tensor previous_;
};

void register_nodes(reel::Registry& registry) {
  registry.add({
      .name = "interpolator.blend",
      .description = "Frame interpolation by cross-fading: N frames -> (N-1)*m+1 frames at fps*m",
      .params = {reel::ParamSpec::integer("multiplier", 2, "Output frames per input interval (m)").range(2, 16)},
      .inputs = {{"in", reel::PortKind::video, "Frames"}},
      .outputs = {{"out", reel::PortKind::video, "Frames at fps * multiplier"}},
      .create = [] { return std::make_unique<Blend>(); },
  });
}

}  // namespace

REEL_PLUGIN(register_nodes)
