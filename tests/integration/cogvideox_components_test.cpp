// CogVideoX's components on the shared tiny models (diffusers folder layout, outputs of the
// reference implementation): the T5 tokenizer, the T5 v1.1 encoder, and the model folder's
// config and weight handling on folders the tests build themselves.
#include "model_folder.h"
#include "pipeline.h"
#include "t5.h"
#include "test_support.h"
#include "tokenizer.h"
#include "transformer.h"
#include "vae.h"

#include <reel/error.h>
#include <reel/runtime/memory.h>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <fstream>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace reel;
using namespace reel::cogvideox;

namespace {

#define REQUIRE_COGVIDEOX_REFERENCE() REEL_REQUIRE_SHARED("reference/cogvideox/models/tiny-cogvideox-5b/model_index.json")

fs::path reference(const std::string& relative) { return test::shared_dir() / "reference/cogvideox" / relative; }
// "5b" -> tiny-cogvideox-5b, "1.5-5b-i2v" -> tiny-cogvideox1.5-5b-i2v (as the folders are named).
std::string tiny_name(const std::string& variant) {
  return "tiny-cogvideox" + std::string(variant.rfind("1.5", 0) == 0 ? "" : "-") + variant;
}
fs::path tiny(const std::string& variant) { return reference("models/" + tiny_name(variant)); }

T5Encoder text_encoder(const ModelFolder& folder) {
  T5Encoder encoder(T5Config::from(folder.config("text_encoder")));
  encoder.load(folder.weights("text_encoder"));
  return encoder;
}

at::Tensor ids_tensor(const std::vector<std::int64_t>& ids) {
  return at::tensor(ids, at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
}

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>(); }

// A copy of a tiny model's text encoder and tokenizer that a test may edit.
fs::path copy_text_components(const std::string& variant) {
  fs::path dir = test::temp_dir("cogvideox-folder");
  fs::copy(tiny(variant) / "model_index.json", dir / "model_index.json");
  for (const char* component : {"text_encoder", "tokenizer"}) {
    fs::copy(tiny(variant) / component, dir / component, fs::copy_options::recursive);
    for (const auto& entry : fs::recursive_directory_iterator(dir / component))
      fs::permissions(entry.path(), fs::perms::owner_write, fs::perm_options::add);
  }
  return dir;
}

void edit_json(const fs::path& file, const std::function<void(json&)>& change) {
  json j = json::parse(std::ifstream(file));
  change(j);
  std::ofstream(file) << j.dump(2);
}

std::string failure_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return {};
}

}  // namespace

TEST(T5Tokenizer, GivesTheReferenceIdsForEveryCase) {
  REQUIRE_COGVIDEOX_REFERENCE();
  REEL_REQUIRE_SHARED("models/t5-tokenizer/spiece.model");
  json cases = json::parse(std::ifstream(reference("components/tokenizer_cases.json")));
  ASSERT_EQ(cases.size(), 6u);
  for (const fs::path& model : {test::shared_dir() / "models/t5-tokenizer/spiece.model", tiny("5b") / "tokenizer/spiece.model"}) {
    T5Tokenizer tokenizer(model);
    for (const json& c : cases) {
      SCOPED_TRACE(c["text"].get<std::string>().substr(0, 40));
      Tokens t = tokenizer.encode(c["text"].get<std::string>(), 226);
      EXPECT_EQ(t.ids, c["ids"].get<std::vector<std::int64_t>>());
      // Only the 400-token prompt is cut, to 225 pieces and </s>.
      const bool long_prompt = c["text"].get<std::string>().size() > 1000;
      EXPECT_EQ(t.cut > 0, long_prompt);
      if (long_prompt) {
        EXPECT_EQ(t.length, 226);
      }
    }
  }
}

TEST(T5Tokenizer, RefusesAFileThatIsNotAT5SentencePieceModel) {
  fs::path bogus = test::temp_dir("spiece") / "spiece.model";
  test::write_file(bogus, "not a model");
  EXPECT_NE(failure_of([&] { T5Tokenizer t(bogus); }).find("is not a SentencePiece model"), std::string::npos);
  EXPECT_NE(failure_of([&] { T5Tokenizer t(bogus.parent_path() / "absent.model"); }).find("does not exist"),
            std::string::npos);
}

TEST(T5Encoder, ReproducesTheReferenceHiddenStatesWithin1e4) {
  REQUIRE_COGVIDEOX_REFERENCE();
  c10::InferenceMode inference;
  ModelFolder folder = ModelFolder::open(tiny("5b"));  // weights stored as BF16
  T5Encoder encoder = text_encoder(folder);
  EXPECT_EQ(encoder.config().d_model, 8);
  at::Tensor ids = test::read_npy(reference("components/t5_input_ids.npy"));
  at::Tensor expected = test::read_npy(reference("components/t5_last_hidden_state.npy"));
  ASSERT_EQ(ids.sizes(), (std::vector<std::int64_t>{6, 226}));
  at::Tensor ours = encoder.encode(ids);
  ASSERT_EQ(ours.sizes(), expected.sizes());
  const double error = max_abs(ours, expected);
  std::printf("T5 hidden states: max abs %.3g (values up to %.3g)\n", error, expected.abs().max().item<double>());
  EXPECT_LE(error, 1e-4);
}

// Prompt text to embeddings, for both prompts of two pipelines (5b: BF16 weights, 2b: F32).
TEST(T5Encoder, PromptsBecomeThePipelinesEmbeddings) {
  REQUIRE_COGVIDEOX_REFERENCE();
  c10::InferenceMode inference;
  for (auto [variant, case_name] : {std::pair{"5b", "t2v_5b_ddim"}, std::pair{"2b", "t2v_2b_ddim"}}) {
    SCOPED_TRACE(variant);
    ModelFolder folder = ModelFolder::open(tiny(variant));
    T5Tokenizer tokenizer(folder.component("tokenizer") / "spiece.model");
    T5Encoder encoder = text_encoder(folder);
    json call = json::parse(std::ifstream(reference("cases/" + std::string(case_name) + "/case.json")));
    for (auto [key, file] : {std::pair{"prompt", "prompt"}, std::pair{"negative_prompt", "negative_prompt"}}) {
      SCOPED_TRACE(key);
      ASSERT_TRUE(call.contains(key));
      Tokens t = tokenizer.encode(call[key].get<std::string>(), 226);
      at::Tensor ids = ids_tensor(t.ids);
      EXPECT_TRUE(at::equal(ids, test::read_npy(reference("cases/" + std::string(case_name) + "/" + file + "_ids.npy"))));
      at::Tensor expected = test::read_npy(reference("cases/" + std::string(case_name) + "/" + file + "_embeds.npy"));
      EXPECT_LE(max_abs(encoder.encode(ids), expected), 1e-4);
    }
  }
}

TEST(T5Encoder, Bf16StaysCloseToFp32) {
  REQUIRE_COGVIDEOX_REFERENCE();
  c10::InferenceMode inference;
  T5Encoder encoder = text_encoder(ModelFolder::open(tiny("2b")));
  at::Tensor ids = test::read_npy(reference("components/t5_input_ids.npy"));
  at::Tensor fp32 = encoder.encode(ids);
  encoder.to("cpu", at::kBFloat16);
  at::Tensor bf16 = encoder.encode(ids);
  EXPECT_EQ(bf16.scalar_type(), at::kBFloat16);
  const double error = max_abs(bf16, fp32), scale = fp32.abs().max().item<double>();
  std::printf("T5 bf16 vs fp32: max abs %.3g of %.3g\n", error, scale);
  EXPECT_LT(error, 0.05 * scale);
}

TEST(ModelFolder, NamesWhatIsMissingOrUnsupported) {
  REQUIRE_COGVIDEOX_REFERENCE();
  // Not a model folder at all.
  EXPECT_NE(failure_of([] { ModelFolder::open(test::temp_dir("empty")); }).find("has no model_index.json"),
            std::string::npos);

  // A component model_index.json lists but whose folder is gone.
  fs::path dir = copy_text_components("2b");
  ModelFolder folder = ModelFolder::open(dir);
  EXPECT_NE(failure_of([&] { folder.component("vae"); }).find("'vae' component (AutoencoderKLCogVideoX) is listed but its folder"),
            std::string::npos);

  // An unsupported value is refused by name, not ignored.
  edit_json(dir / "text_encoder/config.json", [](json& j) { j["feed_forward_proj"] = "relu"; });
  std::string message = failure_of([&] { T5Config::from(folder.config("text_encoder")); });
  EXPECT_NE(message.find("'feed_forward_proj' is \"relu\"; reel implements only \"gated-gelu\""), std::string::npos) << message;
  edit_json(dir / "text_encoder/config.json", [](json& j) {
    j["feed_forward_proj"] = "gated-gelu";
    j["d_model"] = "eight";
  });
  EXPECT_NE(failure_of([&] { T5Config::from(folder.config("text_encoder")); }).find("'d_model' is \"eight\", not an integer"),
            std::string::npos);

  // Config and weights that disagree: every wrong-shape tensor is named.
  edit_json(dir / "text_encoder/config.json", [](json& j) { j["d_model"] = 16; });
  message = failure_of([&] { text_encoder(folder); });
  EXPECT_NE(message.find("wrong shape 20 (shared.weight is [32128, 8], expected [32128, 16]"), std::string::npos)
      << message;
  edit_json(dir / "text_encoder/config.json", [](json& j) { j["d_model"] = 8; });
  EXPECT_NO_THROW(text_encoder(folder));

  // A truncated weights file.
  fs::path weights = dir / "text_encoder/model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) / 2);
  message = failure_of([&] { text_encoder(folder); });
  EXPECT_NE(message.find("model.safetensors"), std::string::npos) << message;
}

TEST(ModelFolder, ReadsShardedWeightsThroughTheirIndex) {
  REQUIRE_COGVIDEOX_REFERENCE();
  c10::InferenceMode inference;
  fs::path dir = copy_text_components("2b");
  // Split the text encoder into two shards and an index, as large checkpoints come.
  weights::Checkpoint whole = weights::open_checkpoint(dir / "text_encoder/model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> first, second;
  json map = json::object();
  for (std::size_t i = 0; i < whole.tensors().size(); ++i) {
    auto& shard = i % 2 ? second : first;
    shard.emplace_back(whole.tensors()[i].name, whole.read(i).clone());
    map[whole.tensors()[i].name] = i % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  }
  weights::save_safetensors(dir / "text_encoder/model-00001-of-00002.safetensors", first, false);
  weights::save_safetensors(dir / "text_encoder/model-00002-of-00002.safetensors", second, false);
  std::ofstream(dir / "text_encoder/model.safetensors.index.json") << json{{"metadata", json::object()}, {"weight_map", map}}.dump();
  at::Tensor ids = test::read_npy(reference("components/t5_input_ids.npy")).narrow(0, 0, 2);
  ModelFolder folder = ModelFolder::open(dir);
  at::Tensor sharded = text_encoder(folder).encode(ids);
  fs::remove(dir / "text_encoder/model-00001-of-00002.safetensors");
  fs::remove(dir / "text_encoder/model-00002-of-00002.safetensors");
  fs::remove(dir / "text_encoder/model.safetensors.index.json");
  EXPECT_TRUE(at::equal(sharded, text_encoder(folder).encode(ids)));

  // A truncated shard is named.
  weights::save_safetensors(dir / "text_encoder/model-00001-of-00002.safetensors", first, false);
  weights::save_safetensors(dir / "text_encoder/model-00002-of-00002.safetensors", second, false);
  std::ofstream(dir / "text_encoder/model.safetensors.index.json") << json{{"metadata", json::object()}, {"weight_map", map}}.dump();
  fs::path shard = dir / "text_encoder/model-00002-of-00002.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 100);
  const std::string message = failure_of([&] { text_encoder(folder); });
  EXPECT_NE(message.find("model-00002-of-00002.safetensors"), std::string::npos) << message;
}

// ---- the 3D causal VAE ----

namespace {

Vae vae_of(const std::string& variant) {
  ModelFolder folder = ModelFolder::open(tiny(variant));
  Vae vae(VaeConfig::from(folder.config("vae")));
  vae.load(folder.weights("vae"));
  return vae;
}

}  // namespace

TEST(CogVideoXVae, EncoderMomentsMatchForOneNineAndSeventeenFrames) {
  REQUIRE_COGVIDEOX_REFERENCE();
  c10::InferenceMode inference;
  Vae vae = vae_of("5b");  // BF16 weights
  EXPECT_EQ(vae.config().spatial_factor(), 8);
  EXPECT_EQ(vae.config().time_levels(), 2);
  at::Tensor frames = test::read_npy(reference("components/vae_input_video_u8.npy"));  // 17 x 32 x 48 x 3
  at::Tensor video = frames.permute({3, 0, 1, 2}).unsqueeze(0).to(at::kFloat).div(255).mul(2).sub(1);
  for (int count : {1, 9, 17}) {
    SCOPED_TRACE(count);
    at::Tensor expected = test::read_npy(reference("components/vae_encode_moments_" + std::to_string(count) + "f.npy"));
    at::Tensor ours = vae.encode(video.narrow(2, 0, count));
    ASSERT_EQ(ours.sizes(), expected.sizes());
    const double error = max_abs(ours, expected);
    std::printf("VAE encode %2d frames: max abs %.3g (values up to %.3g)\n", count, error, expected.abs().max().item<double>());
    EXPECT_LE(error, 1e-4);
  }
}

TEST(CogVideoXVae, DecoderOutputsMatchForEveryLatentCount) {
  REQUIRE_COGVIDEOX_REFERENCE();
  c10::InferenceMode inference;
  Vae vae = vae_of("5b");
  for (int count : {1, 3, 4, 5}) {
    SCOPED_TRACE(count);
    at::Tensor latents = test::read_npy(reference("components/vae_decode_in_" + std::to_string(count) + "lat.npy"));
    at::Tensor expected = test::read_npy(reference("components/vae_decode_out_" + std::to_string(count) + "lat.npy"));
    at::Tensor ours = vae.decode(latents);
    ASSERT_EQ(ours.sizes(), expected.sizes());
    const double error = max_abs(ours, expected);
    std::printf("VAE decode %d latent frames -> %ld frames: max abs %.3g\n", count, static_cast<long>(ours.size(2)), error);
    EXPECT_LE(error, 1e-4);
    // Chunk by chunk, as a streaming consumer gets them: the same frames, in order.
    std::vector<at::Tensor> chunks;
    vae.decode(latents, [&](const at::Tensor& chunk) { chunks.push_back(chunk); });
    EXPECT_TRUE(at::equal(at::cat(chunks, 2), ours));
  }
}

TEST(CogVideoXVae, UnsupportedConfigValuesAreRefusedByName) {
  REQUIRE_COGVIDEOX_REFERENCE();
  fs::path dir = test::temp_dir("cogvideox-vae");
  fs::copy(tiny("2b") / "vae", dir, fs::copy_options::recursive);
  for (const auto& entry : fs::directory_iterator(dir)) fs::permissions(entry.path(), fs::perms::owner_write, fs::perm_options::add);
  auto refusal = [&](const std::function<void(json&)>& change) {
    fs::copy_file(tiny("2b") / "vae/config.json", dir / "config.json", fs::copy_options::overwrite_existing);
    edit_json(dir / "config.json", change);
    return failure_of([&] { VaeConfig::from(Config::read(dir / "config.json")); });
  };
  EXPECT_NE(refusal([](json& j) { j["use_quant_conv"] = true; }).find("'use_quant_conv' is true; reel implements only false"),
            std::string::npos);
  EXPECT_NE(refusal([](json& j) { j["act_fn"] = "gelu"; }).find("'act_fn' is \"gelu\""), std::string::npos);
  EXPECT_NE(refusal([](json& j) { j["up_block_types"][1] = "UpDecoderBlock2D"; }).find("\"UpDecoderBlock2D\""),
            std::string::npos);
  EXPECT_NE(refusal([](json& j) { j["block_out_channels"] = {8, 6, 16, 16}; }).find("not a multiple of norm_num_groups"),
            std::string::npos);
  EXPECT_NE(refusal([](json& j) { j["shift_factor"] = 0.5; }).find("'shift_factor'"), std::string::npos);
}

// Tiled decoding: diffusers' tiles and blending, each tile with its own conv cache across chunks.
// There is no reference output for tiling; the difference to the untiled decode is measured here.
TEST(CogVideoXVae, TiledDecodeStaysCloseToTheWholeFrame) {
  REQUIRE_COGVIDEOX_REFERENCE();
  c10::InferenceMode inference;
  Vae vae = vae_of("5b");
  at::manual_seed(9);
  at::Tensor latents = at::randn({1, 16, 3, 12, 16});  // 9 frames of 96x128
  at::Tensor whole = vae.decode(latents);
  VaeTiling tiling{64, 64};  // 8x8-latent tiles: 3 x 3 of them here
  std::vector<at::Tensor> chunks;
  at::Tensor tiled = vae.decode(latents, {}, tiling);
  vae.decode(latents, [&](const at::Tensor& chunk) { chunks.push_back(chunk); }, tiling);
  ASSERT_EQ(tiled.sizes(), whole.sizes());
  EXPECT_TRUE(at::equal(at::cat(chunks, 2), tiled));
  const double error = max_abs(tiled, whole), mean = (tiled - whole).abs().mean().item<double>();
  const double range = whole.max().item<double>() - whole.min().item<double>();
  std::printf("VAE tiled (64x64 tiles) vs whole, 9 frames 96x128: max abs %.3g, mean abs %.3g, range %.3g\n", error, mean,
              range);
  EXPECT_GT(error, 0);            // the tiles do see less context
  EXPECT_LT(mean, 0.01 * range);   // measured 0.0028 of the range
  EXPECT_LT(error, 0.15 * range);  // measured 0.071 of the range, at a seam
}

// Decoding chunk by chunk keeps the peak set by the chunk, not the clip: 13 frames' worth of
// latents (4) against 49 frames' worth (13), 96x128 output, frames handed on and dropped.
TEST(CogVideoXVae, StreamingDecodePeakDoesNotGrowWithClipLength) {
  REQUIRE_COGVIDEOX_REFERENCE();
  c10::InferenceMode inference;
  Vae vae = vae_of("2b");
  auto peak_of = [&](std::int64_t latent_frames) {
    at::manual_seed(5);
    at::Tensor latents = at::randn({1, 16, latent_frames, 12, 16});
    std::int64_t frames = 0;
    release_cached_memory();
    const std::uint64_t before = test::rss_bytes();
    std::ofstream("/proc/self/clear_refs") << "5";  // restart the kernel's peak (VmHWM) from here
    vae.decode(latents, [&](const at::Tensor& chunk) { frames += chunk.size(2); });
    std::ifstream status("/proc/self/status");
    std::uint64_t peak = 0;
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmHWM:", 0) == 0) peak = std::stoull(line.substr(6)) * 1024;
    // An odd count decodes to 1 + 4 (n - 1) frames; an even one to 4 n (the first chunk has no lone frame).
    EXPECT_EQ(frames, latent_frames % 2 ? (latent_frames - 1) * 4 + 1 : 4 * latent_frames);
    return static_cast<double>(peak - std::min(peak, before));
  };
  peak_of(2);  // warm-up
  const double short_clip = peak_of(4), long_clip = peak_of(13);
  std::printf("VAE streaming decode, 96x128: peak above start %.1f MB for 13 frames, %.1f MB for 49 frames\n",
              short_clip / 1e6, long_clip / 1e6);
  EXPECT_LT(long_clip, short_clip * 1.2);
}

// ---- the transformer ----

class CogVideoXTransformerReference : public testing::TestWithParam<std::string> {};

// One forward pass on the reference's inputs (batch of 2, timesteps 999 and 421), with the RoPE
// tables reel builds itself, which must equal the reference's.
TEST_P(CogVideoXTransformerReference, MatchesTheReferenceWithin1e4) {
  REQUIRE_COGVIDEOX_REFERENCE();
  c10::InferenceMode inference;
  const std::string variant = GetParam();
  ModelFolder folder = ModelFolder::open(tiny(variant));
  Transformer transformer(TransformerConfig::from(folder.config("transformer")));
  transformer.load(folder.weights("transformer"));
  const fs::path dir = reference("components/transformer_" + tiny_name(variant));
  at::Tensor latents = test::read_npy(dir / "hidden_states.npy");
  if (fs::exists(dir / "rope_cos.npy")) {
    auto [cos, sin] = transformer.rotary_tables(latents.size(1), latents.size(3), latents.size(4));
    EXPECT_LE(max_abs(cos, test::read_npy(dir / "rope_cos.npy")), 1e-6);
    EXPECT_LE(max_abs(sin, test::read_npy(dir / "rope_sin.npy")), 1e-6);
  }
  at::Tensor out = transformer.forward(latents, test::read_npy(dir / "encoder_hidden_states.npy"),
                                       test::read_npy(dir / "timestep.npy"));
  at::Tensor expected = test::read_npy(dir / "out.npy");
  ASSERT_EQ(out.sizes(), expected.sizes());
  const double error = max_abs(out, expected);
  std::printf("transformer %s: max abs %.3g (values up to %.3g)\n", variant.c_str(), error,
              expected.abs().max().item<double>());
  EXPECT_LE(error, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Variants, CogVideoXTransformerReference, testing::Values("5b", "5b-i2v", "2b", "1.5-5b-i2v"));

// The whole-pipeline cases' RoPE tables (the 5b at 64x96, a grid cropped into its 8x22 sample).
TEST(CogVideoXTransformer, RotaryTablesMatchThePipelineCases) {
  REQUIRE_COGVIDEOX_REFERENCE();
  for (const char* name : {"t2v_5b_ddim", "i2v_5b_ddim"}) {
    SCOPED_TRACE(name);
    json c = json::parse(std::ifstream(reference("cases/" + std::string(name) + "/case.json")));
    ModelFolder folder = ModelFolder::open(reference("models/" + c["model"].get<std::string>()));
    Transformer transformer(TransformerConfig::from(folder.config("transformer")));
    const std::int64_t frames = (c["num_frames"].get<std::int64_t>() - 1) / 4 + 1;
    auto [cos, sin] = transformer.rotary_tables(frames, c["height"].get<std::int64_t>() / 8, c["width"].get<std::int64_t>() / 8);
    EXPECT_LE(max_abs(cos, test::read_npy(reference("cases/" + std::string(name) + "/rope_cos.npy"))), 1e-6);
    EXPECT_LE(max_abs(sin, test::read_npy(reference("cases/" + std::string(name) + "/rope_sin.npy"))), 1e-6);
  }
}

TEST(CogVideoXTransformer, LayoutsNoModelHasAreRefusedByName) {
  REQUIRE_COGVIDEOX_REFERENCE();
  const fs::path dir = test::temp_dir("transformer-config");
  fs::create_directories(dir / "transformer");
  std::ofstream(dir / "model_index.json") << R"({"_class_name": "CogVideoXPipeline", "transformer": ["diffusers", "CogVideoXTransformer3DModel"]})";
  auto refusal = [&](const json& config) {
    json c = json::parse(std::ifstream(tiny("1.5-5b-i2v") / "transformer/config.json"));
    c.update(config);
    std::ofstream(dir / "transformer/config.json") << c.dump();
    return failure_of([&] { TransformerConfig::from(ModelFolder::open(dir).config("transformer")); });
  };
  EXPECT_NE(refusal({{"ofs_embed_dim", 48}}).find("'ofs_embed_dim' 48 differs from 'time_embed_dim' 24"), std::string::npos);
  EXPECT_NE(refusal({{"use_rotary_positional_embeddings", false}}).find("temporal patches"), std::string::npos);
  EXPECT_NE(refusal({{"activation_fn", "gelu"}}).find("'activation_fn'"), std::string::npos);
}

// After running out of memory mid-clip the decode switches to tiles and rebuilds the tiles' conv
// caches from the clip's start: the chunks after the switch equal a tiled decode of the whole clip.
TEST(CogVideoXVae, RetilingMidClipContinuesAsATiledDecodeOfTheWholeClip) {
  REQUIRE_COGVIDEOX_REFERENCE();
  c10::InferenceMode inference;
  Vae vae = vae_of("5b");
  at::manual_seed(11);
  at::Tensor latents = at::randn({1, 16, 5, 8, 12});  // chunks of 3, then 2 latent frames
  const VaeTiling tiling{32, 48};
  const at::Tensor whole = vae.decode(latents), tiled = vae.decode(latents, {}, tiling);
  VaeDecoding decoding(vae, latents);
  const at::Tensor first = decoding.next();
  EXPECT_TRUE(at::equal(first, whole.narrow(2, 0, 9))) << "the first chunk, untiled";
  decoding.retile(tiling);
  const at::Tensor second = decoding.next();
  EXPECT_TRUE(decoding.done());
  EXPECT_TRUE(at::equal(second, tiled.narrow(2, 9, 8))) << "the second chunk, as the tiled decode has it";
  EXPECT_FALSE(at::equal(second, whole.narrow(2, 9, 8)));
  EXPECT_FALSE(decoding.next().defined());
}

// The memory a real-size model needs, from configs alone: CogVideoX-5b's sizes (48 heads x 64,
// 42 layers; T5-XXL; the 128-512 channel VAE) in a folder without weights. In bf16 at 720x480x49
// it does not fit a 24 GB card with every component loaded, and does with offload: model.
TEST(CogVideoXPipeline, RealSizeMemoryEstimatesMakeOffloadModelTheChoiceFor24GB) {
  REQUIRE_COGVIDEOX_REFERENCE();
  const fs::path dir = test::temp_dir("cogvideox-5b-configs");
  fs::copy(tiny("5b") / "model_index.json", dir / "model_index.json");
  for (const char* component : {"text_encoder", "tokenizer", "transformer", "vae", "scheduler"}) {
    fs::create_directories(dir / component);
    for (const auto& entry : fs::directory_iterator(tiny("5b") / component))
      if (entry.path().extension() == ".json" || entry.path().extension() == ".model")
        fs::copy(entry.path(), dir / component / entry.path().filename());
    for (const auto& entry : fs::directory_iterator(dir / component))
      fs::permissions(entry.path(), fs::perms::owner_write, fs::perm_options::add);
  }
  edit_json(dir / "text_encoder/config.json", [](json& c) {
    c["d_model"] = 4096, c["d_ff"] = 10240, c["d_kv"] = 64, c["num_heads"] = 64, c["num_layers"] = 24;
  });
  edit_json(dir / "transformer/config.json", [](json& c) {
    c["num_attention_heads"] = 48, c["attention_head_dim"] = 64, c["num_layers"] = 42, c["time_embed_dim"] = 512;
    c["text_embed_dim"] = 4096, c["sample_height"] = 60, c["sample_width"] = 90, c["sample_frames"] = 49;
  });
  edit_json(dir / "vae/config.json", [](json& c) {
    c["block_out_channels"] = {128, 256, 256, 512}, c["norm_num_groups"] = 32;
  });
  Pipeline pipeline(dir, "cpu", at::kBFloat16, Offload::model);
  const Pipeline::Footprint w = pipeline.weight_bytes();
  // Parameters as published: T5-XXL encoder 4.76G, CogVideoX-5b transformer 5.57G, VAE 0.22G.
  EXPECT_NEAR(w.text_encoder / 2 / 1e9, 4.76, 0.02);
  EXPECT_NEAR(w.transformer / 2 / 1e9, 5.57, 0.03);
  EXPECT_NEAR(w.vae / 2 / 1e9, 0.22, 0.02);
  Request r;
  r.frames = 49, r.width = 720, r.height = 480;
  const double gb = 1e9, card = 24 * gb;
  const double none = pipeline.device_peak_bytes(r, Offload::none), model = pipeline.device_peak_bytes(r, Offload::model);
  std::printf("CogVideoX-5b bf16 720x480x49: offload none %.1f GB, model %.1f GB\n", none / gb, model / gb);
  EXPECT_GT(none, card);
  EXPECT_LT(model, card);
}
