// OutputFile: a sink's output appears whole, at the end, or not at all.
#include "test_support.h"

#include <reel/error.h>
#include <reel/output_file.h>

#include <gtest/gtest.h>

#include <fstream>

namespace fs = std::filesystem;

namespace reel {
namespace {

TEST(OutputFile, CommitRenamesTheTemporaryOntoTheTarget) {
  fs::path dir = test::temp_dir();
  OutputFile out(dir / "video.mp4", false);
  EXPECT_EQ(out.temporary().extension(), ".mp4");
  EXPECT_EQ(out.temporary().parent_path(), dir);
  test::write_file(out.temporary(), "data");
  EXPECT_FALSE(fs::exists(dir / "video.mp4"));
  out.commit();
  EXPECT_TRUE(fs::exists(dir / "video.mp4"));
  EXPECT_FALSE(fs::exists(out.temporary()));
}

TEST(OutputFile, DestructionWithoutCommitLeavesNothing) {
  fs::path dir = test::temp_dir();
  {
    OutputFile out(dir / "video.mp4", false);
    test::write_file(out.temporary(), "partial");
  }
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST(OutputFile, ExistingTargetIsRefusedUnlessOverwriting) {
  fs::path dir = test::temp_dir();
  test::write_file(dir / "video.mp4", "old");
  try {
    OutputFile out(dir / "video.mp4", false);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.path(), (dir / "video.mp4").string());
    EXPECT_NE(e.hint().find("--overwrite"), std::string::npos);
  }
  OutputFile out(dir / "video.mp4", true);
  test::write_file(out.temporary(), "new");
  out.commit();
  EXPECT_EQ(test::read_lines(dir / "video.mp4").at(0), "new");
}

TEST(OutputFile, TargetThatAppearsDuringTheRunIsNotReplaced) {
  fs::path dir = test::temp_dir();
  OutputFile out(dir / "video.mp4", false);
  test::write_file(out.temporary(), "new");
  test::write_file(dir / "video.mp4", "someone else's");  // after the configure-time check
  EXPECT_THROW(out.commit(), IoError);
  EXPECT_EQ(test::read_lines(dir / "video.mp4").at(0), "someone else's");
}

TEST(OutputFile, WithdrawTakesBackACommittedOutput) {
  fs::path dir = test::temp_dir();
  OutputFile out(dir / "frame_0.png", false);
  test::write_file(out.temporary(), "data");
  out.commit();
  out.withdraw();
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST(OutputFile, MissingFolderIsRefusedNamingIt) {
  try {
    OutputFile out("/nonexistent/folder/video.mp4", false);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/folder"), std::string::npos);
  }
}

}  // namespace
}  // namespace reel
