// After any run, failed or not, the process runs the next graph, with memory at its baseline.
#include "test_support.h"

#include <reel/runtime/memory.h>

#include <gtest/gtest.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel {
namespace {

TEST(ExecutorReuse, AlternatingFailuresAndSuccessesKeepMemoryFlat) {
  auto good = [] { return test::run(test::chain(10, {"test.map"}, {{"m0", {{"model_mib", 128}}}})); };
  auto bad = [] {
    return test::run(
        test::chain(10, {"test.map"}, {{"m0", {{"model_mib", 128}, {"fail_phase", "process"}, {"fail_frame", 5}}}}));
  };
  ASSERT_TRUE(good().ok());
  ASSERT_FALSE(bad().ok());
  release_cached_memory();
  std::uint64_t baseline = test::rss_bytes();
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(bad().ok());
    EXPECT_TRUE(good().ok());
  }
  std::uint64_t after = test::rss_bytes();
  EXPECT_LT(static_cast<double>(after), baseline * 1.05) << format_bytes(baseline) << " -> " << format_bytes(after);
}

TEST(ExecutorReuse, ReportsMemoryBeforeAndAfterEachRun) {
  RunResult r = test::run(test::chain(10, {"test.map"}, {{"m0", {{"model_mib", 128}, {"fail_phase", "finish"}}}}));
  ASSERT_FALSE(r.ok());
  EXPECT_GT(r.memory_before.host_rss_bytes, 0u);
  EXPECT_LT(static_cast<double>(r.memory_after.host_rss_bytes), r.memory_before.host_rss_bytes * 1.05 + 4e6);
  EXPECT_GT(r.peak_rss_bytes, r.memory_before.host_rss_bytes + 100ull * 1024 * 1024);
}

TEST(ExecutorReuse, PlanLoadsNothing) {
  fs::path journal = test::temp_dir() / "journal.txt";
  GraphSpec g =
      test::graph(test::chain(10, {"test.map"}, {{"m0", {{"journal", journal.string()}, {"model_mib", 64}}}}));
  RunResult plan = plan_graph(g, test::catalog(), {});
  ASSERT_TRUE(plan.ok());
  auto lines = test::read_lines(journal);
  EXPECT_GE(test::find_line(lines, "m0 configure"), 0);
  EXPECT_EQ(test::find_line(lines, "m0 load"), -1);
  ASSERT_EQ(plan.nodes[1].estimate.size(), 1u);
  EXPECT_EQ(plan.nodes[1].estimate[0].weight_bytes, 64ull * 1024 * 1024);
  ASSERT_TRUE(plan.edges[0].stream.has_value());
  EXPECT_EQ(plan.edges[0].stream->frame_count, 10);
}

}  // namespace
}  // namespace reel
