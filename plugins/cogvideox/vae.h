#pragma once
// CogVideoX's 3D causal VAE (diffusers' AutoencoderKLCogVideoX): an encoder from RGB video to
// latents (4x fewer frames, 8x smaller) and a decoder back, both made of causal 3D convolutions:
// in time each convolution sees only the current and earlier frames, the first frame repeated
// before the start. Video is processed in temporal chunks (8 frames in, 2 latent frames out, the
// first chunk taking the remainder) and each causal convolution hands its last k-1 input frames
// to the next chunk (the conv cache), so a chunk's result equals the whole clip's.
// Keys as diffusers saves them: `encoder.conv_in.conv.weight`, `decoder.up_blocks.N.resnets.M.
// norm1.conv_y.conv.weight`, ...
#include "model_folder.h"

#include <reel/weights.h>

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace reel::cogvideox {

struct VaeConfig {
  std::int64_t in_channels = 3, out_channels = 3, latent_channels = 16, layers_per_block = 3;
  std::vector<std::int64_t> block_out_channels{128, 256, 256, 512};
  std::int64_t norm_num_groups = 32;
  double norm_eps = 1e-6;
  std::int64_t temporal_compression_ratio = 4;
  double scaling_factor = 1.15258426;
  bool invert_scale_latents = false;  // CogVideoX 1.5: the pipeline scales latents the other way

  // From vae/config.json; refuses block types, activations and options reel does not implement.
  static VaeConfig from(const Config& config);
  std::int64_t spatial_factor() const { return std::int64_t{1} << (block_out_channels.size() - 1); }
  int time_levels() const;  // how many blocks halve time (log2 of the temporal compression)
};

// Spatial tiles for decoding frames too large to decode whole, as diffusers' tiled decode: tiles
// of `sample_height` x `sample_width` output pixels, overlapping by 1/6 of a tile vertically and
// 1/5 horizontally, blended linearly across the overlap. 0 x 0: no tiling.
struct VaeTiling {
  std::int64_t sample_height = 0, sample_width = 0;
  double overlap_height = 1.0 / 6, overlap_width = 1.0 / 5;
  bool enabled() const { return sample_height > 0 && sample_width > 0; }
};

class Vae {
 public:
  explicit Vae(VaeConfig config);

  const VaeConfig& config() const noexcept { return config_; }
  weights::Expected expected() const;
  void load(const weights::Checkpoint& checkpoint);
  void to(const std::string& device, at::ScalarType dtype);

  // video: B x 3 x F x H x W in [-1, 1] -> B x 2*latent x ceil... moments (mean ++ logvar),
  // F = 1 + 4k frames giving 1 + k latent frames.
  at::Tensor encode(const at::Tensor& video) const;
  // latents: B x latent x n x h x w (already divided by the scaling factor) -> B x 3 x F x 8h x 8w
  // in about [-1, 1]. `on_chunk(frames)` gets each decoded chunk as soon as it is ready
  // (B x 3 x f x H x W), in order; without it the chunks are concatenated and returned.
  // With `tiling` (and latents larger than one tile) every chunk is decoded tile by tile, each
  // tile keeping its own conv cache, so memory is set by one tile of one chunk; the result is
  // diffusers' tiled decode.
  at::Tensor decode(const at::Tensor& latents, const std::function<void(const at::Tensor&)>& on_chunk = {},
                    const VaeTiling& tiling = {}) const;

 private:
  friend class VaeDecoding;
  using Cache = std::map<std::string, at::Tensor>;
  const at::Tensor& w(const std::string& name) const;
  at::Tensor causal_conv(const at::Tensor& x, const std::string& prefix, Cache& cache) const;
  at::Tensor resnet(const at::Tensor& x, const std::string& prefix, const at::Tensor& zq, Cache& cache) const;
  at::Tensor spatial_norm(const at::Tensor& f, const at::Tensor& zq, const std::string& prefix, Cache& cache) const;
  at::Tensor group_norm(const at::Tensor& x, const std::string& prefix, double eps) const;
  at::Tensor downsample(const at::Tensor& x, const std::string& prefix, bool compress_time) const;
  at::Tensor upsample(const at::Tensor& x, const std::string& prefix, bool compress_time) const;
  at::Tensor run_encoder(const at::Tensor& x, Cache& cache) const;
  at::Tensor run_decoder(const at::Tensor& z, Cache& cache) const;
  at::Tensor decode_tiled(const at::Tensor& chunk, const VaeTiling& tiling, std::vector<Cache>& caches) const;

  VaeConfig config_;
  std::map<std::string, at::Tensor> weights_;
};

// A decode handed out one chunk at a time, for a caller that passes each chunk on before asking
// for the next (a node emitting frames as they are made). Holds the latents and the conv caches
// between calls; the Vae must outlive it.
class VaeDecoding {
 public:
  VaeDecoding(const Vae& vae, at::Tensor latents, VaeTiling tiling = {});

  bool done() const noexcept { return next_ >= chunks_.size(); }
  // Decodes the next chunk: B x 3 x f x H x W. If it throws (out of memory), the same chunk is
  // decoded by the next call, after retile() if the caller lowers the tiles.
  at::Tensor next();
  // Decode with `tiling` from now on. The caches of the old tiling do not fit the new one, so the
  // chunks already handed out are decoded again (their frames dropped) to rebuild them: the rest
  // of the clip is then exactly the tiled decode of the whole clip.
  void retile(VaeTiling tiling);
  const VaeTiling& tiling() const noexcept { return tiling_; }
  // The decoded frames' size in pixels.
  std::int64_t height() const { return latents_.size(3) * vae_.config().spatial_factor(); }
  std::int64_t width() const { return latents_.size(4) * vae_.config().spatial_factor(); }

 private:
  at::Tensor decode_chunk(std::size_t index);

  const Vae& vae_;
  at::Tensor latents_;
  VaeTiling tiling_;
  bool tiled_ = false;
  std::vector<std::pair<std::int64_t, std::int64_t>> chunks_;
  std::size_t next_ = 0, cached_ = 0;  // chunks handed out; chunks the caches have seen
  Vae::Cache cache_;
  std::vector<Vae::Cache> tile_caches_;
};

}  // namespace reel::cogvideox
