// The error path, exhaustively: every phase x exception x position in the graph. After each
// failure: every node was unloaded as the contract says, the error is classified and names the
// node, no partial output remains, host memory is back at its baseline, and the same process
// runs the next graph.
#include "test_support.h"

#include <reel/runtime/memory.h>

#include <gtest/gtest.h>

#include <tuple>

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel {
namespace {

constexpr int kFailingModelMib = 256;
constexpr int kOtherModelMib = 64;
const std::vector<std::string> kNodes = {"src", "m0", "sink"};

// What each injected exception must be classified as.
ErrorKind expected_kind(const std::string& fail_with) {
  return fail_with == "c10_oom" || fail_with == "bad_alloc" ? ErrorKind::out_of_memory : ErrorKind::internal;
}

class ExecutorErrorTest : public ::testing::TestWithParam<std::tuple<std::string, std::string, std::string>> {
 protected:
  static void SetUpTestSuite() {
    // Warm up libtorch, the allocator and the plugins so the baseline is the steady state.
    for (int i = 0; i < 2; ++i) ASSERT_TRUE(run_small_graph());
  }

  static bool run_small_graph() {
    fs::path dir = test::temp_dir("ok");
    json g = test::chain(5, {"test.map"},
                         {{"sink", {{"path", (dir / "out.txt").string()}}}, {"m0", {{"model_mib", kOtherModelMib}}}});
    RunResult r = test::run(g);
    return r.ok() && test::read_lines(dir / "out.txt").size() == 5;
  }
};

TEST_P(ExecutorErrorTest, UnloadsEveryNodeClassifiesAndRecovers) {
  const auto& [phase, fail_with, position] = GetParam();
  fs::path dir = test::temp_dir("fail");
  fs::path journal = dir / "journal.txt";
  fs::path output = dir / "out.txt";
  json params = json::object();
  for (const auto& id : kNodes)
    params[id] = {{"journal", journal.string()}, {"model_mib", id == position ? kFailingModelMib : kOtherModelMib}};
  params[position].update({{"fail_phase", phase}, {"fail_with", fail_with}, {"fail_frame", 2}});
  params["sink"]["path"] = output.string();

  release_cached_memory();
  std::uint64_t baseline = test::rss_bytes();
  RunResult r = test::run(test::chain(6, {"test.map"}, params));
  std::uint64_t after = test::rss_bytes();

  // Classified, and names where.
  ASSERT_FALSE(r.ok());
  const Failure& f = *r.failure;
  EXPECT_EQ(f.kind, expected_kind(fail_with)) << f.detail;
  EXPECT_EQ(f.node_id, position);
  EXPECT_EQ(f.plugin, "libreel_testkit.so");
  Phase expected_phase = phase == "configure" ? Phase::configure
                         : phase == "load"    ? Phase::load
                         : phase == "finish"  ? Phase::finish
                         : position == "src"  ? Phase::produce
                                              : Phase::process;
  EXPECT_EQ(f.phase, expected_phase) << to_string(f.phase);
  if (phase == "process") {
    ASSERT_TRUE(f.frame.has_value());
    EXPECT_EQ(*f.frame, 2);
  }
  EXPECT_NE(f.user_message().find("\"" + position + "\""), std::string::npos) << f.user_message();

  // Every node that was created was unloaded after the failure, and that was its last call;
  // after a configure failure nothing was ever loaded.
  std::vector<std::string> lines = test::read_lines(journal);
  int thrown = -1;
  for (std::size_t i = 0; i < lines.size() && thrown < 0; ++i)
    if (lines[i].rfind(position + " throw ", 0) == 0) thrown = static_cast<int>(i);
  ASSERT_GE(thrown, 0) << "the fault never fired";
  for (const auto& id : kNodes) {
    if (test::find_line(lines, id + " configure") < 0) {
      EXPECT_EQ(phase, "configure") << id << " was never configured";
      continue;
    }
    int last = test::last_line_of(lines, id);
    EXPECT_EQ(lines[last], id + " unload") << id << " ended with: " << lines[last];
    EXPECT_GT(last, thrown) << id << " was not unloaded after the failure";
    if (phase == "configure") {
      EXPECT_EQ(test::find_line(lines, id + " load"), -1) << id << " loaded before the run";
    }
  }
  for (const NodeReport& n : r.nodes) {
    bool never_created = phase == "configure" && test::find_line(lines, n.id + " configure") < 0;
    NodeState expected = never_created      ? NodeState::created
                         : n.id == position ? NodeState::failed
                                            : NodeState::unloaded;
    EXPECT_EQ(n.state, expected) << n.id << " " << to_string(n.state);
  }

  // No partial output: only the journal is left in the folder.
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_EQ(entry.path(), journal) << "left behind: " << entry.path();

  // Memory: the failing node's model was really resident during the run (so this check can
  // fail), and is gone afterwards.
  if (phase != "configure") {
    EXPECT_GT(r.peak_rss_bytes, baseline + (kFailingModelMib - 16) * 1024ull * 1024ull);
  }
  EXPECT_LT(static_cast<double>(after), baseline * 1.05)
      << "baseline " << format_bytes(baseline) << ", after " << format_bytes(after);

  // The process is healthy: the next graph runs.
  EXPECT_TRUE(run_small_graph());
}

std::string case_name(const ::testing::TestParamInfo<ExecutorErrorTest::ParamType>& info) {
  return std::get<0>(info.param) + "_" + std::get<1>(info.param) + "_in_" + std::get<2>(info.param);
}

INSTANTIATE_TEST_SUITE_P(EveryPhaseExceptionAndPosition, ExecutorErrorTest,
                         ::testing::Combine(::testing::Values("configure", "load", "process", "finish"),
                                            ::testing::Values("c10_oom", "bad_alloc", "c10_error", "runtime_error",
                                                              "non_std"),
                                            ::testing::Values("src", "m0", "sink")),
                         case_name);

// Errors a plugin classifies itself keep their kind through the executor.
TEST(ExecutorErrorKinds, PluginClassifiedErrorsKeepTheirKind) {
  const std::pair<std::string, ErrorKind> cases[] = {{"bad_input", ErrorKind::bad_input},
                                                     {"io", ErrorKind::io},
                                                     {"cuda_error", ErrorKind::device},
                                                     {"script_oom", ErrorKind::out_of_memory}};
  for (const auto& [fail_with, kind] : cases) {
    RunResult r =
        test::run(test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "process"}, {"fail_with", fail_with}}}}));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.failure->kind, kind) << fail_with;
  }
}

TEST(ExecutorErrorKinds, InvalidParamFromConfigurePointsAtTheField) {
  RunResult r =
      test::run(test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "configure"}, {"fail_with", "invalid_param"}}}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::invalid_graph);
  EXPECT_EQ(r.failure->pointer, "/nodes/1/params/fail_with");
  EXPECT_EQ(r.failure->file, "test.json");
}

}  // namespace
}  // namespace reel
