#include "t5.h"

#include <reel/error.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <set>

namespace reel::cogvideox {

T5Config T5Config::from(const Config& config) {
  config.require("model_type", "t5");
  config.require("feed_forward_proj", "gated-gelu", true);
  config.require("is_gated_act", true);
  config.choice("dense_act_fn", {"gelu_new", "gelu_pytorch_tanh"}, "gelu_new");
  T5Config c;
  c.vocab_size = config.integer("vocab_size");
  c.d_model = config.integer("d_model");
  c.d_kv = config.integer("d_kv");
  c.d_ff = config.integer("d_ff");
  c.num_heads = config.integer("num_heads");
  c.num_layers = config.integer("num_layers");
  c.buckets = config.integer("relative_attention_num_buckets", 32);
  c.max_distance = config.integer("relative_attention_max_distance", 128);
  c.eps = config.number("layer_norm_epsilon", 1e-6);
  auto positive = [&](const char* key, std::int64_t v, std::int64_t limit) {
    if (v < 1 || v > limit)
      throw BadInputError("config " + config.file().string() + ": '" + key + "' is " + std::to_string(v) +
                          ", outside 1.." + std::to_string(limit));
  };
  positive("vocab_size", c.vocab_size, 1 << 20);
  positive("d_model", c.d_model, 1 << 16);
  positive("d_kv", c.d_kv, 1 << 12);
  positive("d_ff", c.d_ff, 1 << 18);
  positive("num_heads", c.num_heads, 1 << 10);
  positive("num_layers", c.num_layers, 1 << 10);
  positive("relative_attention_num_buckets", c.buckets, 1 << 12);
  positive("relative_attention_max_distance", c.max_distance, 1 << 20);
  if (c.buckets < 4 || c.max_distance * 2 <= c.buckets / 2)
    throw BadInputError("config " + config.file().string() + ": " + std::to_string(c.buckets) + " buckets up to distance " +
                        std::to_string(c.max_distance) + " leave no logarithmic buckets");
  return c;
}

std::uint64_t T5Config::parameter_count() const {
  const std::uint64_t inner = static_cast<std::uint64_t>(num_heads) * d_kv;
  const std::uint64_t per_layer = 4 * inner * d_model + 3 * static_cast<std::uint64_t>(d_ff) * d_model + 2 * d_model;
  return vocab_size * d_model + num_layers * per_layer + buckets * num_heads + d_model;
}

T5Encoder::T5Encoder(T5Config config) : config_(config) {}

weights::Expected T5Encoder::expected() const {
  const std::int64_t inner = config_.num_heads * config_.d_kv, d = config_.d_model;
  weights::Expected e{{"shared.weight", {config_.vocab_size, d}}};
  for (std::int64_t i = 0; i < config_.num_layers; ++i) {
    const std::string block = "encoder.block." + std::to_string(i) + ".";
    for (const char* p : {"q", "k", "v"}) e.push_back({block + "layer.0.SelfAttention." + p + ".weight", {inner, d}});
    e.push_back({block + "layer.0.SelfAttention.o.weight", {d, inner}});
    if (i == 0)
      e.push_back({block + "layer.0.SelfAttention.relative_attention_bias.weight", {config_.buckets, config_.num_heads}});
    e.push_back({block + "layer.0.layer_norm.weight", {d}});
    e.push_back({block + "layer.1.DenseReluDense.wi_0.weight", {config_.d_ff, d}});
    e.push_back({block + "layer.1.DenseReluDense.wi_1.weight", {config_.d_ff, d}});
    e.push_back({block + "layer.1.DenseReluDense.wo.weight", {d, config_.d_ff}});
    e.push_back({block + "layer.1.layer_norm.weight", {d}});
  }
  e.push_back({"encoder.final_layer_norm.weight", {d}});
  return e;
}

void T5Encoder::load(const weights::Checkpoint& checkpoint) {
  weights::Expected expected = this->expected();
  const auto names = weights::normalized_names(checkpoint);
  const std::set<std::string> present(names.begin(), names.end());
  // The embedding is tied: some writers store it twice. The copy is read and dropped.
  if (present.count("encoder.embed_tokens.weight") && present.count("shared.weight"))
    expected.push_back({"encoder.embed_tokens.weight", {config_.vocab_size, config_.d_model}});
  weights_.clear();
  for (auto& [name, tensor] : weights::match(checkpoint, expected, "T5 v1.1 encoder"))
    if (name != "encoder.embed_tokens.weight") weights_[name] = tensor.to(at::kFloat).clone();
}

void T5Encoder::to(const std::string& device, at::ScalarType dtype) {
  for (auto& [name, tensor] : weights_) {
    const bool keep_fp32 = dtype == at::kHalf && name.size() > 9 && name.compare(name.size() - 9, 9, "wo.weight") == 0;
    tensor = tensor.to(device, keep_fp32 ? at::kFloat : dtype);
  }
}

namespace {

// T5's layer norm: scale by the root mean square (no mean subtracted, no bias), computed in fp32.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor variance = x.to(at::kFloat).pow(2).mean(-1, true);
  at::Tensor normed = x.to(at::kFloat) * at::rsqrt(variance + eps);
  return weight * normed.to(weight.scalar_type());
}

// fp16 activations of T5 overflow; like transformers, keep them inside the finite range.
at::Tensor clamp_half(at::Tensor x) {
  if (x.scalar_type() != at::kHalf) return x;
  const double limit = 65504.0 - 1000.0;
  return x.clamp_(-limit, limit);
}

}  // namespace

at::Tensor T5Encoder::position_bias(std::int64_t length, const at::TensorOptions& options) const {
  // Bidirectional buckets: half for keys after the query, half before; within each half the first
  // max_exact distances get a bucket each, the rest share logarithmically spaced buckets up to
  // max_distance.
  const std::int64_t half = config_.buckets / 2, max_exact = half / 2;
  at::Tensor position = at::arange(length, at::TensorOptions().dtype(at::kLong));
  at::Tensor relative = position.unsqueeze(0) - position.unsqueeze(1);  // [query, key] = key - query
  at::Tensor bucket = (relative > 0).to(at::kLong) * half;
  at::Tensor distance = relative.abs();
  at::Tensor large = (at::log(distance.to(at::kFloat) / max_exact) /
                      std::log(static_cast<double>(config_.max_distance) / max_exact) * (half - max_exact))
                         .to(at::kLong)
                         .add_(max_exact)
                         .clamp_max_(half - 1);
  bucket += at::where(distance < max_exact, distance, large);
  at::Tensor table = weight("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  // [q, k, heads] -> [1, heads, q, k]
  return at::embedding(table, bucket.to(table.device())).permute({2, 0, 1}).unsqueeze(0).to(options);
}

at::Tensor T5Encoder::encode(const at::Tensor& ids) const {
  const at::Tensor& shared = weights_.at("shared.weight");
  const std::int64_t batch = ids.size(0), length = ids.size(1), heads = config_.num_heads, dk = config_.d_kv;
  at::Tensor x = at::embedding(shared, ids.to(shared.device()));
  const at::Tensor bias = position_bias(length, x.options());
  auto split = [&](const at::Tensor& t) { return t.view({batch, length, heads, dk}).transpose(1, 2); };
  for (std::int64_t i = 0; i < config_.num_layers; ++i) {
    const std::string block = "encoder.block." + std::to_string(i) + ".layer.";
    at::Tensor h = rms_norm(x, weight(block + "0.layer_norm.weight"), config_.eps);
    at::Tensor q = split(at::linear(h, weight(block + "0.SelfAttention.q.weight")));
    at::Tensor k = split(at::linear(h, weight(block + "0.SelfAttention.k.weight")));
    at::Tensor v = split(at::linear(h, weight(block + "0.SelfAttention.v.weight")));
    at::Tensor scores = at::matmul(q, k.transpose(2, 3)) + bias;  // T5 does not scale by 1/sqrt(d)
    at::Tensor attention = at::softmax(scores.to(at::kFloat), -1).to(scores.scalar_type());
    at::Tensor context = at::matmul(attention, v).transpose(1, 2).reshape({batch, length, heads * dk});
    x = clamp_half(x + at::linear(context, weight(block + "0.SelfAttention.o.weight")));

    h = rms_norm(x, weight(block + "1.layer_norm.weight"), config_.eps);
    at::Tensor gated = at::gelu(at::linear(h, weight(block + "1.DenseReluDense.wi_0.weight")), "tanh") *
                       at::linear(h, weight(block + "1.DenseReluDense.wi_1.weight"));
    const at::Tensor& wo = weight(block + "1.DenseReluDense.wo.weight");
    at::Tensor out = at::linear(gated.to(wo.scalar_type()), wo);
    x = clamp_half(x + clamp_half(out.to(x.scalar_type())));
  }
  return rms_norm(x, weight("encoder.final_layer_norm.weight"), config_.eps);
}

}  // namespace reel::cogvideox
