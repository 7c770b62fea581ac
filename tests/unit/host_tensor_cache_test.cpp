// The cache of large CPU tensor blocks: freed blocks are reused for the same size, and
// release_cached_memory gives them back to the system.
#include "test_support.h"

#include <reel/runtime/memory.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace reel {
namespace {

TEST(HostTensorCache, ReusesAFreedBlockOfTheSameSize) {
  configure_host_allocator();
  release_cached_memory();
  void* first = nullptr;
  {
    at::Tensor t = at::empty({3, 1024, 1024}, at::kFloat);  // 12 MiB
    first = t.data_ptr();
  }
  at::Tensor again = at::empty({3, 1024, 1024}, at::kFloat);
  EXPECT_EQ(again.data_ptr(), first);
  at::Tensor other = at::empty({5, 1024, 1024}, at::kFloat);  // another size: a new block
  EXPECT_NE(other.data_ptr(), first);
}

TEST(HostTensorCache, ReleasingCachedMemoryReturnsItToTheSystem) {
  configure_host_allocator();
  release_cached_memory();
  const std::uint64_t baseline = test::rss_bytes();
  {
    std::vector<at::Tensor> blocks;
    for (int i = 0; i < 32; ++i) blocks.push_back(at::ones({2, 1024, 1024}, at::kFloat));  // 8 MiB each, touched
  }
  const std::uint64_t cached = test::rss_bytes();
  release_cached_memory();
  const std::uint64_t released = test::rss_bytes();
  std::printf("RSS: baseline %.1f MB, with 256 MiB cached %.1f MB, released %.1f MB\n", baseline / 1e6, cached / 1e6,
              released / 1e6);
  EXPECT_GT(cached, baseline + 200'000'000);  // freed tensors stay cached...
  EXPECT_LT(released, baseline + 16'000'000);  // ...until the caches are released
}

}  // namespace
}  // namespace reel
