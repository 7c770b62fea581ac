// upscaler.resize: scaling with libswscale, the model-free sibling of the super-resolution nodes.
#include <reel/reel.h>

#include <ATen/ATen.h>

#include "nodes.h"
#include "scaler.h"

#include <cmath>
#include <optional>

namespace reel::sr {

namespace {

class Resize : public reel::Node {
 public:
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig& config) override {
    const reel::Params& p = config.params;
    in_ = config.inputs.at(0);
    if (in_.channels != 3) throw reel::BadInputError("upscaler.resize takes RGB frames (3 channels)");
    reel::StreamDesc out = in_;
    std::int64_t width = p.integer("width"), height = p.integer("height");
    double scale = p.number("scale");
    // An explicit size wins; one side alone keeps the aspect ratio; otherwise scale both.
    if (width > 0 && height > 0) {
      out.width = static_cast<int>(width), out.height = static_cast<int>(height);
    } else if (width > 0) {
      out.width = static_cast<int>(width);
      out.height = static_cast<int>(std::lround(static_cast<double>(in_.height) * width / in_.width));
    } else if (height > 0) {
      out.height = static_cast<int>(height);
      out.width = static_cast<int>(std::lround(static_cast<double>(in_.width) * height / in_.height));
    } else {
      out.width = static_cast<int>(std::lround(in_.width * scale));
      out.height = static_cast<int>(std::lround(in_.height * scale));
    }
    if (out.width < 1 || out.height < 1 || out.width > 16384 || out.height > 16384)
      throw reel::InvalidParamError("scale", "the output would be " + std::to_string(out.width) + "x" +
                                                 std::to_string(out.height) + ", outside 1..16384 pixels per side");
    out_ = out;
    scaler_.emplace(filter_flags(p.string("filter")));
    return {out};
  }

  std::vector<reel::MemoryEstimate> estimate() const override {
    return {{"cpu", 0, static_cast<std::uint64_t>(in_.width * in_.height + out_.width * out_.height) * 3 * 2}};
  }

  void process(const reel::Frame& frame, int, reel::Emitter& out) override {
    // libswscale reads width x height x 3 bytes: check before handing it the memory (the executor
    // checked the producer's frames already; this node does not rely on it).
    if (std::string wrong = reel::frame_mismatch(frame.image, in_); !wrong.empty())
      throw reel::BadInputError("frame " + std::to_string(frame.index) + " is " + wrong);
    out.emit(scaler_->resize_planar(frame.image.to(at::kCPU), out_.width, out_.height));
  }

  void unload() override {
    if (scaler_) scaler_->release();
  }

 private:
  reel::StreamDesc in_, out_;
  std::optional<Scaler> scaler_;
};

}  // namespace

reel::NodeType resize_node_type() {
  using reel::ParamSpec;
  return {
      .name = "upscaler.resize",
      .description = "Resize frames with libswscale (bicubic, lanczos, bilinear, area, nearest)",
      .params = {ParamSpec::number("scale", 2.0, "Scale factor, used when width and height are 0").range(0.01, 16),
                 ParamSpec::integer("width", 0, "Output width; 0: from scale or height").range(0, 16384),
                 ParamSpec::integer("height", 0, "Output height; 0: from scale or width").range(0, 16384),
                 ParamSpec::choice("filter", "bicubic", {"bicubic", "lanczos", "bilinear", "area", "nearest"},
                                   "Resampling filter")},
      .inputs = {{"in", reel::PortKind::video, "RGB frames"}},
      .outputs = {{"out", reel::PortKind::video, "Resized RGB frames"}},
      .frame_dependence = reel::FrameDependence::same_frame,
      .create = [] { return std::make_unique<Resize>(); },
  };
}

}  // namespace reel::sr
