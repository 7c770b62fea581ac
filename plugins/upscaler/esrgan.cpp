// upscaler.esrgan: Real-ESRGAN super-resolution (RRDBNet, SRVGGNetCompact) on libtorch, tiled,
// degrading its tile on out of memory instead of dropping a frame.
#include "networks.h"
#include "nodes.h"
#include "tiler.h"

#include <reel/reel.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

namespace reel::sr {

namespace {

constexpr int min_tile = 32;

std::optional<DetectedModel> detect_model(const weights::Checkpoint& checkpoint) {
  auto architecture = detect(checkpoint);
  if (!architecture) return std::nullopt;
  return DetectedModel{architecture->describe(), architecture->scale, build(*architecture)->expected()};
}

class Esrgan : public Node {
 public:
  explicit Esrgan(std::function<void(int)> before_tile) : before_tile_(std::move(before_tile)) {}

  std::vector<StreamDesc> configure(const NodeConfig& config) override {
    const Params& p = config.params;
    in_ = config.inputs.at(0);
    if (in_.channels != 3 && in_.channels != 4)
      throw BadInputError("upscaler.esrgan takes RGB or RGBA frames, not " + std::to_string(in_.channels) + " channels");
    model_ = weights::resolve_model(p.string("model"));
    std::string format = "TorchScript";
    if (weights::is_torchscript(model_)) {
      architecture_ = probe_torchscript(model_);
      parameters_ = 0;
    } else {
      weights::Checkpoint checkpoint = weights::open_checkpoint(model_);
      auto architecture = detect(checkpoint);
      if (!architecture)
        throw BadInputError(
            "checkpoint " + model_.string() + " is not a Real-ESRGAN network reel implements (RRDBNet or SRVGGNetCompact)",
            "`reel models " + model_.parent_path().string() + "` lists what each checkpoint in that folder holds");
      architecture_ = *architecture;
      parameters_ = checkpoint.parameter_count();
      format = checkpoint.format();
    }
    device_ = resolve_device(p.string("device"));
    dtype_ = resolve_precision(p.string("precision"), device_);
    tiling_.pad = static_cast<int>(p.integer("tile_pad"));
    tiling_.multiple = architecture_.input_multiple();
    pre_pad_ = static_cast<int>(p.integer("pre_pad"));
    const auto& tile = p.json().at("tile");
    tiling_.tile = tile.is_string() ? auto_tile() : static_cast<int>(tile.get<std::int64_t>());
    if (tiling_.tile > 0 && tiling_.tile < min_tile)
      throw InvalidParamError("tile", "tile " + std::to_string(tiling_.tile) + " is below the minimum of " +
                                          std::to_string(min_tile) + " pixels",
                              "use 0 for whole frames, auto, or at least " + std::to_string(min_tile));

    out_ = in_;
    const double outscale = p.number("outscale");
    out_.width = in_.width * architecture_.scale, out_.height = in_.height * architecture_.scale;
    if (outscale > 0) {
      out_.width = static_cast<int>(std::lround(in_.width * outscale));
      out_.height = static_cast<int>(std::lround(in_.height * outscale));
      if (out_.width < 1 || out_.height < 1)
        throw InvalidParamError("outscale", "outscale " + std::to_string(outscale) + " leaves no pixel");
    }
    if (out_.width > 32768 || out_.height > 32768)
      throw InvalidParamError("outscale", "the output would be " + std::to_string(out_.width) + "x" +
                                              std::to_string(out_.height) + ", beyond 32768 pixels per side");
    log(LogLevel::info, "upscaler.esrgan: " + model_.filename().string() + " is " + architecture_.describe() + " (" +
                            format + "), on " + device_ + " in " + p.string("precision") + ", tile " +
                            std::to_string(tiling_.tile));
    return {out_};
  }

  std::vector<MemoryEstimate> estimate() const override {
    const std::uint64_t element = c10::elementSize(dtype_);
    const std::uint64_t frame_bytes = static_cast<std::uint64_t>(out_.width) * out_.height * in_.channels;
    return {{device_, parameters_ * element, working_bytes(tiling_.tile) * element / 4 + frame_bytes * 3}};
  }

  void load() override {
    auto start = std::chrono::steady_clock::now();
    std::unique_ptr<Network> network;
    if (architecture_.kind == Architecture::Kind::torchscript) {
      network = load_torchscript(model_);
    } else {
      weights::Checkpoint checkpoint = weights::open_checkpoint(model_);
      network = build(architecture_);
      network->assign(weights::match(checkpoint, network->expected(), architecture_.describe()));
    }
    network->to(device_, dtype_);
    network_ = std::move(network);
    log(LogLevel::info, "upscaler.esrgan: loaded " + model_.filename().string() + " in " +
                            std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()) +
                            " s");
  }

  void process(const Frame& frame, int, Emitter& out) override {
    const at::Tensor& image = frame.image;
    if (image.dim() != 3 || image.size(0) != in_.channels || image.size(1) != in_.height || image.size(2) != in_.width)
      throw BadInputError("frame " + std::to_string(frame.index) + " has shape " + shape_of(image) +
                          ", but the stream was described as " + in_.str());
    const int tile = tiling_.tile;
    try {
      at::Tensor rgb = upscale(image.narrow(0, 0, 3), out);
      if (in_.channels == 4) rgb = at::cat({rgb, resize_alpha(image.narrow(0, 3, 1))}, 0);
      out.emit(std::move(rgb));
    } catch (const c10::Error& e) {
      if (!is_out_of_memory(e)) throw;
      throw_out_of_memory(frame.index, tile, e.what_without_backtrace());
    } catch (const std::bad_alloc& e) {
      throw_out_of_memory(frame.index, tile, e.what());
    }
  }

  bool degrade() override {
    const int before = tiling_.tile;
    const int longest = std::max(in_.width, in_.height);
    int next = before <= 0 ? longest / 2 : before / 2;
    next = next / 8 * 8;
    if (next < min_tile) return false;
    tiling_.tile = next;
    log(LogLevel::warning, "upscaler.esrgan: out of memory with tile " +
                               (before <= 0 ? std::string("0 (whole frame)") : std::to_string(before)) +
                               "; retrying the same frame with tile " + std::to_string(next));
    return true;
  }

  void unload() override {
    network_.reset();
  }

 private:
  static std::string shape_of(const at::Tensor& t) {
    std::string text;
    for (auto d : t.sizes()) text += (text.empty() ? "" : "x") + std::to_string(d);
    return text;
  }

  std::uint64_t working_bytes(int tile) const {
    const std::int64_t side = tile > 0 ? tile + 2 * tiling_.pad : 0;
    const double pixels = tile > 0 ? static_cast<double>(std::min<std::int64_t>(side, in_.width + pre_pad_)) *
                                         std::min<std::int64_t>(side, in_.height + pre_pad_)
                                   : static_cast<double>(in_.width + pre_pad_) * (in_.height + pre_pad_);
    return static_cast<std::uint64_t>(pixels * architecture_.working_bytes_per_pixel());
  }

  // The largest tile (multiple of 32) whose working memory fits a quarter of the memory free now;
  // 0 when the whole frame fits.
  int auto_tile() const {
    const std::uint64_t budget = (device_ == "cpu" ? host_available_bytes() : (8ull << 30)) / 4;
    const std::uint64_t per_element = c10::elementSize(dtype_);
    if (working_bytes(0) * per_element / 4 <= budget) return 0;
    int tile = 1024;
    while (tile > min_tile && working_bytes(tile) * per_element / 4 > budget) tile -= 32;
    return tile;
  }

  at::Tensor upscale(const at::Tensor& rgb, Emitter& out) {
    const int scale = architecture_.scale, m = tiling_.multiple;
    at::Tensor x = rgb.to(device_).unsqueeze(0).to(dtype_).div_(255);
    // Real-ESRGAN's pre_pad (reflection at the right and bottom), then up to the multiple the
    // network needs; both are cut off the output again.
    auto pad = [](at::Tensor t, int right, int bottom) {
      if (right == 0 && bottom == 0) return t;
      const bool reflect = right < t.size(3) && bottom < t.size(2);  // reflection needs more pixels than padding
      return reflect ? at::reflection_pad2d(t, {0, right, 0, bottom}) : at::replication_pad2d(t, {0, right, 0, bottom});
    };
    x = pad(x, pre_pad_, pre_pad_);
    x = pad(x, (m - x.size(3) % m) % m, (m - x.size(2) % m) % m);
    // On the CPU, channels-last input makes libtorch's convolutions 18% (RRDBNet) to 30%
    // (SRVGGNetCompact) faster (docs/benchmarks.md); outputs move by at most ~1e-4.
    if (device_ == "cpu") x = x.contiguous(at::MemoryFormat::ChannelsLast);
    auto before_tile = [&](int index) {
      if (out.cancelled()) throw CancelledError();
      if (before_tile_) before_tile_(index);
    };
    at::Tensor y = run_tiled(x, scale, tiling_, [&](const at::Tensor& t) { return network_->forward(t); }, before_tile);
    y = y.narrow(2, 0, in_.height * scale).narrow(3, 0, in_.width * scale).to(at::kFloat);
    return to_bytes(resample(y));
  }

  at::Tensor resize_alpha(const at::Tensor& alpha) {
    return to_bytes(resample(alpha.to(device_).unsqueeze(0).to(at::kFloat).div_(255)));
  }

  // N x C x H x W float to the output size with libtorch's bicubic (antialiased when shrinking);
  // unchanged when the network's scale is the output size.
  at::Tensor resample(const at::Tensor& x) const {
    if (x.size(2) == out_.height && x.size(3) == out_.width) return x;
    const bool shrink = out_.width < x.size(3) || out_.height < x.size(2);
    const std::vector<std::int64_t> size{out_.height, out_.width};
    return shrink ? at::_upsample_bicubic2d_aa(x, size, false, c10::nullopt, c10::nullopt)
                  : at::upsample_bicubic2d(x, size, false, c10::nullopt, c10::nullopt);
  }

  // [0, 1] floats to uint8 as Real-ESRGAN does: clamp, scale, round.
  static at::Tensor to_bytes(const at::Tensor& x) {
    return x.clamp(0, 1).mul_(255).round_().to(at::kByte).squeeze(0);
  }

  [[noreturn]] void throw_out_of_memory(std::int64_t frame, int tile, const std::string& detail) {
    const std::string setting = tile > 0 ? "tile " + std::to_string(tile) : "tile 0 (whole frame)";
    throw OutOfMemoryError("out of memory upscaling frame " + std::to_string(frame) + " with " + setting + ", tile_pad " +
                               std::to_string(tiling_.pad) + " (" + detail.substr(0, detail.find('\n')) + ")",
                           "lower 'tile' (the node halves it on its own down to " + std::to_string(min_tile) +
                               "), lower the input resolution, or use precision fp16 on a GPU");
  }

  std::function<void(int)> before_tile_;
  StreamDesc in_, out_;
  std::filesystem::path model_;
  Architecture architecture_;
  std::uint64_t parameters_ = 0;
  std::string device_ = "cpu";
  at::ScalarType dtype_ = at::kFloat;
  Tiling tiling_;
  int pre_pad_ = 0;
  std::unique_ptr<Network> network_;
};

ParamSpec tile_param() {
  ParamSpec tile = ParamSpec::integer("tile", 0, "Tile side in input pixels; 0: whole frames; auto: the largest that fits "
                                                 "a quarter of the free memory")
                       .range(0, 8192)
                       .or_words({"auto"});
  tile.default_value = "auto";
  return tile;
}

}  // namespace

NodeType esrgan_node_type(std::function<void(int)> before_tile) {
  return {
      .name = "upscaler.esrgan",
      .description = "Real-ESRGAN super-resolution (RRDBNet x4plus/x2plus/anime, SRVGGNetCompact general-x4v3/"
                     "animevideov3/x4fast) from safetensors, PyTorch or ncnn weights; tiled",
      .params = {ParamSpec::string("model", "", "Checkpoint path, or a model name looked up in the model folders")
                     .make_required(),
                 tile_param(),
                 ParamSpec::integer("tile_pad", 10, "Context pixels around each tile").range(0, 1024),
                 ParamSpec::integer("pre_pad", 0, "Reflection padding at the right and bottom, cut off after")
                     .range(0, 1024),
                 ParamSpec::number("outscale", 0, "Final scale (resampled with libtorch's bicubic); 0: the network's")
                     .range(0, 16),
                 ParamSpec::string("device", "auto", "cpu, cuda, cuda:N or auto (CUDA when available)"),
                 ParamSpec::choice("precision", "fp32", {"fp32", "fp16", "bf16"}, "Compute precision (fp16: GPU only)")},
      .inputs = {{"in", PortKind::video, "RGB or RGBA frames (alpha is resampled with bicubic)"}},
      .outputs = {{"out", PortKind::video, "Upscaled frames"}},
      .frame_dependence = FrameDependence::same_frame,
      .example_params = {{"model", "realesrgan-x4fast"}, {"tile", 128}},
      .create = [before_tile] { return std::make_unique<Esrgan>(before_tile); },
      .detect_model = detect_model,
  };
}

}  // namespace reel::sr
