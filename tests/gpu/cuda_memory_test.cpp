// On a CUDA device: after a node fails, GPU memory goes back to its baseline. Unloading frees the
// tensors; emptying the caching allocator returns what it reserved.
#include "test_support.h"

#include <reel/runtime/memory.h>

#include <gtest/gtest.h>

namespace reel {
namespace {

constexpr std::uint64_t kSlack = 64ull << 20;

class CudaMemory : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
    ASSERT_TRUE(test::run(test::chain(2, {"test.map"}, {{"m0", {{"device", "cuda"}, {"model_mib", 16}}}})).ok());
    release_cached_memory();
    baseline_ = sample_memory();
  }
  void expect_back_at_baseline(const RunResult& r) {
    ASSERT_TRUE(r.memory_after.cuda_allocated_bytes && r.memory_after.cuda_reserved_bytes);
    std::printf("cuda allocated %s -> %s, reserved %s -> %s\n", format_bytes(*baseline_.cuda_allocated_bytes).c_str(),
                format_bytes(*r.memory_after.cuda_allocated_bytes).c_str(),
                format_bytes(*baseline_.cuda_reserved_bytes).c_str(),
                format_bytes(*r.memory_after.cuda_reserved_bytes).c_str());
    EXPECT_LE(*r.memory_after.cuda_allocated_bytes, *baseline_.cuda_allocated_bytes + kSlack);
    EXPECT_LE(*r.memory_after.cuda_reserved_bytes, *baseline_.cuda_reserved_bytes + kSlack);
  }
  MemorySnapshot baseline_;
};

TEST_F(CudaMemory, InjectedOutOfMemoryReleasesTheModelAndTheCache) {
  RunResult r = test::run(test::chain(6, {"test.map"},
                                      {{"m0",
                                        {{"device", "cuda"},
                                         {"model_mib", 4096},
                                         {"fail_phase", "process"},
                                         {"fail_with", "c10_oom"},
                                         {"fail_frame", 3}}}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::out_of_memory);
  expect_back_at_baseline(r);
}

TEST_F(CudaMemory, RealOutOfMemoryIsClassifiedAndCleanedUp) {
  // 16 TiB: more than any device has, so the caching allocator throws c10::OutOfMemoryError.
  RunResult r = test::run(test::chain(
      4, {"test.map"},
      {{"src", {{"device", "cuda"}, {"model_mib", 2048}}}, {"m0", {{"device", "cuda"}, {"model_mib", 1 << 24}}}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::out_of_memory) << r.failure->detail;
  EXPECT_EQ(r.failure->node_id, "m0");
  EXPECT_EQ(r.failure->phase, Phase::load);
  std::printf("%s\n", r.failure->user_message().c_str());
  expect_back_at_baseline(r);
}

}  // namespace
}  // namespace reel
