#include "pipeline.h"

#include "t5.h"
#include "tokenizer.h"
#include "transformer.h"
#include "vae.h"

#include <reel/error.h>
#include <reel/log.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <optional>

namespace fs = std::filesystem;

namespace reel::cogvideox {

Offload offload_mode(const std::string& name) {
  if (name == "none") return Offload::none;
  if (name == "model") return Offload::model;
  if (name == "sequential") return Offload::sequential;
  throw InvalidParamError("offload", "'" + name + "' is not an offload policy: use none, model or sequential");
}

Variant detect_variant(const ModelFolder& folder) {
  // From the raw configs, so that a variant reel cannot run yet is still named.
  const Config t = folder.config("transformer"), v = folder.config("vae");
  Variant variant;
  variant.image_to_video = t.integer("in_channels", 16) == 2 * v.integer("latent_channels", 16);
  const bool version_1_5 = t.values().contains("patch_size_t") && !t.values()["patch_size_t"].is_null();
  // 2b: the sin-cos table and no rotary embedding; 5b and 1.5: rotary; the I2V transformer also
  // takes the image latents (twice the channels).
  const bool rotary = t.boolean("use_rotary_positional_embeddings", false);
  variant.name = version_1_5 ? "CogVideoX1.5-5b" : rotary ? "CogVideoX-5b" : "CogVideoX-2b";
  if (variant.image_to_video) variant.name += "-I2V";
  return variant;
}

namespace {

std::int64_t element_size(at::ScalarType dtype) { return static_cast<std::int64_t>(c10::elementSize(dtype)); }

}  // namespace

struct Pipeline::State {
  ModelFolder folder;
  std::string device;
  at::ScalarType dtype;
  Offload offload;
  Variant variant;
  T5Config t5_config;
  TransformerConfig transformer_config;
  VaeConfig vae_config;
  ScheduleConfig schedule_config;
  std::optional<T5Encoder> text_encoder;
  std::optional<Transformer> transformer;
  std::optional<Vae> vae;
  std::optional<VaeDecoding> decoding;  // refers to *vae

  // Sequential offload keeps a component in host memory between its uses.
  std::string resting_device() const { return offload == Offload::sequential ? "cpu" : device; }

  template <class Component>
  void activate(Component& component) {
    if (offload == Offload::sequential) component.to(device, dtype);
  }
  template <class Component>
  void rest(Component& component) {
    if (offload == Offload::sequential && device != "cpu") component.to("cpu", dtype);
  }

  // A component, loaded from the folder on first use and kept in `slot` until released.
  template <class Component, class ComponentConfig>
  Component& loaded(std::optional<Component>& slot, const ComponentConfig& config, const char* name) {
    if (!slot) {
      Component component(config);
      component.load(folder.weights(name));
      component.to(resting_device(), dtype);
      slot.emplace(std::move(component));
    }
    return *slot;
  }
  T5Encoder& text() { return loaded(text_encoder, t5_config, "text_encoder"); }
  Transformer& denoiser() { return loaded(transformer, transformer_config, "transformer"); }
  Vae& autoencoder() { return loaded(vae, vae_config, "vae"); }

  // (negative, positive) prompt embeddings, 1 x L x text_embed_dim each, in float32 on the device.
  std::pair<at::Tensor, at::Tensor> encode_prompts(const Request& r) {
    T5Tokenizer tokenizer(folder.component("tokenizer") / "spiece.model");
    const std::int64_t length = transformer_config.max_text_length;
    auto ids = [&](const std::string& text, const char* which) {
      Tokens tokens = tokenizer.encode(text, length);
      if (tokens.cut > 0)
        log(LogLevel::warning, std::string("the ") + which + " is " + std::to_string(tokens.cut) +
                                   " tokens too long for the model's " + std::to_string(length) +
                                   "; its end is cut off");
      return at::tensor(tokens.ids, at::kLong).unsqueeze(0).to(device);
    };
    at::Tensor positive = ids(r.prompt, "prompt"), negative = ids(r.negative_prompt, "negative prompt");
    T5Encoder& encoder = text();
    activate(encoder);
    at::Tensor states = encoder.encode(at::cat({negative, positive})).to(at::kFloat);
    rest(encoder);
    if (offload != Offload::none) text_encoder.reset();
    return {states.slice(0, 0, 1), states.slice(0, 1, 2)};
  }

  // The posterior sample of the VAE's encoding, scaled as the pipeline scales it:
  // 1 x F x C x h x w.
  at::Tensor encode_latents(const at::Tensor& video, at::Generator& generator) {
    Vae& v = autoencoder();
    activate(v);
    at::Tensor moments = v.encode(video.unsqueeze(0).to(device, dtype)).to(at::kFloat);
    rest(v);
    const std::int64_t c = vae_config.latent_channels;
    at::Tensor mean = moments.slice(1, 0, c), logvar = moments.slice(1, c, 2 * c).clamp(-30.0, 20.0);
    at::Tensor noise = at::randn(mean.sizes(), generator, at::TensorOptions().dtype(at::kFloat)).to(mean.device());
    at::Tensor sample = mean + at::exp(0.5 * logvar) * noise;
    sample = vae_config.invert_scale_latents ? sample / vae_config.scaling_factor : sample * vae_config.scaling_factor;
    return sample.permute({0, 2, 1, 3, 4}).contiguous();
  }
};

Pipeline::Pipeline(const fs::path& folder, std::string device, at::ScalarType dtype, Offload offload)
    : state_(std::make_unique<State>(State{ModelFolder::open(folder), std::move(device), dtype, offload}))
{
  State& s = *state_;
  s.folder.component("tokenizer");
  s.t5_config = T5Config::from(s.folder.config("text_encoder"));
  s.transformer_config = TransformerConfig::from(s.folder.config("transformer"));
  s.vae_config = VaeConfig::from(s.folder.config("vae"));
  s.schedule_config = ScheduleConfig::from(s.folder.config("scheduler", "scheduler_config.json"));
  s.variant = detect_variant(s.folder);
  const TransformerConfig& t = s.transformer_config;
  if (t.text_embed_dim != s.t5_config.d_model)
    throw BadInputError("model folder " + folder.string() + ": the transformer takes text states of width " +
                        std::to_string(t.text_embed_dim) + " but the text encoder makes " +
                        std::to_string(s.t5_config.d_model));
  if (t.out_channels != s.vae_config.latent_channels ||
      (t.in_channels != s.vae_config.latent_channels && t.in_channels != 2 * s.vae_config.latent_channels))
    throw BadInputError("model folder " + folder.string() + ": the transformer's channels (" +
                        std::to_string(t.in_channels) + " in, " + std::to_string(t.out_channels) +
                        " out) do not fit the VAE's " + std::to_string(s.vae_config.latent_channels) + " latent channels");
}

Pipeline::~Pipeline() = default;

const Variant& Pipeline::variant() const noexcept { return state_->variant; }

void Pipeline::check(const Request& r) const {
  const State& s = *state_;
  const std::int64_t time = s.vae_config.temporal_compression_ratio;
  const std::int64_t pixels = s.vae_config.spatial_factor() * s.transformer_config.patch;
  const Mode mode = r.mode;
  if (mode == Mode::image_to_video && !s.variant.image_to_video)
    throw InvalidParamError("image", s.variant.name + " makes video from text (or video), not from an image",
                            "use an image-to-video model (CogVideoX-5b-I2V), or disconnect the image input");
  if (mode != Mode::image_to_video && s.variant.image_to_video)
    throw InvalidParamError("image", s.variant.name + " is an image-to-video model: it needs an image input",
                            "connect an image (or a video's first frame) to the node's image input, or use a text-to-video model");
  const std::int64_t frames = r.frames;
  if (frames < 1 || (frames - 1) % time != 0)
    throw InvalidParamError("frames",
                            "must be " + std::to_string(time) + "k+1 frames (1, " + std::to_string(1 + time) + ", " +
                                std::to_string(1 + 2 * time) + ", ... 49), got " + std::to_string(frames));
  if (r.width < pixels || r.height < pixels || r.width % pixels || r.height % pixels)
    throw InvalidParamError(r.width % pixels || r.width < pixels ? "width" : "height",
                            "must be a positive multiple of " + std::to_string(pixels) + ", got " +
                                std::to_string(r.width) + "x" + std::to_string(r.height));
  s.transformer_config.check_size(r.height, r.width);
  if (r.steps < 1 || r.steps > s.schedule_config.train_timesteps)
    throw InvalidParamError("steps", "must be between 1 and " + std::to_string(s.schedule_config.train_timesteps));
  if (!(r.guidance >= 0)) throw InvalidParamError("guidance", "must be 0 or more");
  if (mode == Mode::video_to_video && s.transformer_config.patch_t &&
      ((frames - 1) / time + 1) % s.transformer_config.patch_t != 0)
    throw InvalidParamError("frames", "video-to-video with " + s.variant.name + " needs an even number of latent frames: " +
                                          "4(2k+1)+1 frames (5, 13, 21, ...), got " + std::to_string(frames),
                            "the reference pipeline refuses the other counts too");
  if (mode == Mode::video_to_video && static_cast<std::int64_t>(r.steps * r.strength) < 1)
    throw InvalidParamError("strength", "leaves no step to run: steps x strength must be at least 1",
                            "raise strength (0..1) or steps");
  auto check_pixels = [&](const at::Tensor& t, const char* what, std::int64_t dims) {
    if (!t.defined()) return;
    if (t.dim() != dims || t.size(0) != 3 || t.size(-2) != r.height || t.size(-1) != r.width)
      throw BadInputError(std::string("the ") + what + " must be RGB at " + std::to_string(r.width) + "x" +
                          std::to_string(r.height));
  };
  check_pixels(r.image, "image", 3);
  check_pixels(r.video, "video", 4);
  if (mode == Mode::video_to_video && r.video.defined() && r.video.size(1) < frames)
    throw BadInputError("the input video has " + std::to_string(r.video.size(1)) + " frames, fewer than the " +
                        std::to_string(frames) + " to generate",
                        "lower frames to 4k+1 at most " + std::to_string(r.video.size(1)));
}

void Pipeline::generate(const Request& r, const Hooks& hooks) {
  start_decode(denoise(r, hooks));
  c10::InferenceMode inference;
  for (at::Tensor frames = next_frames(); frames.defined(); frames = next_frames()) {
    if (hooks.cancelled && hooks.cancelled()) throw CancelledError();
    if (hooks.on_frames) hooks.on_frames(frames);
  }
}

at::Tensor Pipeline::denoise(const Request& r, const Hooks& hooks) {
  check(r);
  if (r.mode == Mode::image_to_video && !r.image.defined()) throw BadInputError("image-to-video needs an image");
  if (r.mode == Mode::video_to_video && !r.video.defined()) throw BadInputError("video-to-video needs a video");
  state_->decoding.reset();
  c10::InferenceMode inference;
  State& s = *state_;
  auto stop_if_cancelled = [&] {
    if (hooks.cancelled && hooks.cancelled()) throw CancelledError();
  };
  const Mode mode = r.mode;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(r.seed);
  const bool guided = r.guidance > 1.0;

  auto [negative, positive] = s.encode_prompts(r);
  at::Tensor text = (guided ? at::cat({negative, positive}) : positive).to(s.dtype);
  stop_if_cancelled();

  Schedule schedule(s.schedule_config);
  std::vector<std::int64_t> timesteps = schedule.timesteps(r.steps);
  if (mode == Mode::video_to_video) {
    // As the reference: int(steps * strength) steps run, from the matching timestep on.
    const auto kept = std::min(static_cast<std::int64_t>(r.steps * r.strength), r.steps);
    timesteps.erase(timesteps.begin(), timesteps.begin() + (r.steps - kept));
  }
  const auto total = static_cast<std::int64_t>(timesteps.size());

  const std::int64_t frames = r.frames;
  const std::int64_t latent_frames = (frames - 1) / s.vae_config.temporal_compression_ratio + 1;
  const std::int64_t f = s.vae_config.spatial_factor();
  // CogVideoX 1.5 patches pairs of latent frames: an odd count gets a padding frame in front,
  // dropped before decoding, as the reference pipelines do.
  const std::int64_t pt = s.transformer_config.patch_t;
  const std::int64_t padding = pt && latent_frames % pt ? pt - latent_frames % pt : 0;
  const std::vector<std::int64_t> shape{1, latent_frames + padding, s.vae_config.latent_channels, r.height / f,
                                        r.width / f};
  const auto noise_options = at::TensorOptions().dtype(at::kFloat);

  at::Tensor latents, image_latents;
  if (mode == Mode::text_to_video) {
    latents = at::randn(shape, generator, noise_options).to(s.device);
  } else if (mode == Mode::image_to_video) {
    // The image's encoding is the first latent frame of the condition, zeros after it.
    at::Tensor first = s.encode_latents(r.image.unsqueeze(1), generator);
    image_latents = at::cat({first, at::zeros({1, shape[1] - 1, shape[2], shape[3], shape[4]}, first.options())}, 1);
    latents = at::randn(shape, generator, noise_options).to(s.device);
  } else {
    at::Tensor encoded = s.encode_latents(r.video.narrow(1, 0, frames), generator);
    at::Tensor noise = at::randn(shape, generator, noise_options).to(s.device);
    latents = schedule.add_noise(encoded, noise, timesteps.front());
  }
  // The VAE's next use is the decode: offloading frees it for the transformer meanwhile.
  if (s.offload != Offload::none) s.vae.reset();
  stop_if_cancelled();

  Transformer& transformer = s.denoiser();
  s.activate(transformer);
  const std::int64_t h = shape[3], w = shape[4];
  at::Tensor rope_cos, rope_sin;
  if (s.transformer_config.rotary) {
    std::tie(rope_cos, rope_sin) = transformer.rotary_tables(shape[1], h, w);
    rope_cos = rope_cos.to(s.device);
    rope_sin = rope_sin.to(s.device);
  }
  Sampler sampler(schedule, r.sampler, r.steps, generator);
  for (std::int64_t i = 0; i < total; ++i) {
    stop_if_cancelled();
    const std::int64_t t = timesteps[i];
    at::Tensor input = guided ? at::cat({latents, latents}) : latents;
    if (image_latents.defined()) input = at::cat({input, guided ? at::cat({image_latents, image_latents}) : image_latents}, 2);
    at::Tensor timestep = at::full({input.size(0)}, t, at::TensorOptions().dtype(at::kLong).device(s.device));
    at::Tensor prediction = transformer.forward(input.to(s.dtype), text, timestep, rope_cos, rope_sin).to(at::kFloat);
    if (guided) {
      const double g = guidance_at(r.guidance, r.dynamic_guidance, t, total);
      at::Tensor unconditional = prediction.slice(0, 0, 1), conditional = prediction.slice(0, 1, 2);
      prediction = unconditional + g * (conditional - unconditional);
    }
    latents = sampler.step(prediction, t, latents).prev_sample;
    if (hooks.on_step) hooks.on_step(i + 1, total);
  }
  s.rest(transformer);
  if (s.offload != Offload::none) s.transformer.reset();
  return latents.narrow(1, padding, latent_frames);
}

void Pipeline::start_decode(const at::Tensor& latents, VaeTiling tiling) {
  State& s = *state_;
  c10::InferenceMode inference;
  s.decoding.reset();
  Vae& vae = s.autoencoder();
  s.activate(vae);
  at::Tensor z = latents.permute({0, 2, 1, 3, 4});
  // Divided by the scaling factor in every version (1.5's invert_scale_latents concerns the encode).
  z = (z / s.vae_config.scaling_factor).to(s.dtype);
  s.decoding.emplace(vae, z, tiling);
}

at::Tensor Pipeline::next_frames() {
  State& s = *state_;
  if (!s.decoding || s.decoding->done()) {
    if (s.decoding && s.vae) s.rest(*s.vae);
    return {};
  }
  c10::InferenceMode inference;
  return to_pixels(s.decoding->next());
}

bool Pipeline::degrade_decode() {
  State& s = *state_;
  if (!s.decoding) return false;
  const std::int64_t minimum = 16;
  VaeTiling tiling = s.decoding->tiling();
  const std::int64_t f = s.vae_config.spatial_factor();
  // Whole frames first become tiles of half the frame, then the tiles halve; sizes in whole latents.
  const std::int64_t height = tiling.enabled() ? tiling.sample_height : s.decoding->height();
  const std::int64_t width = tiling.enabled() ? tiling.sample_width : s.decoding->width();
  auto half = [&](std::int64_t pixels) { return std::max(minimum, (pixels / 2 + f - 1) / f * f); };
  if (half(height) >= height && half(width) >= width) return false;
  tiling.sample_height = half(height);
  tiling.sample_width = half(width);
  log(LogLevel::warning, "decoding in tiles of " + std::to_string(tiling.sample_width) + "x" +
                             std::to_string(tiling.sample_height) + " pixels to fit in memory");
  s.decoding->retile(tiling);
  return true;
}

const VaeTiling& Pipeline::decode_tiling() const {
  static const VaeTiling none;
  return state_->decoding ? state_->decoding->tiling() : none;
}

std::int64_t Pipeline::output_frames(std::int64_t frames) const {
  // Each time-compressing level of the decoder doubles the frames, keeping the first one alone
  // when their count is odd: n latent frames -> 1 + 4(n-1) for odd n, 4n for even n.
  const std::int64_t time = state_->vae_config.temporal_compression_ratio;
  const std::int64_t latent = (frames - 1) / time + 1;
  return latent % 2 == 1 ? 1 + time * (latent - 1) : time * latent;
}

void Pipeline::release() noexcept {
  state_->decoding.reset();
  state_->text_encoder.reset();
  state_->transformer.reset();
  state_->vae.reset();
}

Pipeline::Footprint Pipeline::weight_bytes() const {
  const State& s = *state_;
  // From the configs (the shapes the networks expect), so a plan needs no weights at hand.
  const auto bytes = [&](const weights::Expected& expected) {
    std::uint64_t n = 0;
    for (const auto& [name, shape] : expected) {
      std::uint64_t count = 1;
      for (std::int64_t d : shape) count *= static_cast<std::uint64_t>(d);
      n += count;
    }
    return n * static_cast<std::uint64_t>(element_size(s.dtype));
  };
  return {bytes(T5Encoder(s.t5_config).expected()), bytes(Transformer(s.transformer_config).expected()),
          bytes(Vae(s.vae_config).expected())};
}

std::uint64_t Pipeline::device_peak_bytes(const Request& r, Offload offload) const {
  const Footprint w = weight_bytes();
  const std::uint64_t step = step_working_bytes(r), decode = decode_working_bytes(r);
  if (offload == Offload::none) return w.text_encoder + w.transformer + w.vae + std::max(step, decode);
  // model: the text encoder goes before the transformer loads, the VAE waits out the denoising
  // and the transformer goes before decoding; sequential: one component on the device at a
  // time. Either way the peak is the heaviest phase (the prompts' work is small).
  return std::max({w.text_encoder, w.transformer + step, w.vae + decode});
}

std::uint64_t Pipeline::step_working_bytes(const Request& r) const {
  const State& s = *state_;
  const TransformerConfig& t = s.transformer_config;
  const std::int64_t f = s.vae_config.spatial_factor() * t.patch;
  const std::int64_t frames = r.frames;
  const std::int64_t latent_frames = (frames - 1) / s.vae_config.temporal_compression_ratio + 1;
  // 1.5 makes one token of each pair of latent frames (an odd count padded by one).
  const std::int64_t slots = t.patch_t ? (latent_frames + t.patch_t - 1) / t.patch_t : latent_frames;
  const std::uint64_t tokens = t.max_text_length + slots * (r.height / f) * (r.width / f);
  const std::uint64_t batch = r.guidance > 1.0 ? 2 : 1;
  // Per token: the residual stream, q/k/v, the attention output and the 4x feed-forward, about
  // 12 widths alive at once; plus one chunk of attention scores (and its softmax).
  const std::int64_t size = element_size(s.dtype);
  const std::uint64_t activations = batch * tokens * t.inner() * 12 * size;
  const std::uint64_t chunk = attention_query_chunk(batch, t.heads, tokens, size);
  const std::uint64_t scores = 2 * batch * t.heads * chunk * tokens * size;
  return activations + scores;
}

std::uint64_t Pipeline::decode_working_bytes(const Request& r) const {
  const State& s = *state_;
  // The decoder's widest full-resolution map: block_out_channels[0] channels over one chunk's
  // frames (2 latent frames -> 8), with about 4 such maps alive (input, norm, conv, cache).
  const std::uint64_t frames = 2 * s.vae_config.temporal_compression_ratio;
  return frames * r.height * r.width * s.vae_config.block_out_channels.front() * 4 * element_size(s.dtype);
}

at::Tensor to_pixels(const at::Tensor& decoded) {
  at::Tensor x = (decoded.to(at::kFloat) / 2 + 0.5).clamp(0, 1);
  return at::round(x * 255).to(at::kByte).squeeze(0).permute({1, 0, 2, 3}).contiguous().cpu();
}

}  // namespace reel::cogvideox
