// The plugin loader refuses what it cannot use, says why, and names the files involved.
#include "test_support.h"

#include <reel/error.h>
#include <reel/runtime/plugin_catalog.h>

#include <gtest/gtest.h>

#include <cstdlib>

namespace fs = std::filesystem;

namespace reel {
namespace {

const fs::path kBad = REEL_BAD_PLUGIN_DIR;
const fs::path kTestkit = fs::path(REEL_TEST_PLUGIN_DIR) / "libreel_testkit.so";

std::string refusal(PluginCatalog& catalog, const fs::path& file) {
  try {
    catalog.load_library(file);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::plugin);
    return e.what();
  }
  ADD_FAILURE() << file << " was accepted";
  return {};
}

TEST(PluginLoader, LoadsTheTestkitTypes) {
  PluginCatalog catalog;
  catalog.load_library(kTestkit);
  ASSERT_NE(catalog.find("test.source"), nullptr);
  EXPECT_EQ(catalog.find("test.source")->plugin_file, kTestkit);
  EXPECT_TRUE(catalog.refused().empty());
}

TEST(PluginLoader, WrongAbiIsRefusedWithBothVersionsBeforeRegistering) {
  PluginCatalog catalog;
  fs::path file = kBad / "bad_abi" / "libreel_test_bad_abi.so";
  std::string message = refusal(catalog, file);
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  EXPECT_NE(message.find("the plugin has ABI 999.0 (reel 9.9.9"), std::string::npos) << message;
  EXPECT_NE(message.find("this reel has ABI " + std::to_string(REEL_ABI_MAJOR) + "." + std::to_string(REEL_ABI_MINOR) +
                         " (reel " REEL_VERSION_STRING),
            std::string::npos)
      << message;
  EXPECT_EQ(catalog.find("test.never_registered"), nullptr);  // its register function never ran
  EXPECT_TRUE(catalog.types().empty());
}

TEST(PluginLoader, LibraryWithoutEntryPointIsRefused) {
  PluginCatalog catalog;
  fs::path file = kBad / "no_entry" / "libreel_test_no_entry.so";
  std::string message = refusal(catalog, file);
  EXPECT_NE(message.find(file.string()), std::string::npos);
  EXPECT_NE(message.find("no reel entry point"), std::string::npos) << message;
}

TEST(PluginLoader, DuplicateTypeIsRefusedNamingBothFiles) {
  PluginCatalog catalog;
  catalog.load_library(kTestkit);
  fs::path file = kBad / "duplicate" / "libreel_test_duplicate.so";
  std::string message = refusal(catalog, file);
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  EXPECT_NE(message.find(kTestkit.string()), std::string::npos) << message;
  EXPECT_NE(message.find("test.source"), std::string::npos);
  EXPECT_EQ(catalog.find("test.source")->plugin_file, kTestkit);  // the first one stays
}

TEST(PluginLoader, MissingOrNonLibraryFileIsRefused) {
  PluginCatalog catalog;
  EXPECT_NE(refusal(catalog, "/nonexistent/libx.so").find("/nonexistent/libx.so"), std::string::npos);
  fs::path text = test::temp_dir() / "libtext.so";
  test::write_file(text, "not an ELF file");
  EXPECT_NE(refusal(catalog, text).find("could not be loaded"), std::string::npos);
}

TEST(PluginLoader, DirectoryLoadRecordsRefusalsAndKeepsGoing) {
  fs::path dir = test::temp_dir("plugins");
  fs::copy_file(kTestkit, dir / "a_testkit.so");
  fs::copy_file(kBad / "bad_abi" / "libreel_test_bad_abi.so", dir / "b_bad_abi.so");
  fs::copy_file(kBad / "no_entry" / "libreel_test_no_entry.so", dir / "c_no_entry.so");
  test::write_file(dir / "README.txt", "ignored: not a .so");
  PluginCatalog catalog;
  catalog.load_directory(dir);
  EXPECT_NE(catalog.find("test.source"), nullptr);
  ASSERT_EQ(catalog.refused().size(), 2u);
  EXPECT_EQ(catalog.refused()[0].plugin_file, dir / "b_bad_abi.so");
  EXPECT_EQ(catalog.refused()[1].plugin_file, dir / "c_no_entry.so");
}

TEST(PluginLoader, MissingDirectoryIsIgnored) {
  PluginCatalog catalog;
  catalog.load_directory("/nonexistent/plugins");
  EXPECT_TRUE(catalog.types().empty());
  EXPECT_TRUE(catalog.refused().empty());
}

TEST(PluginLoader, SearchPathPutsTheEnvironmentFirstThenTheInstallFolder) {
  ::setenv("REEL_PLUGIN_PATH", "/first:/second", 1);
  std::vector<fs::path> path = default_plugin_path();
  ::unsetenv("REEL_PLUGIN_PATH");
  ASSERT_EQ(path.size(), 3u);
  EXPECT_EQ(path[0], "/first");
  EXPECT_EQ(path[1], "/second");
  EXPECT_EQ(path[2].filename(), "plugins");
  EXPECT_EQ(path[2].parent_path().filename(), "reel");
}

}  // namespace
}  // namespace reel
