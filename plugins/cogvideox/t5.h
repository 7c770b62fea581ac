#pragma once
// The T5 v1.1 encoder (transformers' T5EncoderModel), as CogVideoX uses it for its prompts: token
// embeddings, then per layer RMS-normed self-attention with a bucketed relative position bias (made
// once, by layer 0, and shared), no 1/sqrt(d) scaling, and an RMS-normed gated-GELU (tanh) feed-
// forward; no biases anywhere; a final RMS norm. Keys as transformers saves them: `shared.weight`,
// `encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight`, ... `encoder.final_layer_norm.weight`.
#include "model_folder.h"

#include <reel/weights.h>

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace reel::cogvideox {

struct T5Config {
  std::int64_t vocab_size = 32128, d_model = 4096, d_kv = 64, d_ff = 10240, num_heads = 64, num_layers = 24;
  std::int64_t buckets = 32, max_distance = 128;
  double eps = 1e-6;

  // From text_encoder/config.json; refuses what is not T5 v1.1 (another feed-forward, model type).
  static T5Config from(const Config& config);
  std::uint64_t parameter_count() const;
};

class T5Encoder {
 public:
  explicit T5Encoder(T5Config config);

  const T5Config& config() const noexcept { return config_; }
  weights::Expected expected() const;
  // Copies the checkpoint's tensors in (mismatches named by weights::match). A checkpoint that
  // also stores the tied `encoder.embed_tokens.weight` beside `shared.weight` is accepted.
  void load(const weights::Checkpoint& checkpoint);
  // Moves the weights; in fp16 the feed-forward output projections (`wo`) stay in fp32, as
  // transformers keeps them, because their activations overflow fp16.
  void to(const std::string& device, at::ScalarType dtype);
  // ids: B x L int64 -> B x L x d_model, in the weights' dtype. No attention mask (CogVideoX
  // attends to the padding too).
  at::Tensor encode(const at::Tensor& ids) const;

 private:
  at::Tensor weight(const std::string& name) const { return weights_.at(name); }
  at::Tensor position_bias(std::int64_t length, const at::TensorOptions& options) const;

  T5Config config_;
  std::map<std::string, at::Tensor> weights_;
};

}  // namespace reel::cogvideox
