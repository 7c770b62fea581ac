// A complete reel plugin: one node type that inverts the colours of every frame.
#include <reel/reel.h>

#include <ATen/ATen.h>

namespace {

class Invert : public reel::Node {
 public:
  // Before anything runs: check params, describe the output stream. Same shape as the input here.
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig& config) override {
    strength_ = config.params.number("strength");
    return {config.inputs.at(0)};
  }

  // Once per frame, in order. Frames are uint8 CHW RGB; never edit the input in place.
  void process(const reel::Frame& frame, int /*input_port*/, reel::Emitter& out) override {
    at::Tensor image = frame.image.to(at::kFloat);
    at::Tensor inverted = image + strength_ * (255.0 - 2.0 * image);
    out.emit(inverted.round().clamp(0, 255).to(at::kByte));
  }

  // No model to release; still required, and must be safe to call in any state.
  void unload() override {}

 private:
  double strength_ = 1.0;
};

void register_nodes(reel::Registry& registry) {
  registry.add({
      .name = "example.invert",
      .description = "Inverts colours (strength 1: full negative, 0: unchanged)",
      .params = {reel::ParamSpec::number("strength", 1.0, "How far towards the negative").range(0, 1)},
      .inputs = {{"in", reel::PortKind::video, "Frames"}},
      .outputs = {{"out", reel::PortKind::video, "Inverted frames"}},
      .create = [] { return std::make_unique<Invert>(); },
  });
}

}  // namespace

REEL_PLUGIN(register_nodes)
