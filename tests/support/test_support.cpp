#include "test_support.h"

#include <reel/runtime/memory.h>

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <gtest/gtest.h>
#include <cstdlib>

namespace fs = std::filesystem;

namespace reel::test {

const PluginCatalog& catalog() {
  static const PluginCatalog* loaded = [] {
    auto* c = new PluginCatalog();  // lives as long as the plugins it refers to: the process
    c->load_directory(REEL_PLUGIN_DIR);
    c->load_directory(REEL_TEST_PLUGIN_DIR);
    return c;
  }();
  return *loaded;
}

namespace {
struct TempRoot {
  fs::path path;
  TempRoot() {
    path = fs::temp_directory_path() / ("reel-test-" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
}  // namespace

fs::path temp_dir(const std::string& hint) {
  static TempRoot root;
  static std::atomic<int> counter{0};
  fs::path dir = root.path / (hint + "-" + std::to_string(counter++));
  fs::create_directories(dir);
  return dir;
}

GraphSpec graph(const nlohmann::json& document, const std::string& file) {
  return parse_graph_text(document.dump(), file);
}

nlohmann::json graph_json(const nlohmann::json& nodes) { return {{"version", 1}, {"nodes", nodes}}; }

nlohmann::json chain(std::int64_t frames, const std::vector<std::string>& middle_types, const nlohmann::json& params) {
  auto node_params = [&](const std::string& id, nlohmann::json base) {
    if (params.contains(id)) base.update(params[id]);
    return base;
  };
  nlohmann::json nodes = nlohmann::json::array();
  nodes.push_back({{"id", "src"}, {"type", "test.source"}, {"params", node_params("src", {{"frames", frames}})}});
  std::string previous = "src";
  for (std::size_t i = 0; i < middle_types.size(); ++i) {
    std::string id = std::to_string(i);
    id.insert(0, 1, 'm');
    nodes.push_back({{"id", id},
                     {"type", middle_types[i]},
                     {"inputs", {{"in", previous + ".out"}}},
                     {"params", node_params(id, nlohmann::json::object())}});
    previous = id;
  }
  nodes.push_back({{"id", "sink"},
                   {"type", "test.sink"},
                   {"inputs", {{"in", previous + ".out"}}},
                   {"params", node_params("sink", nlohmann::json::object())}});
  return graph_json(nodes);
}

RunResult run(const nlohmann::json& document, RunOptions options) {
  GraphSpec spec = graph(document);
  return run_graph(spec, catalog(), options);
}

std::vector<std::string> read_lines(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

int find_line(const std::vector<std::string>& lines, const std::string& line) {
  for (std::size_t i = 0; i < lines.size(); ++i)
    if (lines[i] == line) return static_cast<int>(i);
  return -1;
}

int count_lines(const std::vector<std::string>& lines, const std::string& line) {
  return static_cast<int>(std::count(lines.begin(), lines.end(), line));
}

int last_line_of(const std::vector<std::string>& lines, const std::string& id) {
  int last = -1;
  for (std::size_t i = 0; i < lines.size(); ++i)
    if (lines[i].rfind(id + " ", 0) == 0) last = static_cast<int>(i);
  return last;
}

std::uint64_t rss_bytes() { return host_rss_bytes(); }

void write_file(const fs::path& file, const std::string& text) { std::ofstream(file) << text; }

fs::path shared_dir() {
  if (const char* env = std::getenv("REEL_SHARED_DIR")) return fs::is_directory(env) ? fs::path(env) : fs::path();
  fs::path beside = fs::path(REEL_SOURCE_DIR).parent_path() / "shared";
  return fs::is_directory(beside) ? beside : fs::path();
}

fs::path shared_archive(const std::string& relative) {
  static std::mutex mutex;
  static std::map<std::string, fs::path> unpacked;
  std::lock_guard lock(mutex);
  if (shared_dir().empty() || !fs::exists(shared_dir() / relative)) return {};
  auto it = unpacked.find(relative);
  if (it != unpacked.end()) return it->second;
  fs::path dir = temp_dir("archive");
  std::string command = "tar -xf '" + (shared_dir() / relative).string() + "' -C '" + dir.string() + "'";
  if (std::system(command.c_str()) != 0) return {};
  return unpacked[relative] = dir;
}

void python_fixture(const std::string& arguments, const std::string& script) {
  std::string command =
      "/usr/bin/python3 " + (fs::path(REEL_SOURCE_DIR) / "tests/fixtures" / script).string() + " " + arguments;
  int status = std::system(command.c_str());
  ASSERT_EQ(status, 0) << command;
}

}  // namespace reel::test
