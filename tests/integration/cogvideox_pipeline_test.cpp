// Whole CogVideoX runs on the shared tiny models against the reference pipelines' own runs
// (reference/cogvideox/cases/): same seed and settings, the same frames within 50 dB.
#include "pipeline.h"
#include "media.h"
#include "test_support.h"

#include <reel/error.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace reel;
using namespace reel::cogvideox;

namespace {

#define REQUIRE_COGVIDEOX_CASES() REEL_REQUIRE_SHARED("reference/cogvideox/cases/t2v_5b_ddim/case.json")

fs::path cases(const std::string& relative) { return test::shared_dir() / "reference/cogvideox/cases" / relative; }

// The V2V input frames (17 x 64 x 96 x 3 uint8) as 3 x F x H x W in [-1, 1], as the reference
// preprocesses them; its frame 0 is the I2V cases' input_image.png.
at::Tensor input_video() {
  at::Tensor u8 = test::read_npy(cases("v2v_5b_dpm_dyncfg/input_video_u8.npy"));
  return (u8.to(at::kFloat) / 255 * 2 - 1).permute({3, 0, 1, 2}).contiguous();
}

struct PipelineRun {
  at::Tensor frames;  // F x 3 x H x W uint8
  std::vector<std::int64_t> steps;
  std::vector<std::int64_t> chunk_sizes;
};

PipelineRun run_case(const std::string& name, Offload offload = Offload::none) {
  const json c = json::parse(std::ifstream(cases(name + "/case.json")));
  Request r;
  r.prompt = c["prompt"];
  r.negative_prompt = c["negative_prompt"];
  r.frames = c["num_frames"];
  r.width = c["width"];
  r.height = c["height"];
  r.steps = c["steps"];
  r.guidance = c["guidance"];
  r.dynamic_guidance = c["dynamic_cfg"];
  r.seed = c["seed"];
  r.sampler = sampler_kind(c["scheduler"]);
  if (c["kind"] == "i2v") {
    r.mode = Mode::image_to_video;
    r.image = input_video().select(1, 0);
  }
  if (c["kind"] == "v2v") {
    r.mode = Mode::video_to_video;
    r.video = input_video();
    r.strength = c["strength"];
  }
  Pipeline pipeline(test::shared_dir() / "reference/cogvideox/models" / c["model"].get<std::string>(), "cpu", at::kFloat, offload);
  PipelineRun run;
  std::vector<at::Tensor> chunks;
  Hooks hooks;
  hooks.on_step = [&](std::int64_t done, std::int64_t) { run.steps.push_back(done); };
  hooks.on_frames = [&](const at::Tensor& frames) {
    chunks.push_back(frames);
    run.chunk_sizes.push_back(frames.size(0));
  };
  pipeline.generate(r, hooks);
  run.frames = at::cat(chunks);
  return run;
}

// The reference frames (F x H x W x 3) as F x 3 x H x W.
at::Tensor reference_frames(const std::string& name) {
  return test::read_npy(cases(name + "/frames_u8.npy")).permute({0, 3, 1, 2}).contiguous();
}

void expect_reference_frames(const std::string& name, const PipelineRun& run) {
  const at::Tensor expected = reference_frames(name);
  ASSERT_EQ(run.frames.sizes(), expected.sizes()) << name;
  const double psnr = test::psnr(run.frames, expected);
  const double mean_abs = (run.frames.to(at::kFloat) - expected.to(at::kFloat)).abs().mean().item<double>();
  std::fprintf(stderr, "%s: %.1f dB, mean abs %.4f\n", name.c_str(), psnr, mean_abs);
  EXPECT_GE(psnr, 50.0) << name;
}

}  // namespace

TEST(CogVideoXPipeline, TextToVideo5bDdimReproducesTheReferenceFrames) {
  REQUIRE_COGVIDEOX_CASES();
  PipelineRun run = run_case("t2v_5b_ddim");
  expect_reference_frames("t2v_5b_ddim", run);
  EXPECT_EQ(run.steps, (std::vector<std::int64_t>{1, 2, 3, 4}));
  // 5 latent frames decode in two chunks, the odd one first: 3 -> 9 frames, then 2 -> 8.
  EXPECT_EQ(run.chunk_sizes, (std::vector<std::int64_t>{9, 8}));
}

TEST(CogVideoXPipeline, TextToVideo5bDpmWithDynamicGuidanceReproducesTheReferenceFrames) {
  REQUIRE_COGVIDEOX_CASES();
  expect_reference_frames("t2v_5b_dpm_dyncfg", run_case("t2v_5b_dpm_dyncfg"));
}

TEST(CogVideoXPipeline, TextToVideo2bReproducesTheReferenceFrames) {
  REQUIRE_COGVIDEOX_CASES();
  expect_reference_frames("t2v_2b_ddim", run_case("t2v_2b_ddim"));
}

TEST(CogVideoXPipeline, ImageToVideo5bReproducesTheReferenceFrames) {
  REQUIRE_COGVIDEOX_CASES();
  expect_reference_frames("i2v_5b_ddim", run_case("i2v_5b_ddim", Offload::model));
}

// CogVideoX 1.5: temporal patches, a padding latent frame, the ofs embedding, the sliced RoPE grid
// and the inverted latent scaling on encode.
TEST(CogVideoXPipeline, ImageToVideo15DpmReproducesTheReferenceFrames) {
  REQUIRE_COGVIDEOX_CASES();
  expect_reference_frames("i2v_15_dpm", run_case("i2v_15_dpm"));
}

TEST(CogVideoXPipeline, VideoToVideoReproducesTheReferenceFrames) {
  REQUIRE_COGVIDEOX_CASES();
  PipelineRun run = run_case("v2v_5b_dpm_dyncfg");
  expect_reference_frames("v2v_5b_dpm_dyncfg", run);
  EXPECT_EQ(run.steps, (std::vector<std::int64_t>{1, 2, 3})) << "int(5 x 0.7) = 3 steps";
}

TEST(CogVideoXPipeline, AnotherSeedGivesAnotherVideoAndTheSameSeedTheSame) {
  REQUIRE_COGVIDEOX_CASES();
  Pipeline pipeline(test::shared_dir() / "reference/cogvideox/models/tiny-cogvideox-2b", "cpu", at::kFloat, Offload::none);
  Request r;
  r.prompt = "a fox";
  r.frames = 5;
  r.width = r.height = 32;
  r.steps = 2;
  auto frames = [&](std::uint64_t seed) {
    r.seed = seed;
    std::vector<at::Tensor> chunks;
    pipeline.generate(r, Hooks{{}, [&](const at::Tensor& f) { chunks.push_back(f); }, {}});
    return at::cat(chunks);
  };
  const at::Tensor a = frames(1), again = frames(1), b = frames(2);
  EXPECT_TRUE(at::equal(a, again));
  EXPECT_LT(test::psnr(a, b), 30.0);
}

TEST(CogVideoXPipeline, RequestsTheModelCannotRunAreRefusedByParameter) {
  REQUIRE_COGVIDEOX_CASES();
  const fs::path models = test::shared_dir() / "reference/cogvideox/models";
  Pipeline t2v(models / "tiny-cogvideox-5b", "cpu", at::kFloat, Offload::none);
  Pipeline i2v(models / "tiny-cogvideox-5b-i2v", "cpu", at::kFloat, Offload::none);
  EXPECT_EQ(t2v.variant().name, "CogVideoX-5b");
  EXPECT_EQ(i2v.variant().name, "CogVideoX-5b-I2V");
  Request r;
  r.prompt = "a fox";
  r.frames = 17;
  r.width = 96;
  r.height = 64;
  auto param_of = [](const Pipeline& p, const Request& request) -> std::string {
    try {
      p.check(request);
    } catch (const InvalidParamError& e) {
      return e.param();
    }
    return "accepted";
  };
  EXPECT_EQ(param_of(t2v, r), "accepted");
  EXPECT_EQ(param_of(i2v, r), "image") << "an I2V model without an image";
  Request with_image = r;
  with_image.mode = Mode::image_to_video;
  with_image.image = at::zeros({3, 64, 96});
  EXPECT_EQ(param_of(i2v, with_image), "accepted");
  EXPECT_EQ(param_of(t2v, with_image), "image") << "a T2V model given an image";
  with_image.frames = 9;
  EXPECT_EQ(param_of(i2v, with_image), "accepted") << "another frame count: the sin-cos table stands in";
  with_image.width = 128;
  with_image.image = at::Tensor();
  EXPECT_EQ(param_of(i2v, with_image), "width") << "the learned table is for 96x64 only";
  Pipeline v15(models / "tiny-cogvideox1.5-5b-i2v", "cpu", at::kFloat, Offload::none);
  EXPECT_EQ(param_of(v15, with_image), "width") << "beyond 1.5's rotary grid (112x80)";
  with_image.width = 96;
  EXPECT_EQ(param_of(v15, with_image), "accepted") << "1.5 makes up to its sample size";
  with_image.width = 96;
  with_image.image = at::zeros({3, 32, 96});
  EXPECT_THROW(i2v.check(with_image), BadInputError) << "an image of another size";
  Request bad = r;
  bad.frames = 16;
  EXPECT_EQ(param_of(t2v, bad), "frames");
  bad = r;
  bad.width = 100;
  EXPECT_EQ(param_of(t2v, bad), "width");
  bad = r;
  bad.mode = Mode::video_to_video;
  bad.steps = 5;
  bad.strength = 0.1;
  EXPECT_EQ(param_of(t2v, bad), "strength") << "int(5 x 0.1) = 0 steps";
  bad.strength = 0.8;
  EXPECT_EQ(param_of(t2v, bad), "accepted") << "the video comes later";
  bad.video = at::zeros({3, 13, 64, 96});
  EXPECT_THROW(t2v.check(bad), BadInputError) << "13 frames for 17";
}

// Out of memory while decoding: the node's degrade() halves the tiles (whole frames first) until
// 16 pixels, and the decode goes on with the same chunk.
TEST(CogVideoXPipeline, DecodeDegradesToHalvedTilesDownToSixteenPixels) {
  REQUIRE_COGVIDEOX_CASES();
  Pipeline pipeline(test::shared_dir() / "reference/cogvideox/models/tiny-cogvideox-2b", "cpu", at::kFloat, Offload::none);
  EXPECT_FALSE(pipeline.degrade_decode()) << "nothing is being decoded";
  at::manual_seed(4);
  pipeline.start_decode(at::randn({1, 3, 16, 8, 12}));  // 9 frames of 96x64
  const at::Tensor first = pipeline.next_frames();
  EXPECT_EQ(first.size(0), 9);
  std::vector<std::pair<std::int64_t, std::int64_t>> ladder;
  while (pipeline.degrade_decode()) ladder.emplace_back(pipeline.decode_tiling().sample_width, pipeline.decode_tiling().sample_height);
  EXPECT_EQ(ladder, (std::vector<std::pair<std::int64_t, std::int64_t>>{{48, 32}, {24, 16}, {16, 16}}));
  EXPECT_FALSE(pipeline.next_frames().defined()) << "one chunk only, already handed out";
}
