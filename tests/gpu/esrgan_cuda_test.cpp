// upscaler.esrgan on a CUDA device: fp16 against the reference, speed at 720x480 -> 2880x1920,
// and a real CUDA out-of-memory (a whole frame far too large) degrading the tile and recovering.
// The weights come from $REEL_SHARED_DIR (scripts/fetch-gpu-deps copies them into .device/shared).
#include "test_support.h"

#include <reel/runtime/memory.h>

#include <gtest/gtest.h>

#include <chrono>

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel {
namespace {

fs::path model(const std::string& name) { return test::shared_dir() / "models/realesrgan" / (name + ".param"); }

json upscale_graph(const std::string& name, int width, int height, int frames, json params) {
  params["model"] = model(name).string();
  params["device"] = "cuda";
  params["precision"] = "fp16";
  return test::graph_json(json::array(
      {{{"id", "src"}, {"type", "generator.pattern"}, {"params", {{"frames", frames}, {"width", width}, {"height", height}}}},
       {{"id", "up"}, {"type", "upscaler.esrgan"}, {"inputs", {{"in", "src.out"}}}, {"params", params}},
       {{"id", "sink"}, {"type", "test.sink"}, {"inputs", {{"in", "up.out"}}}}}));
}

class EsrganCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
    REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4plus.param");
  }
};

TEST_F(EsrganCuda, Fp16FramesPerSecondAt720x480) {
  for (const std::string name : {"realesrgan-x4fast", "realesrgan-x4plus"}) {
    ASSERT_TRUE(test::run(upscale_graph(name, 720, 480, 2, {{"tile", 0}})).ok());  // warm-up
    auto start = std::chrono::steady_clock::now();
    RunResult r = test::run(upscale_graph(name, 720, 480, 20, {{"tile", 0}}));
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(r.ok()) << r.failure->user_message();
    EXPECT_EQ(r.nodes[1].frames_out, 20);
    std::printf("%s fp16 cuda 720x480 -> 2880x1920: %.2f frames/s (20 frames, %.2f s busy)\n", name.c_str(),
                20 / seconds, r.nodes[1].busy_seconds);
  }
}

TEST_F(EsrganCuda, RealOutOfMemoryHalvesTheTileAndRecovers) {
  release_cached_memory();
  MemorySnapshot before = sample_memory();
  // A whole 6144x6144 frame needs ~170 GB in fp16 for x4plus: more than any single GPU has.
  RunResult r = test::run(upscale_graph("realesrgan-x4plus", 6144, 6144, 1, {{"tile", 0}}));
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  std::printf("OOM retries: %d, frames out %lld\n", r.nodes[1].oom_retries, static_cast<long long>(r.nodes[1].frames_out));
  EXPECT_GE(r.nodes[1].oom_retries, 1);
  EXPECT_EQ(r.nodes[1].frames_out, 1);
  ASSERT_TRUE(r.memory_after.cuda_reserved_bytes && before.cuda_reserved_bytes);
  EXPECT_LE(*r.memory_after.cuda_reserved_bytes, *before.cuda_reserved_bytes + (64ull << 20));
}

}  // namespace
}  // namespace reel
