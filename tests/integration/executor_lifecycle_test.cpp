// Lazy load, progressive unload, guarded cleanup, and degrade-and-retry after out of memory.
#include "test_support.h"

#include <gtest/gtest.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel {
namespace {

json journal_everywhere(const fs::path& journal, json extra = json::object()) {
  json p = json::object();
  for (const char* id : {"src", "m0", "sink"}) p[id] = {{"journal", journal.string()}};
  for (auto& [id, values] : extra.items()) p[id].update(values);
  return p;
}

TEST(ExecutorLifecycle, LoadsLazilyJustBeforeFirstWork) {
  fs::path journal = test::temp_dir() / "journal.txt";
  RunResult r = test::run(test::chain(5, {"test.map"}, journal_everywhere(journal)));
  ASSERT_TRUE(r.ok());
  auto lines = test::read_lines(journal);
  // Every node is configured before any node loads.
  int last_configure = std::max({test::find_line(lines, "src configure"), test::find_line(lines, "m0 configure"),
                                 test::find_line(lines, "sink configure")});
  for (const char* id : {"src", "m0", "sink"})
    EXPECT_GT(test::find_line(lines, std::string(id) + " load"), last_configure);
  // A consumer loads only once its first frame exists, and exactly once.
  EXPECT_GT(test::find_line(lines, "m0 load"), test::find_line(lines, "src produce 0"));
  EXPECT_LT(test::find_line(lines, "m0 load"), test::find_line(lines, "m0 process 0"));
  EXPECT_GT(test::find_line(lines, "sink load"), test::find_line(lines, "m0 process 0"));
  for (const char* id : {"src", "m0", "sink"}) EXPECT_EQ(test::count_lines(lines, std::string(id) + " load"), 1);
}

TEST(ExecutorLifecycle, ConcurrentNodeWhoseLoadFailsIsNotLoadedAgain) {
  fs::path journal = test::temp_dir() / "journal.txt";
  RunOptions options;
  options.threads = 4;
  RunResult r = test::run(
      test::chain(20, {"test.parallel_map"}, journal_everywhere(journal, {{"m0", {{"fail_phase", "load"}}}})), options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->phase, Phase::load);
  EXPECT_EQ(test::count_lines(test::read_lines(journal), "m0 load"), 1);
  EXPECT_EQ(r.nodes[1].state, NodeState::failed);
}

TEST(ExecutorLifecycle, ThrowingObserverFailsTheRunInsteadOfEscaping) {
  struct Throwing : RunObserver {
    void on_progress(const std::string&, std::int64_t frames, std::optional<std::int64_t>) override {
      if (frames == 3) throw std::runtime_error("observer broke");
    }
  } observer;
  fs::path journal = test::temp_dir() / "journal.txt";
  RunOptions options;
  options.observer = &observer;
  RunResult r = test::run(test::chain(10, {"test.map"}, journal_everywhere(journal)), options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::internal);
  EXPECT_NE(r.failure->reason.find("observer broke"), std::string::npos);
  auto lines = test::read_lines(journal);
  for (const char* id : {"src", "m0", "sink"})
    EXPECT_EQ(lines.at(test::last_line_of(lines, id)), std::string(id) + " unload");
  EXPECT_TRUE(test::run(test::chain(3, {"test.map"})).ok());
}

TEST(ExecutorLifecycle, NodeDownstreamOfAnEarlyFailureNeverLoads) {
  fs::path journal = test::temp_dir() / "journal.txt";
  RunResult r =
      test::run(test::chain(5, {"test.map"}, journal_everywhere(journal, {{"src", {{"fail_phase", "load"}}}})));
  ASSERT_FALSE(r.ok());
  auto lines = test::read_lines(journal);
  EXPECT_EQ(test::find_line(lines, "m0 load"), -1);
  EXPECT_EQ(test::find_line(lines, "sink load"), -1);
  EXPECT_GE(test::find_line(lines, "sink unload"), 0);  // unloaded all the same: legal unloaded
}

TEST(ExecutorLifecycle, UnloadsEachNodeAsSoonAsItFinished) {
  fs::path journal = test::temp_dir() / "journal.txt";
  RunResult r = test::run(test::chain(30, {"test.map"}, journal_everywhere(journal, {{"sink", {{"delay_us", 3000}}}})));
  ASSERT_TRUE(r.ok());
  auto lines = test::read_lines(journal);
  int src_unload = test::find_line(lines, "src unload");
  int m0_unload = test::find_line(lines, "m0 unload");
  int sink_last = test::find_line(lines, "sink process 29");
  ASSERT_GE(src_unload, 0);
  // The source and the map are gone while the slow sink is still working.
  EXPECT_LT(src_unload, sink_last);
  EXPECT_LT(m0_unload, sink_last);
  EXPECT_LT(src_unload, m0_unload);
  EXPECT_GT(test::find_line(lines, "sink unload"), test::find_line(lines, "sink finish"));
  for (const NodeReport& n : r.nodes) EXPECT_EQ(n.state, NodeState::unloaded) << n.id;
}

TEST(ExecutorLifecycle, ThrowingUnloadIsLoggedAndDoesNotStopTheOthers) {
  fs::path journal = test::temp_dir() / "journal.txt";
  RunResult r =
      test::run(test::chain(4, {"test.map"}, journal_everywhere(journal, {{"m0", {{"fail_phase", "unload"}}}})));
  EXPECT_TRUE(r.ok());  // the outputs are complete; the plugin bug is reported, not fatal
  EXPECT_NE(r.nodes[1].cleanup_error.find("injected failure in unload"), std::string::npos) << r.nodes[1].cleanup_error;
  auto lines = test::read_lines(journal);
  EXPECT_GE(test::find_line(lines, "sink unload"), 0);
}

TEST(ExecutorLifecycle, ThrowingCleanupDuringAFailureStillUnloadsEveryone) {
  fs::path journal = test::temp_dir() / "journal.txt";
  RunResult r = test::run(test::chain(
      4, {"test.map"},
      journal_everywhere(journal, {{"m0", {{"fail_phase", "discard"}}}, {"sink", {{"fail_phase", "process"}}}})));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->node_id, "sink");
  auto lines = test::read_lines(journal);
  int thrown = test::find_line(lines, "sink throw runtime_error 0");
  for (const char* id : {"src", "m0", "sink"}) {
    int last = test::last_line_of(lines, id);
    EXPECT_EQ(lines.at(last), std::string(id) + " unload") << id;
    EXPECT_GT(last, thrown) << id;
  }
  EXPECT_NE(r.nodes[1].cleanup_error.find("discard_outputs"), std::string::npos);
}

TEST(ExecutorLifecycle, OutOfMemoryDegradesAndRetriesTheSameFrame) {
  fs::path journal = test::temp_dir() / "journal.txt";
  fs::path out = test::temp_dir() / "out.txt";
  RunResult r = test::run(test::chain(5, {"test.map"},
                                      journal_everywhere(journal, {{"m0",
                                                                    {{"fail_phase", "process"},
                                                                     {"fail_with", "c10_oom"},
                                                                     {"fail_frame", 3},
                                                                     {"fail_times", 2},
                                                                     {"degradable", true}}},
                                                                   {"sink", {{"path", out.string()}}}})));
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  EXPECT_EQ(r.nodes[1].oom_retries, 2);
  auto lines = test::read_lines(journal);
  EXPECT_EQ(test::count_lines(lines, "m0 degrade"), 2);
  EXPECT_EQ(test::count_lines(lines, "m0 process 3"), 3);  // the same frame, three times
  EXPECT_EQ(test::read_lines(out).size(), 5u);             // and no frame lost or doubled
}

TEST(ExecutorLifecycle, OutOfMemoryRetriesAreBounded) {
  fs::path journal = test::temp_dir() / "journal.txt";
  RunOptions options;
  options.max_oom_retries = 3;
  RunResult r = test::run(
      test::chain(5, {"test.map"},
                  journal_everywhere(
                      journal, {{"m0", {{"fail_phase", "process"}, {"fail_with", "c10_oom"}, {"degradable", true}}}})),
      options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::out_of_memory);
  EXPECT_EQ(test::count_lines(test::read_lines(journal), "m0 degrade"), 3);
}

TEST(ExecutorLifecycle, NodeThatCannotDegradeFailsAtOnce) {
  fs::path journal = test::temp_dir() / "journal.txt";
  RunResult r = test::run(test::chain(
      5, {"test.map"}, journal_everywhere(journal, {{"m0", {{"fail_phase", "process"}, {"fail_with", "bad_alloc"}}}})));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::out_of_memory);
  EXPECT_EQ(test::count_lines(test::read_lines(journal), "m0 degrade"), 1);
  EXPECT_EQ(r.nodes[1].oom_retries, 0);
}

TEST(ExecutorLifecycle, MemoryBudgetRefusesBeforeLoading) {
  fs::path journal = test::temp_dir() / "journal.txt";
  RunOptions options;
  options.memory_budget = 100ull * 1024 * 1024;
  json params = journal_everywhere(journal, {{"m0", {{"model_mib", 80}}}, {"sink", {{"model_mib", 40}}}});
  RunResult r = test::run(test::chain(3, {"test.map"}, params), options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::out_of_memory);
  EXPECT_EQ(r.failure->phase, Phase::plan);
  EXPECT_NE(r.failure->reason.find("120.0 MiB"), std::string::npos) << r.failure->reason;
  for (const auto& line : test::read_lines(journal)) EXPECT_EQ(line.find(" load"), std::string::npos) << line;

  options.memory_budget = 130ull * 1024 * 1024;  // fits
  EXPECT_TRUE(test::run(test::chain(3, {"test.map"}, params), options).ok());
}

}  // namespace
}  // namespace reel

namespace reel {
namespace {

// An optional input left unconnected: the node is driven as a source.
TEST(ExecutorOptionalInputs, UnconnectedOptionalInputMakesTheNodeASource) {
  fs::path out = test::temp_dir() / "out.txt";
  RunResult r = test::run(test::graph_json(
      {{{"id", "gen"}, {"type", "test.conditioned"}, {"params", {{"frames", 4}}}},
       {{"id", "sink"}, {"type", "test.sink"}, {"inputs", {{"in", "gen.out"}}}, {"params", {{"path", out.string()}}}}}));
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  EXPECT_EQ(test::read_lines(out), (std::vector<std::string>{"0 0", "1 1", "2 2", "3 3"}));
}

// Connected, the node takes its whole input through process(), then hands its output on through
// produce() calls, one frame each, before finish().
TEST(ExecutorOptionalInputs, NodeWithInputsProducesAfterTheyEnded) {
  fs::path journal = test::temp_dir() / "journal.txt", out = test::temp_dir() / "out.txt";
  RunResult r = test::run(test::chain(5, {"test.conditioned"},
                                      journal_everywhere(journal, {{"sink", {{"path", out.string()}}}})),
                          RunOptions{.edge_capacity = 1});
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  // 5 input frames, so the 3 produced ones count from 5.
  EXPECT_EQ(test::read_lines(out), (std::vector<std::string>{"0 5", "1 6", "2 7"}));
  auto lines = test::read_lines(journal);
  EXPECT_GT(test::find_line(lines, "m0 produce 0"), test::find_line(lines, "m0 process 4"));
  EXPECT_LT(test::find_line(lines, "m0 produce 2"), test::find_line(lines, "m0 finish"));
  // Handed on piece by piece: with room for one frame on the edge, the third frame can only be
  // made once the sink has taken the first.
  EXPECT_LT(test::find_line(lines, "sink process 0"), test::find_line(lines, "m0 produce 2"));
}

TEST(ExecutorOptionalInputs, FailureWhileProducingAfterInputsUnloadsEveryNode) {
  fs::path journal = test::temp_dir() / "journal.txt";
  // One input frame (index 0), so fail_frame 1 fires in the second produce() call only.
  RunResult r = test::run(test::chain(
      1, {"test.conditioned"},
      journal_everywhere(journal, {{"m0", {{"fail_phase", "process"}, {"fail_frame", 1}, {"frames", 3}}}})));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->node_id, "m0");
  auto lines = test::read_lines(journal);
  EXPECT_GE(test::find_line(lines, "m0 throw runtime_error 1"), 0);
  EXPECT_GT(test::find_line(lines, "m0 produce 1"), test::find_line(lines, "m0 process 0"));
  for (const char* id : {"src", "m0", "sink"}) EXPECT_GE(test::find_line(lines, std::string(id) + " unload"), 0) << id;
}

// A required input is still required.
TEST(ExecutorOptionalInputs, RequiredInputLeftUnconnectedIsStillAGraphError) {
  RunResult r = test::run(test::graph_json({{{"id", "sink"}, {"type", "test.sink"}}}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.failure->reason.find("not connected"), std::string::npos) << r.failure->reason;
}

}  // namespace
}  // namespace reel
