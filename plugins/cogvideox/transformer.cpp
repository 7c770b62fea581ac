#include "transformer.h"

#include <reel/error.h>

#include <ATen/ATen.h>

#include <algorithm>

#include <cmath>

namespace reel::cogvideox {

TransformerConfig TransformerConfig::from(const Config& config) {
  TransformerConfig c;
  c.heads = config.integer("num_attention_heads", 30);
  c.head_dim = config.integer("attention_head_dim", 64);
  c.in_channels = config.integer("in_channels", 16);
  c.out_channels = config.integer("out_channels", 16);
  c.layers = config.integer("num_layers", 30);
  c.time_embed_dim = config.integer("time_embed_dim", 512);
  c.text_embed_dim = config.integer("text_embed_dim", 4096);
  c.patch = config.integer("patch_size", 2);
  c.max_text_length = config.integer("max_text_seq_length", 226);
  c.sample_width = config.integer("sample_width", 90);
  c.sample_height = config.integer("sample_height", 60);
  c.sample_frames = config.integer("sample_frames", 49);
  c.temporal_compression = config.integer("temporal_compression_ratio", 4);
  c.norm_eps = config.number("norm_eps", 1e-5);
  c.spatial_interpolation = config.number("spatial_interpolation_scale", 1.875);
  c.temporal_interpolation = config.number("temporal_interpolation_scale", 1.0);
  c.attention_bias = config.boolean("attention_bias", true);
  c.rotary = config.boolean("use_rotary_positional_embeddings", false);
  c.learned_positions = config.boolean("use_learned_positional_embeddings", false);
  c.flip_sin_to_cos = config.boolean("flip_sin_to_cos", true);
  c.freq_shift = config.integer("freq_shift", 0);
  config.choice("activation_fn", {"gelu-approximate"}, "gelu-approximate");
  config.choice("timestep_activation_fn", {"silu"}, "silu");
  auto refuse = [&](const std::string& what) {
    throw BadInputError("config " + config.file().string() + ": " + what);
  };
  c.patch_t = config.integer("patch_size_t", 0);
  c.ofs_dim = config.integer("ofs_embed_dim", 0);
  config.require("norm_elementwise_affine", true);
  // 1.0's convolution honours patch_bias; 1.5's linear patch embedding has a bias whatever it says.
  if (!c.patch_t) config.require("patch_bias", true);
  if (!c.rotary && c.learned_positions)
    refuse("learned position embeddings without rotary ones: no CogVideoX model has that layout");
  if (c.patch_t && (!c.rotary || c.learned_positions))
    refuse("temporal patches (patch_size_t) without rotary embeddings, or with a learned table: no CogVideoX model has that layout");
  if (c.patch_t < 0 || c.ofs_dim < 0 || c.ofs_dim % 2) refuse("'patch_size_t' or 'ofs_embed_dim' is out of range");
  if (c.ofs_dim && c.ofs_dim != c.time_embed_dim)
    refuse("'ofs_embed_dim' " + std::to_string(c.ofs_dim) + " differs from 'time_embed_dim' " +
           std::to_string(c.time_embed_dim) + ": the two embeddings are added");
  if (c.heads < 1 || c.head_dim < 2 || c.head_dim % 2 || c.layers < 1 || c.patch < 1 || c.time_embed_dim < 1)
    refuse("the attention, layer or patch sizes are out of range");
  return c;
}

Transformer::Transformer(TransformerConfig config) : config_(config) {}

std::int64_t attention_query_chunk(std::int64_t batch, std::int64_t heads, std::int64_t tokens, std::int64_t element_size) {
  const std::int64_t row = std::max<std::int64_t>(1, batch * heads * tokens * element_size);
  return std::clamp<std::int64_t>(kAttentionScoreBytes / row, 1, tokens);
}

namespace {

// softmax(q k^T / sqrt(d)) v for B x heads x L x d, in query chunks so that the score matrix
// (B x heads x chunk x L) stays within kAttentionScoreBytes: a 5b model at 720x480x49 has 17776
// tokens, whose whole score matrix would take 61 GB in bf16. Each query row is computed exactly
// as without chunks.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const double root = std::sqrt(static_cast<double>(q.size(-1)));
  const at::Tensor kt = k.transpose(-2, -1);
  const std::int64_t tokens = q.size(2);
  const std::int64_t chunk = attention_query_chunk(q.size(0), q.size(1), k.size(2), q.element_size());
  if (chunk >= tokens) return at::matmul(at::softmax(at::matmul(q, kt) / root, -1), v);
  at::Tensor out = at::empty(q.sizes(), q.options());
  for (std::int64_t start = 0; start < tokens; start += chunk) {
    const std::int64_t n = std::min(chunk, tokens - start);
    out.narrow(2, start, n).copy_(at::matmul(at::softmax(at::matmul(q.narrow(2, start, n), kt) / root, -1), v));
  }
  return out;
}

}  // namespace

void TransformerConfig::check_size(std::int64_t height, std::int64_t width) const {
  const std::int64_t h = sample_height * 8, w = sample_width * 8;  // latents are 8x smaller (the VAE)
  if (patch_t && (height > h || width > w))
    throw InvalidParamError(height > h ? "height" : "width",
                            "this CogVideoX 1.5 transformer makes at most " + std::to_string(w) + "x" + std::to_string(h) +
                                " (its rotary grid), not " + std::to_string(width) + "x" + std::to_string(height));
  if (!learned_positions) return;
  if (height != h || width != w)
    throw InvalidParamError(height != h ? "height" : "width",
                            "this CogVideoX transformer has a learned position table for " + std::to_string(w) + "x" +
                                std::to_string(h) + " only, not " + std::to_string(width) + "x" + std::to_string(height),
                            "set width " + std::to_string(w) + " and height " + std::to_string(h));
}

weights::Expected Transformer::expected() const {
  const std::int64_t d = config_.inner(), t = config_.time_embed_dim, p = config_.patch;
  weights::Expected e;
  auto linear = [&](const std::string& name, std::int64_t out, std::int64_t in, bool bias = true) {
    e.push_back({name + ".weight", {out, in}});
    if (bias) e.push_back({name + ".bias", {out}});
  };
  auto norm = [&](const std::string& name, std::int64_t n) {
    e.push_back({name + ".weight", {n}});
    e.push_back({name + ".bias", {n}});
  };
  if (config_.patch_t)
    e.push_back({"patch_embed.proj.weight", {d, config_.in_channels * p * p * config_.patch_t}});
  else
    e.push_back({"patch_embed.proj.weight", {d, config_.in_channels, p, p}});
  e.push_back({"patch_embed.proj.bias", {d}});
  linear("patch_embed.text_proj", d, config_.text_embed_dim);
  if (config_.learned_positions) {
    const std::int64_t frames = (config_.sample_frames - 1) / config_.temporal_compression + 1;
    e.push_back({"patch_embed.pos_embedding",
                 {1, config_.max_text_length + frames * (config_.sample_height / p) * (config_.sample_width / p), d}});
  }
  linear("time_embedding.linear_1", t, d);
  linear("time_embedding.linear_2", t, t);
  if (config_.ofs_dim) {
    linear("ofs_embedding.linear_1", config_.ofs_dim, config_.ofs_dim);
    linear("ofs_embedding.linear_2", config_.ofs_dim, config_.ofs_dim);
  }
  for (std::int64_t i = 0; i < config_.layers; ++i) {
    const std::string b = "transformer_blocks." + std::to_string(i) + ".";
    for (const char* n : {"norm1", "norm2"}) {
      linear(b + n + ".linear", 6 * d, t);
      norm(b + n + ".norm", d);
    }
    for (const char* q : {"to_q", "to_k", "to_v"}) linear(b + "attn1." + q, d, d, config_.attention_bias);
    norm(b + "attn1.norm_q", config_.head_dim);
    norm(b + "attn1.norm_k", config_.head_dim);
    linear(b + "attn1.to_out.0", d, d);
    linear(b + "ff.net.0.proj", 4 * d, d);
    linear(b + "ff.net.2", d, 4 * d);
  }
  norm("norm_final", d);
  linear("norm_out.linear", 2 * d, t);
  norm("norm_out.norm", d);
  linear("proj_out", p * p * std::max<std::int64_t>(1, config_.patch_t) * config_.out_channels, d);
  return e;
}

void Transformer::load(const weights::Checkpoint& checkpoint) {
  weights_.clear();
  for (auto& [name, tensor] : weights::match(checkpoint, expected(), "CogVideoX transformer"))
    weights_[name] = tensor.to(at::kFloat).clone();
}

void Transformer::to(const std::string& device, at::ScalarType dtype) {
  for (auto& [name, tensor] : weights_) tensor = tensor.to(device, dtype);
}

at::Tensor Transformer::linear(const at::Tensor& x, const std::string& prefix) const {
  auto bias = weights_.find(prefix + ".bias");
  return at::linear(x, w(prefix + ".weight"), bias == weights_.end() ? at::Tensor() : bias->second);
}

at::Tensor Transformer::layer_norm(const at::Tensor& x, const std::string& prefix, double eps) const {
  return at::layer_norm(x, {x.size(-1)}, w(prefix + ".weight"), w(prefix + ".bias"), eps);
}

namespace {

// Sinusoidal timestep features: exp(-ln(10000) i / (half - shift)) frequencies, sin then cos,
// swapped to cos then sin when flip_sin_to_cos.
at::Tensor timestep_features(const at::Tensor& timesteps, std::int64_t dim, bool flip, std::int64_t shift) {
  const std::int64_t half = dim / 2;
  at::Tensor exponent = at::arange(half, timesteps.options().dtype(at::kFloat)) * (-std::log(10000.0));
  at::Tensor frequencies = at::exp(exponent / static_cast<double>(half - shift));
  at::Tensor angles = timesteps.to(at::kFloat).unsqueeze(1) * frequencies.unsqueeze(0);
  at::Tensor features = flip ? at::cat({at::cos(angles), at::sin(angles)}, -1) : at::cat({at::sin(angles), at::cos(angles)}, -1);
  if (dim % 2) features = at::constant_pad_nd(features, {0, 1}, 0);
  return features;
}

// Rotary embedding on pairs of channels (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin), in fp32.
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  at::Tensor pairs = x.reshape({x.size(0), x.size(1), x.size(2), -1, 2});
  at::Tensor rotated = at::stack({-pairs.select(-1, 1), pairs.select(-1, 0)}, -1).flatten(3);
  return (x.to(at::kFloat) * cos + rotated.to(at::kFloat) * sin).to(x.scalar_type());
}

}  // namespace

namespace {

// cos and sin of pos x theta^(-2i/dim), each frequency repeated for its pair of channels: S x dim.
std::pair<at::Tensor, at::Tensor> rotary_1d(std::int64_t dim, const at::Tensor& positions) {
  at::Tensor exponents = at::arange(0, dim, 2, positions.options()) / static_cast<double>(dim);
  at::Tensor frequencies = at::reciprocal(at::pow(10000.0, exponents));
  at::Tensor angles = at::outer(positions, frequencies);
  return {angles.cos().repeat_interleave(2, 1), angles.sin().repeat_interleave(2, 1)};
}

// sin and cos of pos x 10000^(-i/(dim/2)), in float64 as the reference: M x dim.
at::Tensor sincos_1d(std::int64_t dim, const at::Tensor& positions) {
  at::Tensor omega = at::arange(dim / 2, positions.options().dtype(at::kDouble)) / (dim / 2.0);
  omega = at::reciprocal(at::pow(10000.0, omega));
  at::Tensor angles = at::outer(positions.reshape({-1}).to(at::kDouble), omega);
  return at::cat({angles.sin(), angles.cos()}, 1);
}

}  // namespace

std::pair<at::Tensor, at::Tensor> Transformer::rotary_tables(std::int64_t frames, std::int64_t height,
                                                            std::int64_t width) const {
  const std::int64_t p = config_.patch, grid_h = height / p, grid_w = width / p;
  const double base_w = static_cast<double>(config_.sample_width / p), base_h = static_cast<double>(config_.sample_height / p);
  const auto options = at::TensorOptions().dtype(at::kFloat);
  at::Tensor ys, xs, ts;
  if (config_.patch_t) {
    // 1.5: integer positions, the first grid_h x grid_w of the sample grid; time in patch slots.
    config_.check_size(height * 8, width * 8);
    frames = (frames + config_.patch_t - 1) / config_.patch_t;
    ys = at::arange(grid_h, options), xs = at::arange(grid_w, options), ts = at::arange(frames, options);
    return rotary_grid(frames, grid_h, grid_w, ts, ys, xs);
  }
  // Fit the grid into the sample grid keeping its aspect, centred (Python's round: half to even).
  double top = 0, left = 0, bottom = 0, right = 0;
  if (static_cast<double>(grid_h) / grid_w > base_h / base_w) {
    const double resized_w = std::nearbyint(base_h / grid_h * grid_w);
    top = std::nearbyint((base_h - base_h) / 2.0), left = std::nearbyint((base_w - resized_w) / 2.0);
    bottom = top + base_h, right = left + resized_w;
  } else {
    const double resized_h = std::nearbyint(base_w / grid_w * grid_h);
    top = std::nearbyint((base_h - resized_h) / 2.0), left = std::nearbyint((base_w - base_w) / 2.0);
    bottom = top + resized_h, right = left + base_w;
  }
  ys = at::linspace(top, bottom * (grid_h - 1) / grid_h, grid_h, options);
  xs = at::linspace(left, right * (grid_w - 1) / grid_w, grid_w, options);
  ts = at::linspace(0, static_cast<double>(frames) * (frames - 1) / frames, frames, options);
  return rotary_grid(frames, grid_h, grid_w, ts, ys, xs);
}

// cos and sin of every (t, y, x) position: the head dimension split [t: D/4 | y: 3D/8 | x: 3D/8].
std::pair<at::Tensor, at::Tensor> Transformer::rotary_grid(std::int64_t frames, std::int64_t grid_h, std::int64_t grid_w,
                                                           const at::Tensor& ts, const at::Tensor& ys,
                                                           const at::Tensor& xs) const {
  const std::int64_t d = config_.head_dim, dim_t = d / 4, dim_hw = d / 8 * 3;
  auto [t_cos, t_sin] = rotary_1d(dim_t, ts);
  auto [h_cos, h_sin] = rotary_1d(dim_hw, ys);
  auto [w_cos, w_sin] = rotary_1d(dim_hw, xs);
  auto combine = [&](const at::Tensor& t, const at::Tensor& h, const at::Tensor& w) {
    return at::cat({t.view({frames, 1, 1, -1}).expand({frames, grid_h, grid_w, -1}),
                    h.view({1, grid_h, 1, -1}).expand({frames, grid_h, grid_w, -1}),
                    w.view({1, 1, grid_w, -1}).expand({frames, grid_h, grid_w, -1})},
                   -1)
        .reshape({frames * grid_h * grid_w, -1});
  };
  return {combine(t_cos, h_cos, w_cos), combine(t_sin, h_sin, w_sin)};
}

at::Tensor Transformer::sincos_positions(std::int64_t frames, std::int64_t height, std::int64_t width) const {
  const std::int64_t p = config_.patch, grid_h = height / p, grid_w = width / p, d = config_.inner();
  const auto options = at::TensorOptions().dtype(at::kFloat);
  // Spatial: 3/4 of the channels, half for the column and half for the row coordinate.
  at::Tensor xs = (at::arange(grid_w, options) / config_.spatial_interpolation).view({1, grid_w}).expand({grid_h, grid_w});
  at::Tensor ys = (at::arange(grid_h, options) / config_.spatial_interpolation).view({grid_h, 1}).expand({grid_h, grid_w});
  const std::int64_t spatial = 3 * d / 4, temporal = d / 4;
  at::Tensor space = at::cat({sincos_1d(spatial / 2, xs), sincos_1d(spatial / 2, ys)}, 1);  // (h w) x 3d/4
  at::Tensor time = sincos_1d(temporal, at::arange(frames, options) / config_.temporal_interpolation);  // F x d/4
  at::Tensor table = at::cat({time.view({frames, 1, temporal}).expand({frames, grid_h * grid_w, temporal}),
                              space.view({1, grid_h * grid_w, spatial}).expand({frames, grid_h * grid_w, spatial})},
                             -1)
                         .reshape({frames * grid_h * grid_w, d});
  return at::cat({at::zeros({config_.max_text_length, d}, table.options()), table}, 0).unsqueeze(0).to(at::kFloat);
}

at::Tensor Transformer::forward(const at::Tensor& latents, const at::Tensor& text, const at::Tensor& timesteps,
                                at::Tensor rope_cos, at::Tensor rope_sin, double ofs) const {
  const std::int64_t batch = latents.size(0), frames = latents.size(1), channels = latents.size(2);
  const std::int64_t height = latents.size(3), width = latents.size(4), p = config_.patch, d = config_.inner();
  const std::int64_t text_length = text.size(1), heads = config_.heads, hd = config_.head_dim;

  // Timestep embedding.
  at::Tensor emb = timestep_features(timesteps, d, config_.flip_sin_to_cos, config_.freq_shift).to(latents.scalar_type());
  emb = linear(at::silu(linear(emb, "time_embedding.linear_1")), "time_embedding.linear_2");
  if (config_.ofs_dim) {
    at::Tensor o = at::full({1}, ofs, timesteps.options().dtype(at::kFloat));
    o = timestep_features(o, config_.ofs_dim, config_.flip_sin_to_cos, config_.freq_shift).to(latents.scalar_type());
    emb = emb + linear(at::silu(linear(o, "ofs_embedding.linear_1")), "ofs_embedding.linear_2");
  }

  // Patches and text to tokens.
  at::Tensor image;
  const std::int64_t pt = config_.patch_t;
  if (pt) {
    // 1.5: pt x p x p patches flattened (channels fastest) into a linear layer.
    if (frames % pt)
      throw BadInputError("this CogVideoX 1.5 transformer takes latent frames in pairs; got " + std::to_string(frames));
    image = latents.permute({0, 1, 3, 4, 2})
                .reshape({batch, frames / pt, pt, height / p, p, width / p, p, channels})
                .permute({0, 1, 3, 5, 7, 2, 4, 6})
                .flatten(4, 7)
                .flatten(1, 3);
    image = at::linear(image, w("patch_embed.proj.weight"), w("patch_embed.proj.bias"));
  } else {
    image = at::conv2d(latents.reshape({-1, channels, height, width}), w("patch_embed.proj.weight"),
                       w("patch_embed.proj.bias"), p);
    image = image.view({batch, frames, d, -1}).transpose(2, 3).flatten(1, 2);  // B x (F h w) x d
  }
  at::Tensor tokens = at::cat({linear(text, "patch_embed.text_proj"), image}, 1);
  // The learned table (5b-I2V) is trained for the sample size only: another frame count gets the
  // sin-cos table instead, as the reference does; another resolution it refuses (so does check_size).
  const bool learned_fits = config_.learned_positions &&
                            (frames - 1) * config_.temporal_compression + 1 == config_.sample_frames;
  config_.check_size(height * 8, width * 8);
  if (learned_fits) {
    const at::Tensor& table = w("patch_embed.pos_embedding");
    tokens = tokens + table.narrow(1, 0, tokens.size(1)).to(tokens.scalar_type());
  } else if (!config_.rotary || config_.learned_positions) {
    at::Tensor table = sincos_positions(frames, height, width);
    if (table.size(1) != tokens.size(1))
      throw BadInputError("the prompt has " + std::to_string(text_length) + " tokens; this CogVideoX transformer takes " +
                          std::to_string(config_.max_text_length));
    tokens = tokens + table.to(tokens.device(), tokens.scalar_type());
  }
  at::Tensor enc = tokens.narrow(1, 0, text_length), hidden = tokens.narrow(1, text_length, tokens.size(1) - text_length);
  at::Tensor cos, sin;
  if (config_.rotary) {
    if (!rope_cos.defined()) std::tie(rope_cos, rope_sin) = rotary_tables(frames, height, width);
    cos = rope_cos.to(latents.device(), at::kFloat).view({1, 1, rope_cos.size(0), rope_cos.size(1)});
    sin = rope_sin.to(latents.device(), at::kFloat).view({1, 1, rope_sin.size(0), rope_sin.size(1)});
  }

  for (std::int64_t i = 0; i < config_.layers; ++i) {
    const std::string b = "transformer_blocks." + std::to_string(i) + ".";
    // Adaptive LayerNorm: shift, scale, gate for the video and the text tokens from the timestep.
    auto modulate = [&](const std::string& norm) {
      auto parts = linear(at::silu(emb), b + norm + ".linear").unsqueeze(1).chunk(6, -1);
      at::Tensor h = layer_norm(hidden, b + norm + ".norm", config_.norm_eps) * (1 + parts[1]) + parts[0];
      at::Tensor e = layer_norm(enc, b + norm + ".norm", config_.norm_eps) * (1 + parts[4]) + parts[3];
      return std::tuple{h, e, parts[2], parts[5]};
    };
    auto [h, e, gate, enc_gate] = modulate("norm1");
    at::Tensor joint = at::cat({e, h}, 1);
    auto project = [&](const char* name, const char* norm) {
      at::Tensor x = linear(joint, b + "attn1." + name).view({batch, -1, heads, hd}).transpose(1, 2);
      if (!norm) return x;
      return at::layer_norm(x, {hd}, w(b + "attn1." + norm + ".weight"), w(b + "attn1." + norm + ".bias"), 1e-6);
    };
    at::Tensor q = project("to_q", "norm_q"), k = project("to_k", "norm_k"), v = project("to_v", nullptr);
    const std::int64_t video = q.size(2) - text_length;
    if (config_.rotary) {
      q = at::cat({q.narrow(2, 0, text_length), rotate(q.narrow(2, text_length, video), cos, sin)}, 2);
      k = at::cat({k.narrow(2, 0, text_length), rotate(k.narrow(2, text_length, video), cos, sin)}, 2);
    }
    at::Tensor attended = attention(q, k, v).transpose(1, 2).reshape({batch, -1, d});
    attended = linear(attended, b + "attn1.to_out.0");
    hidden = hidden + gate * attended.narrow(1, text_length, video);
    enc = enc + enc_gate * attended.narrow(1, 0, text_length);

    auto [h2, e2, gate2, enc_gate2] = modulate("norm2");
    at::Tensor ff = linear(at::gelu(linear(at::cat({e2, h2}, 1), b + "ff.net.0.proj"), "tanh"), b + "ff.net.2");
    hidden = hidden + gate2 * ff.narrow(1, text_length, video);
    enc = enc + enc_gate2 * ff.narrow(1, 0, text_length);
  }

  hidden = layer_norm(hidden, "norm_final", config_.norm_eps);
  auto shift_scale = linear(at::silu(emb), "norm_out.linear").unsqueeze(1).chunk(2, -1);  // shift, then scale
  hidden = layer_norm(hidden, "norm_out.norm", config_.norm_eps) * (1 + shift_scale[1]) + shift_scale[0];
  hidden = linear(hidden, "proj_out");
  // Patches back to latents: B x F x h x w x C x p x p -> B x F x C x H x W.
  if (pt) {
    at::Tensor out = hidden.reshape({batch, frames / pt, height / p, width / p, -1, pt, p, p});
    return out.permute({0, 1, 5, 4, 2, 6, 3, 7}).flatten(6, 7).flatten(4, 5).flatten(1, 2);
  }
  at::Tensor out = hidden.reshape({batch, frames, height / p, width / p, -1, p, p});
  return out.permute({0, 1, 4, 2, 5, 3, 6}).flatten(5, 6).flatten(3, 4);
}

}  // namespace reel::cogvideox
