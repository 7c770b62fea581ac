// A plugin that breaks the SDK's contract is caught where it does so and named: frames that do not
// match the stream it declared, impossible stream descriptions, and exception messages that are
// huge, full of terminal escape sequences, invalid UTF-8, or null.
#include "test_support.h"

#include <reel/runtime/report.h>

#include <gtest/gtest.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel {
namespace {

// src (8x8 RGB) -> m0 (test.map with `m0_params`) -> sink writing to `out`.
RunResult run_with_m0(const json& m0_params, const fs::path& out) {
  return test::run(test::chain(4, {"test.map"}, {{"m0", m0_params}, {"sink", {{"path", out.string()}}}}));
}

TEST(PluginMisbehaviour, FramesThatDoNotMatchTheDeclaredStreamBlameTheNodeThatEmittedThem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"float", "a float32 tensor of shape [3, 8, 8]"},
      {"one_channel", "a uint8 tensor of shape [1, 8, 8]"},
      {"four_channels", "a uint8 tensor of shape [4, 8, 8]"},
      {"wrong_size", "a uint8 tensor of shape [3, 4, 8]"},
      {"undefined", "an undefined tensor"},
  };
  for (const auto& [emit, says] : cases) {
    fs::path out = test::temp_dir() / "out.txt";
    RunResult r = run_with_m0({{"emit", emit}}, out);
    ASSERT_FALSE(r.ok()) << emit;
    EXPECT_EQ(r.failure->kind, ErrorKind::internal) << emit;
    EXPECT_EQ(r.failure->node_id, "m0") << emit << ": the emitter is blamed, not the next node";
    EXPECT_EQ(r.failure->phase, Phase::process) << emit;
    EXPECT_NE(r.failure->reason.find("emitted frame 0 on output 'out' as " + says), std::string::npos)
        << r.failure->reason;
    if (emit != "undefined")
      EXPECT_NE(r.failure->reason.find("needs a uint8 tensor of shape [3, 8, 8]"), std::string::npos)
          << r.failure->reason;
    EXPECT_FALSE(fs::exists(out)) << emit;
  }
}

// upscaler.resize hands frame memory to libswscale: a frame of the wrong shape must never get
// there, whoever made it.
TEST(PluginMisbehaviour, AOneChannelFrameNeverReachesLibswscale) {
  fs::path out = test::temp_dir() / "out.txt";
  json g = test::graph_json(
      {{{"id", "src"}, {"type", "test.source"}, {"params", {{"frames", 3}}}},
       {{"id", "m0"}, {"type", "test.map"}, {"inputs", {{"in", "src.out"}}}, {"params", {{"emit", "one_channel"}}}},
       {{"id", "up"}, {"type", "upscaler.resize"}, {"inputs", {{"in", "m0.out"}}}, {"params", {{"scale", 2}}}},
       {{"id", "sink"}, {"type", "test.sink"}, {"inputs", {{"in", "up.out"}}}, {"params", {{"path", out.string()}}}}});
  RunResult r = test::run(g);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->node_id, "m0");
  EXPECT_EQ(r.nodes[2].frames_in, 0) << "resize never received the frame";
}

TEST(PluginMisbehaviour, ImpossibleStreamDescriptionsBlameTheNodeThatMadeThem) {
  const std::vector<std::pair<std::string, std::string>> cases = {{"zero_size", "width and height must be"},
                                                                  {"zero_fps", "frame rate must be positive"},
                                                                  {"negative_count", "must not be negative"}};
  for (const auto& [describe, says] : cases) {
    RunResult r = run_with_m0({{"describe", describe}}, test::temp_dir() / "out.txt");
    ASSERT_FALSE(r.ok()) << describe;
    EXPECT_EQ(r.failure->kind, ErrorKind::internal);
    EXPECT_EQ(r.failure->node_id, "m0") << describe;
    EXPECT_EQ(r.failure->phase, Phase::configure);
    EXPECT_NE(r.failure->reason.find("configure() described output 'out' as"), std::string::npos) << r.failure->reason;
    EXPECT_NE(r.failure->reason.find(says), std::string::npos) << r.failure->reason;
  }
}

TEST(PluginMisbehaviour, AHugeMessageIsCutOnTheTerminalAndKeptWholeInTheReport) {
  RunResult r = run_with_m0({{"fail_phase", "process"}, {"fail_with", "long_message"}}, test::temp_dir() / "o.txt");
  ASSERT_FALSE(r.ok());
  const std::string shown = r.failure->user_message();
  EXPECT_LT(shown.size(), 1500u);
  EXPECT_NE(shown.find("more bytes; the full text is in the log and the run report"), std::string::npos);
  EXPECT_GT(r.failure->detail.size(), 1u << 20) << "the report keeps everything";
  EXPECT_EQ(r.failure->node_id, "m0");
}

TEST(PluginMisbehaviour, EscapeSequencesAndInvalidUtf8AreMadeHarmless) {
  RunResult r = run_with_m0({{"fail_phase", "process"}, {"fail_with", "hostile_message"}}, test::temp_dir() / "o.txt");
  ASSERT_FALSE(r.ok());
  for (const std::string& text : {r.failure->user_message(), r.failure->detail}) {
    EXPECT_EQ(text.find('\x1b'), std::string::npos) << "no raw escape reaches a terminal";
    EXPECT_EQ(text.find('\a'), std::string::npos);
    EXPECT_NE(text.find("\\x1b[2J"), std::string::npos) << text;
    EXPECT_NE(text.find("\xef\xbf\xbd"), std::string::npos) << "invalid bytes become U+FFFD";
  }
  // The report is strict JSON: dumping it without a lenient handler must not throw.
  EXPECT_NO_THROW(run_report(r).dump());
}

TEST(PluginMisbehaviour, AnExceptionWithANullMessageKeepsWhereItHappened) {
  RunResult r = run_with_m0({{"fail_phase", "process"}, {"fail_with", "null_what"}, {"fail_frame", 2}},
                            test::temp_dir() / "o.txt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->node_id, "m0");
  EXPECT_EQ(r.failure->phase, Phase::process);
  EXPECT_EQ(r.failure->frame, 2);
  EXPECT_NE(r.failure->reason.find("(no message)"), std::string::npos) << r.failure->reason;
  EXPECT_NE(r.failure->detail.find("NullWhat"), std::string::npos) << r.failure->detail;
}

TEST(PluginMisbehaviour, PrintableTextRepairsEveryKindOfBadByte) {
  EXPECT_EQ(printable_text("plain ASCII, tab\tand newline\n"), "plain ASCII, tab\tand newline\n");
  EXPECT_EQ(printable_text("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xa5"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xa5");
  EXPECT_EQ(printable_text("\x1b[31m\x07\x7f"), "\\x1b[31m\\x07\\x7f");
  EXPECT_EQ(printable_text("\xff"), "\xef\xbf\xbd");
  EXPECT_EQ(printable_text("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");  // overlong '/'
  EXPECT_EQ(printable_text("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
  EXPECT_EQ(printable_text("\xe2\x82"), "\xef\xbf\xbd\xef\xbf\xbd");  // cut short
  EXPECT_EQ(printable_text("\xc2\x9b"), "\\x9b");  // C1 CSI
  EXPECT_NO_THROW(json(printable_text(std::string("\xfe\xf8\x80\xc1", 4))).dump());
}

}  // namespace
}  // namespace reel
