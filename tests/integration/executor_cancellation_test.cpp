// Cancellation (what SIGINT does): the run stops quickly, every node is unloaded, partial
// outputs are removed, and the failure says "cancelled".
#include "test_support.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel {
namespace {

TEST(ExecutorCancellation, CancelMidStreamCleansUpAndSaysCancelled) {
  fs::path dir = test::temp_dir();
  fs::path journal = dir / "journal.txt";
  std::atomic<bool> cancel{false};
  RunOptions options;
  options.cancel = &cancel;
  json params = {{"src", {{"journal", journal.string()}}},
                 {"m0", {{"journal", journal.string()}, {"model_mib", 32}}},
                 {"sink", {{"journal", journal.string()}, {"delay_us", 5000}, {"path", (dir / "out.txt").string()}}}};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    cancel = true;
  });
  auto start = std::chrono::steady_clock::now();
  RunResult r = test::run(test::chain(2000, {"test.map"}, params), options);  // 10 s if not cancelled
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  canceller.join();

  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.cancelled());
  EXPECT_LT(seconds, 3.0);
  auto lines = test::read_lines(journal);
  for (const char* id : {"src", "m0", "sink"}) {
    EXPECT_GE(test::find_line(lines, std::string(id) + " discard_outputs"), 0) << id;
    int last = test::last_line_of(lines, id);
    ASSERT_GE(last, 0) << id;
    EXPECT_EQ(lines[last], std::string(id) + " unload");
  }
  for (const auto& entry : fs::directory_iterator(dir)) EXPECT_EQ(entry.path(), journal) << entry.path();
}

TEST(ExecutorCancellation, CancelBeforeStartRunsNothing) {
  std::atomic<bool> cancel{true};
  RunOptions options;
  options.cancel = &cancel;
  RunResult r = test::run(test::chain(5, {"test.map"}), options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::cancelled);
  for (const NodeReport& n : r.nodes) EXPECT_EQ(n.frames_out, 0) << n.id;  // cancelled before any work
}

TEST(ExecutorCancellation, EmitterReportsTheStopFlag) {
  std::atomic<bool> stop{false};
  Emitter out(&stop);
  EXPECT_FALSE(out.cancelled());
  stop = true;
  EXPECT_TRUE(out.cancelled());
  EXPECT_FALSE(Emitter().cancelled());
}

}  // namespace
}  // namespace reel
