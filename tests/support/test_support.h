#pragma once
// Shared helpers: the catalog with the test plugins, temporary folders, graphs from JSON,
// journals written by the testkit plugin.

#include <reel/runtime/executor.h>
#include <reel/runtime/graph.h>
#include <reel/runtime/plugin_catalog.h>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace reel::test {

// The in-tree plugins and the testkit plugin, loaded once per process.
const PluginCatalog& catalog();

// A fresh empty folder under the system temp folder, removed at process exit.
std::filesystem::path temp_dir(const std::string& hint = "t");

GraphSpec graph(const nlohmann::json& document, const std::string& file = "test.json");

// {"version": 1, "nodes": nodes}
nlohmann::json graph_json(const nlohmann::json& nodes);

// A linear graph source -> map... -> sink with the testkit nodes; params per node id.
nlohmann::json chain(std::int64_t frames, const std::vector<std::string>& middle_types,
                     const nlohmann::json& params = nlohmann::json::object());

RunResult run(const nlohmann::json& document, RunOptions options = {});

std::vector<std::string> read_lines(const std::filesystem::path& file);

// Index of the first journal line equal to `line`, or -1.
int find_line(const std::vector<std::string>& lines, const std::string& line);
int count_lines(const std::vector<std::string>& lines, const std::string& line);
// Index of the last journal line of node `id` ("id ..."), or -1.
int last_line_of(const std::vector<std::string>& lines, const std::string& id);

std::uint64_t rss_bytes();

// The shared ground truth (real weights and reference outputs): $REEL_SHARED_DIR, or the folder
// `shared` beside the source tree. Empty when absent; tests that need it then skip, loudly.
std::filesystem::path shared_dir();
#define REEL_REQUIRE_SHARED(relative)                                                                  \
  do {                                                                                                 \
    if (::reel::test::shared_dir().empty() || !std::filesystem::exists(::reel::test::shared_dir() / (relative))) { \
      std::fprintf(stderr, "\n*** SKIPPED: %s is missing: set REEL_SHARED_DIR ***\n\n", relative);   \
      GTEST_SKIP() << relative << " is missing";                                                       \
    }                                                                                                  \
  } while (0)

// A tar archive of the shared folder (e.g. "reference/rife/weights.tar.xz") unpacked once per
// process into a temporary folder, which is returned. Empty when the shared folder is absent.
std::filesystem::path shared_archive(const std::string& relative);

// A NumPy .npy file (format 1.0-3.0, little-endian f4/f8/i8/i4/u1/b1, C order) as a CPU tensor of
// its dtype and shape. Fails the test and returns an undefined tensor when it cannot.
at::Tensor read_npy(const std::filesystem::path& file);

// Runs tests/fixtures/<script> (Debian's python3-torch) with `arguments`; fails the test on a
// non-zero exit.
void python_fixture(const std::string& arguments, const std::string& script = "checkpoints.py");
void write_file(const std::filesystem::path& file, const std::string& text);

}  // namespace reel::test
