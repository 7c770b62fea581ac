// Frame order is preserved: through concurrent nodes, multi-frame emission and fan-out.
#include "test_support.h"

#include <gtest/gtest.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel {
namespace {

// The testkit sink throws on an out-of-order frame; its file also lists the source index of each.
void expect_in_order(const fs::path& file, std::int64_t frames, std::int64_t copies = 1) {
  auto lines = test::read_lines(file);
  ASSERT_EQ(static_cast<std::int64_t>(lines.size()), frames * copies);
  for (std::int64_t i = 0; i < frames * copies; ++i)
    EXPECT_EQ(lines[i], std::to_string(i) + " " + std::to_string(i / copies)) << "line " << i;
}

TEST(ExecutorOrdering, ConcurrentNodeDeliversInInputOrder) {
  fs::path out = test::temp_dir() / "out.txt";
  // Frames take uneven time (every third one is slower), so concurrent calls finish out of order.
  RunResult r = test::run(
      test::chain(120, {"test.parallel_map"}, {{"m0", {{"delay_us", 500}}}, {"sink", {{"path", out.string()}}}}),
      RunOptions{.threads = 4});
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  expect_in_order(out, 120);
}

TEST(ExecutorOrdering, SeveralFramesPerCallKeepOrder) {
  fs::path out = test::temp_dir() / "out.txt";
  RunResult r =
      test::run(test::chain(40, {"test.parallel_map", "test.map"},
                            {{"m0", {{"copies", 3}, {"delay_us", 200}}}, {"sink", {{"path", out.string()}}}}));
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  expect_in_order(out, 40, 3);
}

TEST(ExecutorOrdering, FanOutGivesEveryConsumerEveryFrameInOrder) {
  fs::path dir = test::temp_dir();
  json g = test::graph_json({
      {{"id", "src"}, {"type", "test.source"}, {"params", {{"frames", 50}}}},
      {{"id", "fast"}, {"type", "test.map"}, {"inputs", {{"in", "src.out"}}}},
      {{"id", "slow"}, {"type", "test.parallel_map"}, {"inputs", {{"in", "src.out"}}}, {"params", {{"delay_us", 300}}}},
      {{"id", "a"},
       {"type", "test.sink"},
       {"inputs", {{"in", "fast.out"}}},
       {"params", {{"path", (dir / "a.txt").string()}}}},
      {{"id", "b"},
       {"type", "test.sink"},
       {"inputs", {{"in", "slow.out"}}},
       {"params", {{"path", (dir / "b.txt").string()}}}},
  });
  RunResult r = test::run(g, RunOptions{.edge_capacity = 2});
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  expect_in_order(dir / "a.txt", 50);
  expect_in_order(dir / "b.txt", 50);
}

// An empty stream flows to the end (every node before the sink finishes), but a sink that got no
// frame at all fails instead of writing an empty file and calling it a success.
TEST(ExecutorOrdering, EmptyStreamFinishesTheNodesButTheSinkRefusesToWriteNothing) {
  fs::path dir = test::temp_dir();
  fs::path journal = dir / "journal.txt";
  RunResult r = test::run(test::chain(
      0, {"test.map"},
      {{"m0", {{"journal", journal.string()}}},
       {"sink", {{"path", (dir / "out.txt").string()}, {"journal", journal.string()}}}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::bad_input);
  EXPECT_EQ(r.failure->node_id, "sink");
  EXPECT_NE(r.failure->reason.find("no frames reached it"), std::string::npos) << r.failure->reason;
  EXPECT_NE(test::find_line(test::read_lines(journal), "m0 finish"), -1);
  EXPECT_EQ(test::find_line(test::read_lines(journal), "sink load"), -1) << "the sink is failed before it loads";
  EXPECT_FALSE(fs::exists(dir / "out.txt"));
}

// frame_count is a promise: breaking it either way is the emitting node's bug, caught where it
// happens, and the sink commits nothing.
TEST(ExecutorOrdering, AStreamLengthPromiseBrokenEitherWayFailsTheNodeThatMadeIt) {
  for (int offset : {3, -3}) {
    fs::path out = test::temp_dir() / "out.txt";
    RunResult r = test::run(
        test::chain(6, {"test.map"}, {{"m0", {{"promise_offset", offset}}}, {"sink", {{"path", out.string()}}}}));
    ASSERT_FALSE(r.ok()) << offset;
    EXPECT_EQ(r.failure->kind, ErrorKind::internal);
    EXPECT_EQ(r.failure->node_id, "m0");
    const std::string how = offset > 0 ? "fewer than the 9 frames" : "more than the 3 frames";
    EXPECT_NE(r.failure->reason.find(how), std::string::npos) << r.failure->reason;
    EXPECT_NE(r.failure->reason.find("output 'out' promised"), std::string::npos) << r.failure->reason;
    EXPECT_FALSE(fs::exists(out)) << offset;
  }
}

}  // namespace
}  // namespace reel
