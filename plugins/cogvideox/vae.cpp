#include "vae.h"

#include <reel/error.h>

#include <ATen/ATen.h>

namespace reel::cogvideox {

VaeConfig VaeConfig::from(const Config& config) {
  VaeConfig c;
  c.in_channels = config.integer("in_channels", 3);
  c.out_channels = config.integer("out_channels", 3);
  c.latent_channels = config.integer("latent_channels", 16);
  c.layers_per_block = config.integer("layers_per_block", 3);
  c.block_out_channels = config.integers("block_out_channels");
  c.norm_num_groups = config.integer("norm_num_groups", 32);
  c.norm_eps = config.number("norm_eps", 1e-6);
  c.temporal_compression_ratio = static_cast<std::int64_t>(config.number("temporal_compression_ratio", 4));
  c.scaling_factor = config.number("scaling_factor", 1.15258426);
  c.invert_scale_latents = config.boolean("invert_scale_latents", false);
  config.choice("act_fn", {"silu", "swish"}, "silu");
  config.require("use_quant_conv", false);
  config.require("use_post_quant_conv", false);
  config.require("shift_factor", nullptr);
  config.require("latents_mean", nullptr);
  config.require("latents_std", nullptr);
  const auto& values = config.values();
  for (const char* key : {"down_block_types", "up_block_types"}) {
    if (!values.contains(key)) continue;
    const std::string expected = key[0] == 'd' ? "CogVideoXDownBlock3D" : "CogVideoXUpBlock3D";
    const auto& list = values[key];
    if (!list.is_array() || list.size() != c.block_out_channels.size())
      throw BadInputError("config " + config.file().string() + ": '" + key + "' must list one block per entry of block_out_channels");
    for (const auto& type : list)
      if (type != expected)
        throw BadInputError("config " + config.file().string() + ": '" + key + "' has " + type.dump() +
                            "; reel implements only " + expected);
  }
  auto fail = [&](const std::string& what) { throw BadInputError("config " + config.file().string() + ": " + what); };
  if (c.in_channels != 3 || c.out_channels != 3) fail("in_channels and out_channels must be 3 (RGB)");
  if (c.block_out_channels.size() < 2 || c.block_out_channels.size() > 8) fail("'block_out_channels' needs 2 to 8 entries");
  for (auto ch : c.block_out_channels)
    if (ch < 1 || ch > 4096 || ch % c.norm_num_groups != 0)
      fail("'block_out_channels' entry " + std::to_string(ch) + " is not a multiple of norm_num_groups " +
           std::to_string(c.norm_num_groups));
  if (c.latent_channels < 1 || c.latent_channels > 1024) fail("'latent_channels' is out of range");
  if (c.layers_per_block < 1 || c.layers_per_block > 16) fail("'layers_per_block' is out of range");
  const auto t = c.temporal_compression_ratio;
  if (t < 1 || (t & (t - 1)) != 0 || c.time_levels() >= static_cast<int>(c.block_out_channels.size()))
    fail("'temporal_compression_ratio' " + std::to_string(t) + " is not a power of two below 2^blocks");
  return c;
}

int VaeConfig::time_levels() const {
  int levels = 0;
  for (auto t = temporal_compression_ratio; t > 1; t >>= 1) ++levels;
  return levels;
}

Vae::Vae(VaeConfig config) : config_(std::move(config)) {}

weights::Expected Vae::expected() const {
  weights::Expected e;
  const auto& ch = config_.block_out_channels;
  const std::int64_t latent = config_.latent_channels;
  auto conv3 = [&](const std::string& p, std::int64_t in, std::int64_t out, std::int64_t k) {
    e.push_back({p + ".weight", {out, in, k, k, k}});
    e.push_back({p + ".bias", {out}});
  };
  auto norm = [&](const std::string& p, std::int64_t c) {
    e.push_back({p + ".weight", {c}});
    e.push_back({p + ".bias", {c}});
  };
  auto resnet = [&](const std::string& p, std::int64_t in, std::int64_t out, bool spatial) {
    auto any_norm = [&](const std::string& n, std::int64_t c) {
      if (!spatial) return norm(p + n, c);
      conv3(p + n + ".conv_b.conv", latent, c, 1);
      conv3(p + n + ".conv_y.conv", latent, c, 1);
      norm(p + n + ".norm_layer", c);
    };
    conv3(p + "conv1.conv", in, out, 3);
    conv3(p + "conv2.conv", out, out, 3);
    if (in != out) conv3(p + "conv_shortcut", in, out, 1);
    any_norm("norm1", in);
    any_norm("norm2", out);
  };
  const std::size_t n = ch.size();
  // Encoder.
  conv3("encoder.conv_in.conv", config_.in_channels, ch[0], 3);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string p = "encoder.down_blocks." + std::to_string(i) + ".";
    for (std::int64_t r = 0; r < config_.layers_per_block; ++r)
      resnet(p + "resnets." + std::to_string(r) + ".", r == 0 ? ch[i == 0 ? 0 : i - 1] : ch[i], ch[i], false);
    if (i + 1 < n) {
      e.push_back({p + "downsamplers.0.conv.weight", {ch[i], ch[i], 3, 3}});
      e.push_back({p + "downsamplers.0.conv.bias", {ch[i]}});
    }
  }
  for (int r = 0; r < 2; ++r) resnet("encoder.mid_block.resnets." + std::to_string(r) + ".", ch[n - 1], ch[n - 1], false);
  norm("encoder.norm_out", ch[n - 1]);
  conv3("encoder.conv_out.conv", ch[n - 1], 2 * latent, 3);
  // Decoder.
  conv3("decoder.conv_in.conv", latent, ch[n - 1], 3);
  for (int r = 0; r < 2; ++r) resnet("decoder.mid_block.resnets." + std::to_string(r) + ".", ch[n - 1], ch[n - 1], true);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string p = "decoder.up_blocks." + std::to_string(i) + ".";
    const std::int64_t out = ch[n - 1 - i], in = ch[i == 0 ? n - 1 : n - i];
    for (std::int64_t r = 0; r < config_.layers_per_block + 1; ++r)
      resnet(p + "resnets." + std::to_string(r) + ".", r == 0 ? in : out, out, true);
    if (i + 1 < n) {
      e.push_back({p + "upsamplers.0.conv.weight", {out, out, 3, 3}});
      e.push_back({p + "upsamplers.0.conv.bias", {out}});
    }
  }
  conv3("decoder.norm_out.conv_b.conv", latent, ch[0], 1);
  conv3("decoder.norm_out.conv_y.conv", latent, ch[0], 1);
  norm("decoder.norm_out.norm_layer", ch[0]);
  conv3("decoder.conv_out.conv", ch[0], config_.out_channels, 3);
  return e;
}

void Vae::load(const weights::Checkpoint& checkpoint) {
  weights_.clear();
  for (auto& [name, tensor] : weights::match(checkpoint, expected(), "CogVideoX VAE"))
    weights_[name] = tensor.to(at::kFloat).clone();
}

void Vae::to(const std::string& device, at::ScalarType dtype) {
  for (auto& [name, tensor] : weights_) tensor = tensor.to(device, dtype);
}

const at::Tensor& Vae::w(const std::string& name) const { return weights_.at(name); }

at::Tensor Vae::causal_conv(const at::Tensor& x, const std::string& prefix, Cache& cache) const {
  const at::Tensor& weight = w(prefix + ".conv.weight");
  const std::int64_t k = weight.size(2), pad = (weight.size(3) - 1) / 2;
  at::Tensor input = x;
  if (k > 1) {
    // The frames before this chunk: the previous chunk's last k-1 inputs, or the first frame
    // repeated at the start of the clip.
    auto it = cache.find(prefix);
    at::Tensor before = it != cache.end() ? it->second : x.narrow(2, 0, 1).expand({-1, -1, k - 1, -1, -1});
    input = at::cat({before, x}, 2);
    cache[prefix] = input.narrow(2, input.size(2) - (k - 1), k - 1).clone();
  }
  return at::conv3d(input, weight, w(prefix + ".conv.bias"), 1, {0, pad, pad});
}

at::Tensor Vae::group_norm(const at::Tensor& x, const std::string& prefix, double eps) const {
  return at::group_norm(x, config_.norm_num_groups, w(prefix + ".weight"), w(prefix + ".bias"), eps);
}

at::Tensor Vae::spatial_norm(const at::Tensor& f, const at::Tensor& zq, const std::string& prefix, Cache& cache) const {
  // The latents, nearest-resized to the features' frames and size; with an odd number of frames
  // the first frame is resized on its own (it stands for one video frame, the others for four).
  at::Tensor z;
  const std::int64_t frames = f.size(2), h = f.size(3), wd = f.size(4);
  if (frames > 1 && frames % 2 == 1) {
    at::Tensor first = at::upsample_nearest3d(zq.narrow(2, 0, 1), {1, h, wd}, c10::nullopt, c10::nullopt, c10::nullopt);
    at::Tensor rest = at::upsample_nearest3d(zq.narrow(2, 1, zq.size(2) - 1), {frames - 1, h, wd}, c10::nullopt,
                                             c10::nullopt, c10::nullopt);
    z = at::cat({first, rest}, 2);
  } else {
    z = at::upsample_nearest3d(zq, {frames, h, wd}, c10::nullopt, c10::nullopt, c10::nullopt);
  }
  at::Tensor y = causal_conv(z, prefix + ".conv_y", cache), b = causal_conv(z, prefix + ".conv_b", cache);
  return group_norm(f, prefix + ".norm_layer", 1e-6) * y + b;
}

at::Tensor Vae::resnet(const at::Tensor& x, const std::string& prefix, const at::Tensor& zq, Cache& cache) const {
  auto norm = [&](const at::Tensor& t, const std::string& name) {
    return zq.defined() ? spatial_norm(t, zq, prefix + name, cache) : group_norm(t, prefix + name, config_.norm_eps);
  };
  at::Tensor h = causal_conv(at::silu(norm(x, "norm1")), prefix + "conv1", cache);
  h = causal_conv(at::silu(norm(h, "norm2")), prefix + "conv2", cache);
  at::Tensor shortcut = x;
  if (weights_.count(prefix + "conv_shortcut.weight"))
    shortcut = at::conv3d(x, w(prefix + "conv_shortcut.weight"), w(prefix + "conv_shortcut.bias"));
  return h + shortcut;
}

namespace {

// B x C x T x H x W -> (B T) x C x H x W and back, for the per-frame 2D convolutions.
at::Tensor frames_as_batch(const at::Tensor& x) {
  return x.permute({0, 2, 1, 3, 4}).reshape({x.size(0) * x.size(2), x.size(1), x.size(3), x.size(4)});
}
at::Tensor batch_as_frames(const at::Tensor& x, std::int64_t batch) {
  return x.reshape({batch, x.size(0) / batch, x.size(1), x.size(2), x.size(3)}).permute({0, 2, 1, 3, 4});
}

}  // namespace

at::Tensor Vae::downsample(const at::Tensor& input, const std::string& prefix, bool compress_time) const {
  at::Tensor x = input;
  if (compress_time) {
    // Average pairs of frames; with an odd count the first frame stays alone.
    const std::int64_t frames = x.size(2);
    if (frames % 2 == 1) {
      at::Tensor rest = x.narrow(2, 1, frames - 1);
      if (frames > 1) {
        rest = rest.unflatten(2, {(frames - 1) / 2, 2}).mean(3);
      }
      x = at::cat({x.narrow(2, 0, 1), rest}, 2);
    } else {
      x = x.unflatten(2, {frames / 2, 2}).mean(3);
    }
  }
  const std::int64_t batch = x.size(0);
  at::Tensor y = at::constant_pad_nd(frames_as_batch(x), {0, 1, 0, 1}, 0);
  return batch_as_frames(at::conv2d(y, w(prefix + ".conv.weight"), w(prefix + ".conv.bias"), 2), batch);
}

at::Tensor Vae::upsample(const at::Tensor& input, const std::string& prefix, bool compress_time) const {
  at::Tensor x = input;
  const std::int64_t frames = x.size(2), h = x.size(3), wd = x.size(4);
  auto double_space = [&](const at::Tensor& t) {
    return batch_as_frames(at::upsample_nearest2d(frames_as_batch(t), {2 * h, 2 * wd}, c10::nullopt, c10::nullopt),
                           t.size(0));
  };
  if (compress_time && frames > 1) {
    // Double time too; with an odd count the first frame is not doubled.
    auto double_all = [&](const at::Tensor& t) {
      return at::upsample_nearest3d(t, {2 * t.size(2), 2 * h, 2 * wd}, c10::nullopt, c10::nullopt, c10::nullopt);
    };
    x = frames % 2 == 1 ? at::cat({double_space(x.narrow(2, 0, 1)), double_all(x.narrow(2, 1, frames - 1))}, 2)
                        : double_all(x);
  } else {
    x = double_space(x);
  }
  return batch_as_frames(at::conv2d(frames_as_batch(x), w(prefix + ".conv.weight"), w(prefix + ".conv.bias"), 1, 1),
                         x.size(0));
}

at::Tensor Vae::run_encoder(const at::Tensor& x, Cache& cache) const {
  const std::size_t n = config_.block_out_channels.size();
  at::Tensor h = causal_conv(x, "encoder.conv_in", cache);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string p = "encoder.down_blocks." + std::to_string(i) + ".";
    for (std::int64_t r = 0; r < config_.layers_per_block; ++r) h = resnet(h, p + "resnets." + std::to_string(r) + ".", {}, cache);
    if (i + 1 < n) h = downsample(h, p + "downsamplers.0", static_cast<int>(i) < config_.time_levels());
  }
  for (int r = 0; r < 2; ++r) h = resnet(h, "encoder.mid_block.resnets." + std::to_string(r) + ".", {}, cache);
  h = at::silu(group_norm(h, "encoder.norm_out", 1e-6));
  return causal_conv(h, "encoder.conv_out", cache);
}

at::Tensor Vae::run_decoder(const at::Tensor& z, Cache& cache) const {
  const std::size_t n = config_.block_out_channels.size();
  at::Tensor h = causal_conv(z, "decoder.conv_in", cache);
  for (int r = 0; r < 2; ++r) h = resnet(h, "decoder.mid_block.resnets." + std::to_string(r) + ".", z, cache);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string p = "decoder.up_blocks." + std::to_string(i) + ".";
    for (std::int64_t r = 0; r < config_.layers_per_block + 1; ++r) h = resnet(h, p + "resnets." + std::to_string(r) + ".", z, cache);
    if (i + 1 < n) h = upsample(h, p + "upsamplers.0", static_cast<int>(i) < config_.time_levels());
  }
  h = at::silu(spatial_norm(h, z, "decoder.norm_out", cache));
  return causal_conv(h, "decoder.conv_out", cache);
}

namespace {

// The temporal chunks of diffusers' CogVideoX VAE: `size` frames each, the first chunk also
// taking the remainder; one chunk when there are fewer than `size` frames.
std::vector<std::pair<std::int64_t, std::int64_t>> chunks(std::int64_t frames, std::int64_t size) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  const std::int64_t count = std::max<std::int64_t>(frames / size, 1), rest = frames % size;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t start = size * i + (i == 0 ? 0 : rest), end = std::min(size * (i + 1) + rest, frames);
    out.emplace_back(start, end - start);
  }
  return out;
}

}  // namespace

at::Tensor Vae::encode(const at::Tensor& video) const {
  Cache cache;
  std::vector<at::Tensor> parts;
  for (auto [start, length] : chunks(video.size(2), 8)) parts.push_back(run_encoder(video.narrow(2, start, length), cache));
  return at::cat(parts, 2);
}

at::Tensor Vae::decode(const at::Tensor& latents, const std::function<void(const at::Tensor&)>& on_chunk,
                       const VaeTiling& tiling) const {
  VaeDecoding decoding(*this, latents, tiling);
  std::vector<at::Tensor> parts;
  while (!decoding.done()) {
    at::Tensor frames = decoding.next();
    if (on_chunk)
      on_chunk(frames);
    else
      parts.push_back(std::move(frames));
  }
  return parts.empty() ? at::Tensor() : at::cat(parts, 2);
}

VaeDecoding::VaeDecoding(const Vae& vae, at::Tensor latents, VaeTiling tiling)
    : vae_(vae), latents_(std::move(latents)), chunks_(chunks(latents_.size(2), 2)) {
  retile(tiling);
}

void VaeDecoding::retile(VaeTiling tiling) {
  const std::int64_t factor = vae_.config().spatial_factor();
  tiling_ = tiling;
  tiled_ = tiling.enabled() && (latents_.size(3) > tiling.sample_height / factor ||
                                latents_.size(4) > tiling.sample_width / factor);
  cache_.clear();
  tile_caches_.clear();
  cached_ = 0;
}

at::Tensor VaeDecoding::decode_chunk(std::size_t index) {
  auto [start, length] = chunks_[index];
  at::Tensor chunk = latents_.narrow(2, start, length);
  return tiled_ ? vae_.decode_tiled(chunk, tiling_, tile_caches_) : vae_.run_decoder(chunk, cache_);
}

at::Tensor VaeDecoding::next() {
  if (done()) return {};
  // After a retile, or a failure part way through a chunk (which leaves the caches ahead of it),
  // rebuild the caches from the start.
  if (cached_ != next_) {
    cache_.clear();
    tile_caches_.clear();
    cached_ = 0;
  }
  while (cached_ < next_) {
    std::size_t index = cached_;
    cached_ = index + chunks_.size();  // poisoned until the chunk has been decoded whole
    decode_chunk(index);
    cached_ = index + 1;
  }
  cached_ = next_ + chunks_.size();
  at::Tensor frames = decode_chunk(next_);
  cached_ = ++next_;
  return frames;
}

at::Tensor Vae::decode_tiled(const at::Tensor& z, const VaeTiling& tiling, std::vector<Cache>& caches) const {
  const std::int64_t factor = config_.spatial_factor();
  const std::int64_t tile_h = tiling.sample_height / factor, tile_w = tiling.sample_width / factor;
  const std::int64_t stride_h = std::max<std::int64_t>(1, static_cast<std::int64_t>(tile_h * (1 - tiling.overlap_height)));
  const std::int64_t stride_w = std::max<std::int64_t>(1, static_cast<std::int64_t>(tile_w * (1 - tiling.overlap_width)));
  // The overlap in output pixels is blended, the rest kept. diffusers computes the blend from the
  // overlap factor in pixels, which equals this when the tile is a multiple of 6 (5) latents as at
  // its defaults (30 x 45 latents: blend 40 x 72, keep 200 x 288) and otherwise misaligns the
  // tiles; this keeps them aligned for every size.
  const std::int64_t blend_h = (tile_h - stride_h) * factor, blend_w = (tile_w - stride_w) * factor;
  const std::int64_t keep_h = stride_h * factor, keep_w = stride_w * factor;
  const std::int64_t height = z.size(3), width = z.size(4);
  std::vector<std::vector<at::Tensor>> rows;
  std::size_t index = 0;
  for (std::int64_t i = 0; i < height; i += stride_h) {
    rows.emplace_back();
    for (std::int64_t j = 0; j < width; j += stride_w, ++index) {
      if (caches.size() <= index) caches.resize(index + 1);
      at::Tensor tile = z.narrow(3, i, std::min(tile_h, height - i)).narrow(4, j, std::min(tile_w, width - j));
      rows.back().push_back(run_decoder(tile, caches[index]));
    }
  }
  // Blend each tile into the one above and the one to its left, in place and in this order, as
  // diffusers does (a tile is blended with neighbours that were already blended themselves).
  std::vector<at::Tensor> out_rows;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::vector<at::Tensor> out_row;
    for (std::size_t c = 0; c < rows[r].size(); ++c) {
      at::Tensor& tile = rows[r][c];
      if (r > 0) {
        const at::Tensor& above = rows[r - 1][c];
        const std::int64_t extent = std::min({above.size(3), tile.size(3), blend_h});
        for (std::int64_t y = 0; y < extent; ++y)
          tile.select(3, y).copy_(above.select(3, above.size(3) - extent + y) * (1 - static_cast<double>(y) / extent) +
                                  tile.select(3, y) * (static_cast<double>(y) / extent));
      }
      if (c > 0) {
        const at::Tensor& left = rows[r][c - 1];
        const std::int64_t extent = std::min({left.size(4), tile.size(4), blend_w});
        for (std::int64_t x = 0; x < extent; ++x)
          tile.select(4, x).copy_(left.select(4, left.size(4) - extent + x) * (1 - static_cast<double>(x) / extent) +
                                  tile.select(4, x) * (static_cast<double>(x) / extent));
      }
      out_row.push_back(tile.narrow(3, 0, std::min(keep_h, tile.size(3))).narrow(4, 0, std::min(keep_w, tile.size(4))));
    }
    out_rows.push_back(at::cat(out_row, 4));
  }
  return at::cat(out_rows, 3);
}

}  // namespace reel::cogvideox
