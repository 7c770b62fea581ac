// generator.cogvideox: CogVideoX text-, image- and video-to-video as a reel node. One node type for
// the three modes: nothing connected is text-to-video, the optional `image` input makes it image-
// to-video (an I2V model), the optional `video` input video-to-video. The whole run lives in a
// Pipeline (pipeline.h); the node turns frames into its inputs, runs the denoising in its first
// produce() call and hands the decoded frames on one VAE chunk per further call.
#include "pipeline.h"
#include "transformer.h"

#include <reel/compute.h>
#include <reel/reel.h>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <charconv>
#include <cstdio>
#include <random>

namespace fs = std::filesystem;

namespace reel::cogvideox {

namespace {

constexpr int kImagePort = 0, kVideoPort = 1;

// A model folder: a path to a folder with model_index.json, or a folder name in the model folders.
fs::path resolve_folder(const std::string& name) {
  std::error_code ec;
  if (name.empty()) throw InvalidParamError("model", "no model given", "set it to a CogVideoX model folder");
  std::vector<fs::path> looked{fs::absolute(name, ec)};
  if (name.find('/') == std::string::npos)
    for (const auto& dir : weights::model_dirs()) looked.push_back(dir / name);
  for (const auto& dir : looked)
    if (fs::is_regular_file(dir / "model_index.json", ec)) return dir;
  std::string where;
  for (const auto& dir : looked) where += "\n  " + dir.string();
  throw InvalidParamError("model", "no CogVideoX model folder (with model_index.json) named '" + name + "'; looked in:" + where,
                          "docs/models.md says how to lay out a CogVideoX model folder");
}

// "-1" (draw one), or a seed from 0 to 2^64 - 1 (a JSON number or its text).
std::optional<std::uint64_t> parse_seed(const std::string& text) {
  if (text == "-1") return std::nullopt;
  std::uint64_t seed = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seed);
  if (error != std::errc() || end != text.data() + text.size())
    throw InvalidParamError("seed", "'" + text + "' is not a seed: use -1 (draw one) or 0 .. 18446744073709551615");
  return seed;
}

// An input frame (3 x h x w uint8) as the model's input: scaled to cover width x height, centre
// cropped, in [-1, 1]. A frame already at that size is used as it is.
at::Tensor model_pixels(const at::Tensor& image, std::int64_t width, std::int64_t height) {
  at::Tensor x = image.to(at::kCPU).to(at::kFloat).unsqueeze(0);
  const std::int64_t h = x.size(2), w = x.size(3);
  if (h != height || w != width) {
    const double scale = std::max(double(height) / h, double(width) / w);
    const auto sh = std::max(height, static_cast<std::int64_t>(std::lround(h * scale)));
    const auto sw = std::max(width, static_cast<std::int64_t>(std::lround(w * scale)));
    x = at::_upsample_bicubic2d_aa(x, {sh, sw}, false).clamp(0, 255);
    x = x.narrow(2, (sh - height) / 2, height).narrow(3, (sw - width) / 2, width);
  }
  return (x.squeeze(0) / 255 * 2 - 1).contiguous();
}

class CogVideoXNode : public Node {
 public:
  std::vector<StreamDesc> configure(const NodeConfig& config) override {
    const Params& p = config.params;
    folder_ = resolve_folder(p.string("model"));
    device_ = resolve_device(p.string("device"));
    dtype_ = resolve_precision(p.string("precision"), device_);
    offload_ = offload_mode(p.string("offload"));
    const bool image = config.inputs.at(kImagePort).width > 0, video = config.inputs.at(kVideoPort).width > 0;
    if (image && video)
      throw InvalidParamError("image", "connect the image input or the video input, not both",
                              "image: image-to-video; video: video-to-video; neither: text-to-video");
    request_.mode = image ? Mode::image_to_video : video ? Mode::video_to_video : Mode::text_to_video;
    request_.prompt = p.string("prompt");
    request_.negative_prompt = p.string("negative_prompt");
    request_.frames = p.integer("frames");
    request_.width = p.integer("width");
    request_.height = p.integer("height");
    request_.steps = p.integer("steps");
    request_.guidance = p.number("guidance");
    request_.dynamic_guidance = p.boolean("dynamic_guidance");
    request_.sampler = sampler_kind(p.string("scheduler"));
    request_.strength = p.number("strength");
    seed_param_ = parse_seed(p.string("seed"));
    vae_tile_ = p.integer("vae_tile");
    if (vae_tile_ != 0 && vae_tile_ % 8 != 0)
      throw InvalidParamError("vae_tile", "must be 0 (whole frames) or a multiple of 8 pixels, got " + std::to_string(vae_tile_));
    if (video && config.inputs[kVideoPort].frame_count && *config.inputs[kVideoPort].frame_count < request_.frames)
      throw InvalidParamError("frames", std::to_string(request_.frames) + " frames from a video of " +
                                            std::to_string(*config.inputs[kVideoPort].frame_count),
                              "lower frames (4k+1) or use a longer video");
    pipeline_ = std::make_unique<Pipeline>(folder_, device_, dtype_, offload_);
    pipeline_->check(request_);
    advise_offload(p.string("precision"));

    StreamDesc out;
    out.width = static_cast<int>(request_.width);
    out.height = static_cast<int>(request_.height);
    const auto fps = Rational::parse(p.string("fps"));
    if (!fps) throw InvalidParamError("fps", "'" + p.string("fps") + "' is not a frame rate");
    out.fps = *fps;
    out.frame_count = pipeline_->output_frames(request_.frames);
    if (*out.frame_count != request_.frames)
      log(LogLevel::warning, "CogVideoX makes " + std::to_string(*out.frame_count) + " frames when asked for " +
                                 std::to_string(request_.frames) + " (its VAE decodes latent frames in pairs); ask for 8k+1 "
                                 "frames (9, 17, ... 49) to get exactly that many");
    return {out};
  }

  std::vector<MemoryEstimate> estimate() const override {
    try {
      const Pipeline::Footprint w = pipeline_->weight_bytes();
      const std::uint64_t working =
          std::max(pipeline_->step_working_bytes(request_), pipeline_->decode_working_bytes(request_));
      const std::uint64_t all = w.text_encoder + w.transformer + w.vae;
      const std::uint64_t device = pipeline_->device_peak_bytes(request_, offload_) - working;
      // Sequential offload keeps every component in host memory while one is on the GPU.
      if (offload_ == Offload::sequential && device_ != "cpu") return {{device_, device, working}, {"cpu", all, 0}};
      return {{device_, device, working}};
    } catch (const std::exception& e) {
      log(LogLevel::warning, std::string("cannot estimate the model's memory: ") + e.what());
      return {};
    }
  }

  void process(const Frame& frame, int port, Emitter&) override {
    if (port == kImagePort) {
      request_.image = model_pixels(frame.image, request_.width, request_.height);
      return;
    }
    // Video-to-video takes the first `frames` frames; later ones are not needed.
    if (static_cast<std::int64_t>(video_frames_.size()) < request_.frames)
      video_frames_.push_back(model_pixels(frame.image, request_.width, request_.height));
  }

  bool produce(Emitter& out) override {
    if (!denoised_) {
      run_denoising(out);
      return true;
    }
    at::Tensor frames = pipeline_->next_frames();
    if (!frames.defined()) return false;
    for (std::int64_t i = 0; i < frames.size(0); ++i) out.emit(frames[i]);
    return true;
  }

  void unload() override {
    if (pipeline_) pipeline_->release();
    video_frames_.clear();
    request_.image = request_.video = at::Tensor();
  }

  bool degrade() override { return denoised_ && pipeline_ && pipeline_->degrade_decode(); }

  std::vector<std::pair<std::string, std::string>> facts() const override {
    std::vector<std::pair<std::string, std::string>> f;
    if (pipeline_) f.emplace_back("variant", pipeline_->variant().name);
    if (seed_) f.emplace_back("seed", std::to_string(*seed_));
    return f;
  }

  std::vector<std::pair<std::string, std::int64_t>> counters() const override {
    return {{"denoising_steps", steps_done_}};
  }

 private:
  // Says what each offload policy needs on the device, and warns (naming the policy that fits)
  // when the chosen one needs more than the device has.
  void advise_offload(const std::string& precision) const {
    const char* names[] = {"none", "model", "sequential"};
    const Offload policies[] = {Offload::none, Offload::model, Offload::sequential};
    std::uint64_t need[3];
    std::string table;
    for (int i = 0; i < 3; ++i) {
      need[i] = pipeline_->device_peak_bytes(request_, policies[i]);
      table += std::string(i ? ", " : "") + names[i] + " " + gigabytes(need[i]);
    }
    const std::string what = pipeline_->variant().name + " in " + precision + " at " + std::to_string(request_.width) + "x" +
                             std::to_string(request_.height) + "x" + std::to_string(request_.frames);
    log(LogLevel::info, what + " needs about " + table + " on " + device_ + " (by offload policy)");
    const auto capacity = device_memory_bytes(device_);
    const int chosen = static_cast<int>(offload_);
    if (!capacity || need[chosen] <= *capacity) return;
    for (int i = 1; i < 3; ++i)
      if (need[i] <= *capacity) {
        log(LogLevel::warning, what + " with offload " + names[chosen] + " needs about " + gigabytes(need[chosen]) +
                                   ", more than the " + gigabytes(*capacity) + " of " + device_ + ": set offload to " +
                                   names[i] + " (about " + gigabytes(need[i]) + ")");
        return;
      }
    log(LogLevel::warning, what + " needs about " + gigabytes(need[1]) + " even with offload, more than the " +
                               gigabytes(*capacity) + " of " + device_ + ": lower width, height or frames");
  }

  static std::string gigabytes(std::uint64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f GB", bytes / 1e9);
    return text;
  }

  void run_denoising(Emitter& out) {
    if (request_.mode == Mode::video_to_video) {
      if (static_cast<std::int64_t>(video_frames_.size()) < request_.frames)
        throw BadInputError("the video input ended after " + std::to_string(video_frames_.size()) +
                                " frames; video-to-video needs " + std::to_string(request_.frames),
                            "lower frames (4k+1) or use a longer video");
      request_.video = at::stack(video_frames_, 1);
      video_frames_.clear();
    }
    if (request_.mode == Mode::image_to_video && !request_.image.defined())
      throw BadInputError("the image input delivered no frame");
    if (!seed_) {
      seed_ = seed_param_ ? *seed_param_ : (std::uint64_t{std::random_device{}()} << 32) | std::random_device{}();
      request_.seed = *seed_;
      log(LogLevel::info, "generating with seed " + std::to_string(*seed_));
    }
    Hooks hooks;
    hooks.on_step = [&](std::int64_t done, std::int64_t total) {
      steps_done_ = done;
      out.progress("denoising", done, total);
    };
    hooks.cancelled = [&] { return out.cancelled(); };
    at::Tensor latents;
    try {
      latents = pipeline_->denoise(request_, hooks);
    } catch (const std::exception& e) {
      if (!is_out_of_memory(e)) throw;
      const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
      const std::string cause = c10_error ? c10_error->what_without_backtrace() : e.what();
      throw OutOfMemoryError(pipeline_->variant().name + " ran out of memory generating " + std::to_string(request_.frames) +
                                 " frames at " + std::to_string(request_.width) + "x" + std::to_string(request_.height) +
                                 ": " + cause.substr(0, cause.find('\n')),
                             "set offload to model (or sequential), or lower width, height or frames");
    }
    pipeline_->start_decode(latents, VaeTiling{vae_tile_, vae_tile_});
    request_.image = request_.video = at::Tensor();
    denoised_ = true;
  }

  fs::path folder_;
  std::string device_ = "cpu";
  at::ScalarType dtype_ = at::kFloat;
  Offload offload_ = Offload::model;
  Request request_;
  std::optional<std::uint64_t> seed_param_, seed_;
  std::int64_t vae_tile_ = 0, steps_done_ = 0;
  std::unique_ptr<Pipeline> pipeline_;
  std::vector<at::Tensor> video_frames_;
  bool denoised_ = false;
};

std::string parameters_text(std::uint64_t n) {
  char text[32];
  if (n >= 1'000'000'000) std::snprintf(text, sizeof text, "%.2fG", n / 1e9);
  else if (n >= 1'000'000) std::snprintf(text, sizeof text, "%.2fM", n / 1e6);
  else std::snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(n));
  return std::string(text) + " parameters";
}

// `reel models`: a diffusers CogVideoX folder, its variant and what each component holds.
std::optional<DetectedModel> detect_folder(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / "model_index.json", ec)) return std::nullopt;
  const ModelFolder folder = ModelFolder::open(dir);
  if (folder.pipeline().rfind("CogVideoX", 0) != 0) return std::nullopt;
  DetectedModel found;
  try {
    found.architecture = detect_variant(folder).name;
  } catch (const std::exception& e) {
    // No variant without the transformer's and VAE's configs: the pipeline's class must do.
    found.architecture = folder.pipeline() + " (variant unknown)";
    found.problem = e.what();
  }
  auto weights_text = [&](const std::string& name) {
    try {
      const weights::Checkpoint checkpoint = folder.weights(name);
      return parameters_text(checkpoint.parameter_count());
    } catch (const std::exception& e) {
      found.problem = e.what();
      return std::string("unreadable weights");
    }
  };
  for (const char* name : {"text_encoder", "tokenizer", "transformer", "vae", "scheduler"}) {
    const std::string cls = folder.component_class(name);
    if (cls.empty() || !fs::is_directory(dir / name, ec)) {
      found.components.emplace_back(name, "missing");
      if (found.problem.empty()) found.problem = "the " + std::string(name) + " component is missing";
      continue;
    }
    std::string what = cls;
    if (std::string(name) == "tokenizer") what += fs::is_regular_file(dir / name / "spiece.model", ec) ? ", spiece.model" : ", no spiece.model";
    else if (std::string(name) != "scheduler") what += ", " + weights_text(name);
    found.components.emplace_back(name, what);
  }
  if (found.problem.empty()) {
    try {
      Pipeline(dir, "cpu", at::kFloat, Offload::model);  // every config checked, nothing loaded
    } catch (const std::exception& e) {
      found.problem = e.what();
    }
  }
  return found;
}

}  // namespace

}  // namespace reel::cogvideox

namespace {

void register_nodes(reel::Registry& registry) {
  using reel::ParamSpec;
  using reel::PortKind;
  registry.add({
      .name = "generator.cogvideox",
      .description = "CogVideoX video generation from a diffusers model folder: text-to-video, image-to-video (connect "
                     "image, I2V models) or video-to-video (connect video)",
      .params =
          {ParamSpec::string("model", "", "Model folder (with model_index.json), or its name in the model folders")
               .make_required(),
           ParamSpec::string("prompt", "", "What the video shows").make_required(),
           ParamSpec::string("negative_prompt", "", "What it should not show (classifier-free guidance)"),
           ParamSpec::integer("frames", 49, "Frames to make: 4k+1; 8k+1 (9, 17, ... 49) gives exactly that many, other 4k+1 counts 3 more").range(1, 1001),
           ParamSpec::integer("width", 720, "Width in pixels, a multiple of 16").range(16, 8192),
           ParamSpec::integer("height", 480, "Height in pixels, a multiple of 16").range(16, 8192),
           ParamSpec::integer("steps", 50, "Denoising steps").range(1, 1000),
           ParamSpec::number("guidance", 6, "Classifier-free guidance scale (1 or less: no guidance)").range(0, 100),
           ParamSpec::boolean("dynamic_guidance", false, "Vary the guidance per step as the reference's use_dynamic_cfg"),
           ParamSpec::string("seed", "-1", "Random seed, 0 .. 2^64-1; -1 draws one (logged and in the run report)"),
           ParamSpec::choice("scheduler", "ddim", {"ddim", "dpm"}, "Sampler: ddim, or dpm (DPM-Solver++ 2M, stochastic)"),
           ParamSpec::number("strength", 0.8, "Video-to-video: how much of the video is redrawn (share of the steps run)")
               .range(0, 1),
           ParamSpec::string("fps", "8", "Frame rate of the output (CogVideoX 1.0 makes 8 fps)"),
           ParamSpec::string("device", "auto", "cpu, cuda, cuda:N or auto (CUDA when available)"),
           ParamSpec::choice("precision", "fp32", {"fp32", "fp16", "bf16"}, "Compute precision (bf16 on GPUs; fp16: GPU only)"),
           ParamSpec::choice("offload", "model", {"none", "model", "sequential"},
                             "none: keep every component loaded; model: text encoder released after encoding, transformer "
                             "before decoding; sequential: components on the GPU only while they run"),
           ParamSpec::integer("vae_tile", 0, "Decode in tiles of this many pixels (0: whole frames; out of memory "
                                             "lowers it by itself)")
               .range(0, 8192)},
      .inputs = {{"image", PortKind::image, "Image-to-video: the first frame to animate", true},
                 {"video", PortKind::video, "Video-to-video: the video to redraw (its first `frames` frames)", true}},
      .outputs = {{"out", PortKind::video, "The generated RGB frames, streamed as they are decoded"}},
      .example_params = {{"model", "CogVideoX-5b"}, {"prompt", "a red fox in the snow"}},
      .create = [] { return std::make_unique<reel::cogvideox::CogVideoXNode>(); },
      .detect_folder = reel::cogvideox::detect_folder,
  });
}

}  // namespace

REEL_PLUGIN(register_nodes)
