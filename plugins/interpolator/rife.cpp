// interpolator.rife: RIFE frame interpolation on libtorch. Every output frame sits at an exact
// rational time of the new rate (timeline.h); frames on an input time are the input frame itself,
// the others come from their two neighbours at the right t. Scene cuts and identical neighbours
// skip the model. Streaming: only the previous input frame is held.
#include "flow_models.h"
#include "interpolators.h"
#include "scene.h"
#include "timeline.h"

#include <reel/reel.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <cstdio>

namespace reel::interp {

namespace {

constexpr double min_scale = 0.25;

std::string format_scale(double scale) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", scale);
  return text;
}

std::optional<DetectedModel> detect_model(const weights::Checkpoint& checkpoint) {
  Recognition r = recognise(checkpoint);
  if (!r.loadable) return std::nullopt;
  return DetectedModel{r.what, 1, ifnet_expected(r.last_channels)};
}

class Rife : public Node {
 public:
  explicit Rife(std::function<void(double)> before_model) : before_model_(std::move(before_model)) {}

  std::vector<StreamDesc> configure(const NodeConfig& config) override {
    const Params& p = config.params;
    in_ = config.inputs.at(0);
    if (in_.channels != 3)
      throw BadInputError("interpolator.rife takes RGB frames, not " + std::to_string(in_.channels) + " channels");

    model_ = weights::resolve_model(p.string("model"));
    torchscript_ = weights::is_torchscript(model_);
    std::string what = "TorchScript module";
    if (torchscript_) {
      check_torchscript(model_);
      parameters_ = 0;
    } else {
      weights::Checkpoint checkpoint = weights::open_checkpoint(model_);
      Recognition r = recognise(checkpoint);
      if (!r.loadable)
        throw BadInputError("checkpoint " + model_.string() + " is " + r.what +
                                "; interpolator.rife runs RIFE IFNet v4.5 and v4.6 (and TorchScript modules)",
                            "docs/nodes.md lists the RIFE versions that load; `reel models " +
                                model_.parent_path().string() + "` shows what each checkpoint holds");
      what = r.what + " (" + checkpoint.format() + ")";
      parameters_ = checkpoint.parameter_count();
    }

    scale_ = p.number("scale");
    if (scale_ != 1 && scale_ != 0.5 && scale_ != 0.25)
      throw InvalidParamError("scale", "scale " + format_scale(scale_) + " is not 1, 0.5 or 0.25");
    if (torchscript_ && scale_ != 1)
      throw InvalidParamError("scale", "a TorchScript model takes no scale: its contract is (img0, img1, t) -> frame",
                              "leave scale at 1");
    threshold_ = p.number("scene_threshold");
    device_ = resolve_device(p.string("device"));
    dtype_ = resolve_precision(p.string("precision"), device_);

    Retiming r = retiming(p, in_, "interpolator.rife");
    timeline_ = r.timeline;
    out_ = r.out;
    log(LogLevel::info, "interpolator.rife: " + model_.filename().string() + " is " + what + ", on " + device_ + " in " +
                            p.string("precision") + ", scale " + format_scale(scale_) + ", " + in_.fps.str() + " -> " +
                            out_.fps.str() + " fps");
    return {out_};
  }

  std::vector<MemoryEstimate> estimate() const override {
    const std::uint64_t element = c10::elementSize(dtype_);
    const int m = padding_multiple(scale_);
    const std::uint64_t padded = static_cast<std::uint64_t>((in_.width + m - 1) / m * m) * ((in_.height + m - 1) / m * m);
    // Measured peak of one fp32 pair above the loaded model (bench/rife-vs-pytorch.sh, with the
    // host tensor cache): ~540 B per padded pixel at scale 1, ~350 at 0.5. The held frame and the
    // outputs are bytes.
    const double per_pixel = (150 + 400 * scale_) * static_cast<double>(element) / 4;
    const std::uint64_t frames = static_cast<std::uint64_t>(in_.width) * in_.height * 3 * 4;
    return {{device_, parameters_ * element, static_cast<std::uint64_t>(padded * per_pixel) + frames}};
  }

  void load() override {
    auto start = std::chrono::steady_clock::now();
    std::unique_ptr<FlowModel> model = torchscript_ ? load_torchscript(model_) : load_ifnet(weights::open_checkpoint(model_));
    model->to(device_, dtype_);
    model_net_ = std::move(model);
    log(LogLevel::info, "interpolator.rife: loaded " + model_.filename().string() + " in " +
                            std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()) +
                            " s");
  }

  void process(const Frame& frame, int, Emitter& out) override {
    const at::Tensor& image = frame.image;
    if (image.dim() != 3 || image.size(0) != 3 || image.size(1) != in_.height || image.size(2) != in_.width)
      throw BadInputError("frame " + std::to_string(frame.index) + " has shape " + c10::str(image.sizes()) +
                          ", but the stream was described as " + in_.str());
    // Counted only once the whole call succeeded, so a retry after out of memory counts once.
    Counts counts;
    std::optional<Pair> pair;
    for (const Placement& place : timeline_.at_input(inputs_)) {
      if (place.on_input()) {
        out.emit(image);
        continue;
      }
      if (!pair) pair.emplace(classify(previous_, image, threshold_), previous_, image);
      if (pair->kind != PairKind::moving) {
        out.emit(previous_);  // a cut: the earlier frame holds until the cut; identical: the same
        continue;
      }
      if (out.cancelled()) throw CancelledError();
      out.emit(interpolate(*pair, place, frame.index));
      ++counts.interpolated;
    }
    if (pair) (pair->kind == PairKind::cut ? counts.cuts : pair->kind == PairKind::identical ? counts.identical : counts.moving)++;
    counts_ += counts;
    previous_ = image;
    ++inputs_;
  }

  void finish(Emitter&) override { previous_ = at::Tensor(); }

  bool degrade() override {
    if (torchscript_ || scale_ <= min_scale) return false;
    const double before = scale_;
    scale_ /= 2;
    log(LogLevel::warning, "interpolator.rife: out of memory at scale " + format_scale(before) +
                               "; retrying the same frames at scale " + format_scale(scale_));
    return true;
  }

  void unload() override {
    model_net_.reset();
    previous_ = at::Tensor();
  }

  std::vector<std::pair<std::string, std::int64_t>> counters() const override {
    return {{"interpolated_frames", counts_.interpolated},
            {"pairs_interpolated", counts_.moving},
            {"scene_cuts", counts_.cuts},
            {"identical_pairs", counts_.identical}};
  }

 private:
  struct Counts {
    std::int64_t interpolated = 0, moving = 0, cuts = 0, identical = 0;
    Counts& operator+=(const Counts& o) {
      interpolated += o.interpolated, moving += o.moving, cuts += o.cuts, identical += o.identical;
      return *this;
    }
  };

  // Two neighbouring inputs; their padded float copies are made on first use and kept for every
  // t between them.
  struct Pair {
    Pair(PairKind k, const at::Tensor& a, const at::Tensor& b) : kind(k), a(a), b(b) {}
    PairKind kind;
    const at::Tensor &a, &b;
    at::Tensor img0, img1;
    double scale = 0;
  };

  at::Tensor interpolate(Pair& pair, const Placement& place, std::int64_t frame) {
    const double scale = scale_;
    try {
      if (pair.scale != scale || !pair.img0.defined()) {
        const int m = torchscript_ ? padding_multiple(1) : padding_multiple(scale);
        pair.img0 = model_input(pair.a, m, device_, dtype_), pair.img1 = model_input(pair.b, m, device_, dtype_);
        pair.scale = scale;
      }
      if (before_model_) before_model_(scale);
      at::Tensor y = interpolate_cropped(*model_net_, pair.img0, pair.img1, place.t(), scale, in_.height, in_.width);
      return y.clamp_(0, 1).mul_(255).round_().to(at::kByte);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      if (!is_out_of_memory(e)) throw;
      const std::string detail = e.what();
      throw OutOfMemoryError("out of memory interpolating between input frames " + std::to_string(frame - 1) + " and " +
                                 std::to_string(frame) + " (" + std::to_string(in_.width) + "x" +
                                 std::to_string(in_.height) + ") at scale " + format_scale(scale) + " (" +
                                 detail.substr(0, detail.find('\n')) + ")",
                             torchscript_ ? "lower the resolution, or use precision fp16 on a GPU"
                                          : "lower 'scale' (the node halves it on its own down to 0.25), lower the "
                                            "resolution, or use precision fp16 on a GPU");
    }
  }

  std::function<void(double)> before_model_;
  StreamDesc in_, out_;
  std::filesystem::path model_;
  bool torchscript_ = false;
  std::uint64_t parameters_ = 0;
  double scale_ = 1, threshold_ = 0.2;
  std::string device_ = "cpu";
  at::ScalarType dtype_ = at::kFloat;
  Timeline timeline_{{1, 1}, {2, 1}};
  std::unique_ptr<FlowModel> model_net_;
  at::Tensor previous_;
  std::int64_t inputs_ = 0;
  Counts counts_;
};

}  // namespace

NodeType rife_node_type(std::function<void(double)> before_model) {
  return {
      .name = "interpolator.rife",
      .description = "RIFE frame interpolation (IFNet v4.6 or v4.5 from safetensors or PyTorch checkpoints, or a TorchScript "
                     "flow model): N frames -> (N-1)*m+1 at fps*m, or any target rate at exact times",
      .params = {ParamSpec::string("model", "", "Checkpoint path (flownet.pkl, .pth, .safetensors, TorchScript), or a "
                                                "model name looked up in the model folders")
                     .make_required(),
                 multiplier_param(),
                 fps_param(),
                 ParamSpec::number("scale", 1, "Flow resolution: 1, 0.5 (frames above ~1080p) or 0.25 (4K)")
                     .range(0.25, 1),
                 scene_threshold_param(),
                 ParamSpec::string("device", "auto", "cpu, cuda, cuda:N or auto (CUDA when available)"),
                 ParamSpec::choice("precision", "fp32", {"fp32", "fp16", "bf16"}, "Compute precision (fp16: GPU only)")},
      .inputs = {{"in", PortKind::video, "RGB frames with a frame rate"}},
      .outputs = {{"out", PortKind::video, "Frames at the new rate"}},
      .frame_dependence = FrameDependence::adjacent_pair,
      .example_params = {{"model", "flownet"}, {"multiplier", 2}},
      .create = [before_model] { return std::make_unique<Rife>(before_model); },
      .detect_model = detect_model,
  };
}

}  // namespace reel::interp
