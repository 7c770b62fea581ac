#pragma once
// A whole CogVideoX run on one model folder: the prompts through the tokenizer and T5, the
// starting latents (noise; for image-to-video the image's encoding as the first latent frame; for
// video-to-video the noised encoding of the video), the denoising loop with classifier-free
// guidance, and the VAE decode streamed chunk by chunk, as the reference pipelines do, drawing
// every random number from one CPU generator in the reference's order so that a seed gives the
// reference's video.
//
// Components load on first use and are released by the offload policy (see Offload) or release().
#include "model_folder.h"
#include "scheduler.h"
#include "vae.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace reel::cogvideox {

enum class Mode { text_to_video, image_to_video, video_to_video };

// When components leave the device: `none` keeps every component from first use until release();
// `model` releases the text encoder once the prompts are encoded and the transformer before
// decoding; `sequential` keeps components in host memory and moves each to the device only while
// it runs (the same as `model` on the CPU).
enum class Offload { none, model, sequential };
Offload offload_mode(const std::string& name);  // InvalidParamError naming `offload`

struct Request {
  Mode mode = Mode::text_to_video;
  std::string prompt, negative_prompt;
  std::int64_t frames = 49, width = 720, height = 480, steps = 50;
  double guidance = 6.0;
  bool dynamic_guidance = false;
  std::uint64_t seed = 42;
  SamplerKind sampler = SamplerKind::ddim;
  double strength = 0.8;  // video-to-video: the share of the steps that run
  at::Tensor image;       // image-to-video: 3 x height x width, float in [-1, 1]
  at::Tensor video;       // video-to-video: 3 x F x height x width in [-1, 1]; the first `frames` are used
};

struct Hooks {
  std::function<void(std::int64_t done, std::int64_t total)> on_step;  // after every denoising step
  std::function<void(const at::Tensor& frames)> on_frames;  // each decoded chunk: f x 3 x H x W uint8 RGB
  std::function<bool()> cancelled;                          // polled between steps and chunks
};

// What a folder is: its variant's name ("CogVideoX-5b", "CogVideoX-5b-I2V", "CogVideoX1.5-5b", ...)
// judged from the configs, and whether its transformer takes an image.
struct Variant {
  std::string name;
  bool image_to_video = false;
};
Variant detect_variant(const ModelFolder& folder);

class Pipeline {
 public:
  // Reads and checks every config of the folder; loads no weights. Throws BadInputError naming
  // what is missing or unsupported.
  Pipeline(const std::filesystem::path& folder, std::string device, at::ScalarType dtype, Offload offload);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  const Variant& variant() const noexcept;
  // InvalidParamError (naming the parameter) for a request this model cannot run: a frame count or
  // size it cannot make, a mode it was not trained for, a strength that leaves no step. The image
  // or video is checked when present (a node checks the rest at configure, before it has them).
  void check(const Request& request) const;
  // Runs the request; frames go to hooks.on_frames as they are decoded. Throws CancelledError when
  // hooks.cancelled() turns true. The same as denoise(), start_decode() and next_frames() until
  // they run out.
  void generate(const Request& request, const Hooks& hooks);

  // The run in steps, for a caller that hands frames on between them (the node):
  // the prompts, the starting latents and the denoising loop -> the final latents (1 x F x C x h x w).
  at::Tensor denoise(const Request& request, const Hooks& hooks);
  // Begins decoding `latents` (from denoise) with `tiling` (vae_tile; 0 x 0: whole frames).
  void start_decode(const at::Tensor& latents, VaeTiling tiling = {});
  // The next decoded chunk as f x 3 x H x W uint8 RGB; undefined once every frame was handed out.
  // After an out-of-memory failure the next call decodes the same chunk again.
  at::Tensor next_frames();
  // After running out of memory while decoding: smaller tiles (whole frames -> halves -> ...).
  // False when the tiles are already at their smallest (16 x 16 pixels).
  bool degrade_decode();
  const VaeTiling& decode_tiling() const;
  // How many frames a request for `frames` gives: `frames` itself for 8k+1, and 3 more for the
  // other 4k+1 counts (the VAE decodes an even number of latent frames to 4 frames each).
  std::int64_t output_frames(std::int64_t frames) const;
  // Drops every loaded component. Safe in any state.
  void release() noexcept;

  // Bytes of weights per component in the compute precision, from the checkpoints' headers.
  struct Footprint {
    std::uint64_t text_encoder = 0, transformer = 0, vae = 0;
  };
  Footprint weight_bytes() const;
  // What the compute device holds at most during the run under an offload policy: weights plus
  // the larger working set.
  std::uint64_t device_peak_bytes(const Request& request, Offload offload) const;
  // Transient bytes of one denoising step and of decoding one chunk, for `request`'s size.
  std::uint64_t step_working_bytes(const Request& request) const;
  std::uint64_t decode_working_bytes(const Request& request) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Decoded frames (B=1 x 3 x f x H x W, nominally [-1, 1]) -> f x 3 x H x W uint8, as the reference
// turns them into pixels: round(clamp(x / 2 + 0.5, 0, 1) * 255).
at::Tensor to_pixels(const at::Tensor& decoded);

}  // namespace reel::cogvideox
