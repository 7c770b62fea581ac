// generator.pattern: a deterministic animation from a seed and a prompt, so that a graph runs
// with no model weights. The same inputs give the same frames, bit for bit.
#include <reel/reel.h>

#include <ATen/ATen.h>

#include <cmath>
#include <random>

namespace {

constexpr double kTwoPi = 6.283185307179586;

reel::Rational parse_fps(const std::string& text) {
  if (auto fps = reel::Rational::parse(text); fps && fps->num > 0 && fps->value() <= 1000) return *fps;
  throw reel::InvalidParamError("fps", "fps '" + text + "' is not a frame rate",
                                "Use a number such as 24 or 23.976, or a ratio such as 30000/1001.");
}

class Pattern : public reel::Node {
 public:
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig& config) override {
    const reel::Params& p = config.params;
    stream_.width = static_cast<int>(p.integer("width"));
    stream_.height = static_cast<int>(p.integer("height"));
    stream_.fps = parse_fps(p.string("fps"));
    stream_.frame_count = p.integer("frames");
    // Every look of the animation comes from the seed and the prompt.
    std::seed_seq seed{static_cast<std::uint64_t>(p.integer("seed")), std::hash<std::string>{}(p.string("prompt"))};
    std::mt19937_64 random(seed);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    for (double& v : look_) v = unit(random);
    return {stream_};
  }

  bool produce(reel::Emitter& out) override {
    if (next_ >= *stream_.frame_count) return false;
    double t = static_cast<double>(next_) * stream_.fps.den / stream_.fps.num;  // seconds
    auto options = at::TensorOptions(at::kFloat);
    at::Tensor x = at::linspace(0, 1, stream_.width, options).view({1, -1});
    at::Tensor y = at::linspace(0, 1, stream_.height, options).view({-1, 1});
    auto wave = [&](const at::Tensor& phase) { return 0.5 + 0.5 * at::sin(phase); };
    // Three drifting colour waves...
    at::Tensor r = wave(kTwoPi * (x * (1 + 2 * look_[0]) + t * (0.1 + 0.3 * look_[1])) + kTwoPi * look_[2])
                       .expand({stream_.height, stream_.width});
    at::Tensor g = wave(kTwoPi * (y * (1 + 2 * look_[3]) - t * (0.1 + 0.3 * look_[4])) + kTwoPi * look_[5])
                       .expand({stream_.height, stream_.width});
    // The diagonal wave sin(k(x + y) + c), written as sin(kx)cos(ky + c) + cos(kx)sin(ky + c): two
    // outer products of a row and a column instead of a sine at every pixel.
    const double k = kTwoPi * (0.5 + look_[6]), c = kTwoPi * t * (0.2 + 0.2 * look_[7]);
    at::Tensor b = 0.5 + 0.5 * (at::sin(k * x) * at::cos(k * y + c) + at::cos(k * x) * at::sin(k * y + c));
    at::Tensor image = at::stack({r, g, b});
    // ...and a bright disc on a Lissajous path, so motion is obvious. A Gaussian is separable:
    // exp(-(dx^2 + dy^2)/s) = exp(-dx^2/s) exp(-dy^2/s).
    double cx = 0.5 + 0.32 * std::cos(kTwoPi * t * (0.2 + 0.3 * look_[8]) + kTwoPi * look_[9]);
    double cy = 0.5 + 0.32 * std::sin(kTwoPi * t * (0.3 + 0.3 * look_[10]) + kTwoPi * look_[11]);
    double aspect = static_cast<double>(stream_.width) / stream_.height;
    const double spread = 2 * 0.08 * 0.08;
    at::Tensor disc = at::exp(-at::pow((x - cx) * aspect, 2) / spread) * at::exp(-at::pow(y - cy, 2) / spread);
    image.mul_(1 - disc).add_(disc);  // towards white inside the disc
    out.emit(image.mul_(255).round_().clamp_(0, 255).to(at::kByte));
    return ++next_ < *stream_.frame_count;
  }

  void unload() override {}

 private:
  reel::StreamDesc stream_;
  double look_[12] = {};
  std::int64_t next_ = 0;
};

void register_nodes(reel::Registry& registry) {
  using reel::ParamSpec;
  registry.add({
      .name = "generator.pattern",
      .description = "Deterministic animated pattern from a seed and a prompt (no model weights)",
      .params = {ParamSpec::integer("width", 640, "Frame width in pixels").range(16, 8192),
                 ParamSpec::integer("height", 360, "Frame height in pixels").range(16, 8192),
                 ParamSpec::integer("frames", 49, "Number of frames").range(0, 10000000),
                 ParamSpec::string("fps", "24", "Frame rate: 24, 30000/1001 or 23.976"),
                 ParamSpec::integer("seed", 42, "Seed: the same seed and prompt give the same frames"),
                 ParamSpec::string("prompt", "", "Text that, with the seed, picks the colours and motion")},
      .outputs = {{"out", reel::PortKind::video, "RGB frames"}},
      .example_params = {{"width", 64}, {"height", 48}, {"frames", 5}},
      .create = [] { return std::make_unique<Pattern>(); },
  });
}

}  // namespace

REEL_PLUGIN(register_nodes)
