#pragma once
// CogVideoX's denoising transformer (diffusers' CogVideoXTransformer3DModel): the latent video cut
// into 2x2 patches and the prompt's T5 states projected to the same width, then blocks of joint
// attention over text and video tokens (per-head LayerNorm on queries and keys, rotary position
// embedding on the video tokens) and a GELU feed-forward, each modulated by the timestep through
// adaptive LayerNorms (shift, scale, gate); a final adaptive norm and the projection back to
// patches. Keys as diffusers saves them: `patch_embed.proj.weight`, `transformer_blocks.N.attn1.
// to_q.weight`, ..., `proj_out.weight`.
//
// Every released layout: CogVideoX-2b (3D sin-cos position table), 5b (3D rotary embedding),
// 5b-I2V (rotary and a learned position table), 1.5 (patches of 2 latent frames through a linear
// layer, a sliced rotary grid) and 1.5-I2V (plus the ofs embedding).
#include "model_folder.h"

#include <reel/weights.h>

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace reel::cogvideox {

struct TransformerConfig {
  std::int64_t heads = 48, head_dim = 64, in_channels = 16, out_channels = 16, layers = 42;
  std::int64_t time_embed_dim = 512, text_embed_dim = 4096, patch = 2, max_text_length = 226;
  std::int64_t sample_width = 90, sample_height = 60, sample_frames = 49, temporal_compression = 4;
  double norm_eps = 1e-5, spatial_interpolation = 1.875, temporal_interpolation = 1.0;
  bool attention_bias = true, rotary = true, learned_positions = false;
  bool flip_sin_to_cos = true;
  std::int64_t freq_shift = 0;
  // CogVideoX 1.5: patches of patch_t latent frames (0: 2D patches) and the ofs embedding's width
  // (0: none; 1.5-I2V has one).
  std::int64_t patch_t = 0, ofs_dim = 0;

  static TransformerConfig from(const Config& config);
  std::int64_t inner() const { return heads * head_dim; }
  // Refuses (InvalidParamError naming width or height) a video size the model cannot make: a
  // transformer with a learned position table (5b-I2V) makes its sample size only, 1.5 at most
  // its sample size (its rotary grid is sliced from it). Pixels.
  void check_size(std::int64_t height, std::int64_t width) const;
};

// Attention runs in query chunks whose score matrix stays within this many bytes.
constexpr std::int64_t kAttentionScoreBytes = std::int64_t{1} << 30;
// How many query rows one chunk has, for B x heads x tokens attention in elements of that size.
std::int64_t attention_query_chunk(std::int64_t batch, std::int64_t heads, std::int64_t tokens, std::int64_t element_size);

class Transformer {
 public:
  explicit Transformer(TransformerConfig config);

  const TransformerConfig& config() const noexcept { return config_; }
  weights::Expected expected() const;
  void load(const weights::Checkpoint& checkpoint);
  void to(const std::string& device, at::ScalarType dtype);

  // The rotary tables (cos, sin), each (F' * H/p * W/p) x head_dim, for F latent frames of H x W
  // latents, as the reference pipelines build them. 1.0: F' = F, positions on a grid fitted into
  // the model's sample size (resized to fit, centred, fractional). 1.5: F' = ceil(F / patch_t),
  // integer positions sliced from the sample grid (so the size may not exceed the sample size).
  std::pair<at::Tensor, at::Tensor> rotary_tables(std::int64_t frames, std::int64_t height, std::int64_t width) const;
  // The 3D sin-cos position table of the 2b layout, 1 x (L_text + F * H/p * W/p) x inner, the text
  // rows zero.
  at::Tensor sincos_positions(std::int64_t frames, std::int64_t height, std::int64_t width) const;

  // latents: B x F x C x H x W (F a multiple of patch_t in 1.5); text: B x L x text_embed_dim;
  // timesteps: B (int64 or float). rope_cos / rope_sin: the rotary tables, made by rotary_tables
  // when not given. `ofs`: the 1.5-I2V ofs input (2.0, what the reference pipelines pass).
  // Returns B x F x out_channels x H x W.
  at::Tensor forward(const at::Tensor& latents, const at::Tensor& text, const at::Tensor& timesteps,
                     at::Tensor rope_cos = {}, at::Tensor rope_sin = {}, double ofs = 2.0) const;

 private:
  std::pair<at::Tensor, at::Tensor> rotary_grid(std::int64_t frames, std::int64_t grid_h, std::int64_t grid_w,
                                                const at::Tensor& ts, const at::Tensor& ys, const at::Tensor& xs) const;
  const at::Tensor& w(const std::string& name) const { return weights_.at(name); }
  at::Tensor linear(const at::Tensor& x, const std::string& prefix) const;
  at::Tensor layer_norm(const at::Tensor& x, const std::string& prefix, double eps) const;

  TransformerConfig config_;
  std::map<std::string, at::Tensor> weights_;
};

}  // namespace reel::cogvideox
