// Bounded in-flight frames: a fast producer waits for a slow consumer instead of filling memory,
// so the memory of a run does not grow with the length of the video.
#include "test_support.h"

#include <reel/runtime/memory.h>

#include <gtest/gtest.h>

#include <cstdio>

namespace fs = std::filesystem;

namespace reel {
namespace {

TEST(ExecutorBackpressure, NoEdgeEverHoldsMoreThanItsCapacity) {
  fs::path journal = test::temp_dir() / "journal.txt";
  const std::size_t capacity = 2;
  RunResult r = test::run(test::chain(100, {"test.map"},
                                      {{"src", {{"journal", journal.string()}}},
                                       {"sink", {{"journal", journal.string()}, {"delay_us", 2000}}}}),
                          RunOptions{.edge_capacity = capacity});
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  ASSERT_EQ(r.edges.size(), 2u);
  for (const EdgeReport& e : r.edges) {
    EXPECT_LE(e.max_queued, capacity) << e.from << " -> " << e.to;
    EXPECT_EQ(e.frames, 100);
  }
  // The source never ran ahead of the sink by more than what the edges and the nodes in
  // between can hold (2 edges x 2 frames + 1 in the map + 1 in the sink + 1 being produced).
  // Unbounded queues would let it run ~100 frames ahead.
  std::int64_t produced = 0, consumed = 0, max_lead = 0;
  for (const auto& line : test::read_lines(journal)) {
    if (line.rfind("src produce ", 0) == 0) ++produced;
    if (line.rfind("sink process ", 0) == 0) ++consumed;
    max_lead = std::max(max_lead, produced - consumed);
  }
  EXPECT_EQ(produced, 100);
  EXPECT_LE(max_lead, 2 * static_cast<std::int64_t>(capacity) + 3);
}

TEST(ExecutorBackpressure, PeakMemoryDoesNotGrowWithVideoLength) {
  // 1280x720 RGB frames, 2.6 MiB each: the long run streams 790 MiB through the graph.
  auto peak_for = [](std::int64_t frames) {
    release_cached_memory();
    RunResult r = test::run(test::chain(frames, {"test.map", "test.map"},
                                        // A slow sink, so the edges fill up and stay full.
                                        {{"src", {{"width", 1280}, {"height", 720}}}, {"sink", {{"delay_us", 2000}}}}),
                            RunOptions{.edge_capacity = 4});
    EXPECT_TRUE(r.ok());
    return static_cast<double>(r.peak_rss_bytes - r.memory_before.host_rss_bytes);
  };
  peak_for(10);  // warm-up
  double short_run = peak_for(30);
  double long_run = peak_for(300);
  double frame = 1280.0 * 720 * 3;
  std::printf("peak above baseline: 30 frames %.1f MB, 300 frames %.1f MB\n", short_run / 1e6, long_run / 1e6);
  // The slow sink keeps every edge full, so both runs hold about 3 edges x 4 frames. The long
  // run's growth over the short one stays below a few frames' worth, far below the 270 extra
  // frames (700 MiB) an unbounded pipeline would hold.
  EXPECT_LT(long_run - short_run, 20 * frame) << "short " << short_run / 1e6 << " MB, long " << long_run / 1e6 << " MB";
}

}  // namespace
}  // namespace reel
