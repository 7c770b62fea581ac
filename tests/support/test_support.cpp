#include "test_support.h"

#include <ATen/ATen.h>

#include <reel/runtime/memory.h>

#include <unistd.h>

#include <atomic>
#include <cstring>
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

at::Tensor read_npy(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
    ADD_FAILURE() << file << " is not a .npy file";
    return {};
  }
  const bool v1 = bytes[6] == 1;
  std::size_t header_size = v1 ? static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8)
                                 : static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8) |
                                       (static_cast<std::size_t>(static_cast<unsigned char>(bytes[10])) << 16) |
                                       (static_cast<std::size_t>(static_cast<unsigned char>(bytes[11])) << 24);
  const std::size_t start = (v1 ? 10 : 12) + header_size;
  const std::string header = bytes.substr(v1 ? 10 : 12, header_size);
  auto field = [&](const std::string& key) {
    auto at = header.find("'" + key + "'");
    return at == std::string::npos ? std::string() : header.substr(header.find(':', at) + 1);
  };
  const std::string descr = field("descr");
  const std::map<std::string, at::ScalarType> types{{"<f4", at::kFloat}, {"<f8", at::kDouble}, {"<i8", at::kLong},
                                                    {"<i4", at::kInt},   {"|u1", at::kByte},   {"|b1", at::kBool}};
  at::ScalarType dtype = at::kFloat;
  bool known = false;
  for (const auto& [code, type] : types)
    if (descr.find("'" + code + "'") != std::string::npos) dtype = type, known = true;
  const std::string fortran = field("fortran_order");
  if (!known || fortran.substr(0, fortran.find(',')).find("True") != std::string::npos) {
    ADD_FAILURE() << file << ": unsupported .npy header " << header;
    return {};
  }
  std::vector<std::int64_t> shape;
  std::string dims = field("shape");
  dims = dims.substr(dims.find('(') + 1, dims.find(')') - dims.find('(') - 1);
  for (std::size_t at = 0; at < dims.size();) {
    std::size_t end = dims.find(',', at);
    std::string part = dims.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (part.find_first_of("0123456789") != std::string::npos) shape.push_back(std::stoll(part));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
  if (bytes.size() - start != t.nbytes()) {
    ADD_FAILURE() << file << ": " << bytes.size() - start << " data bytes for " << t.nbytes();
    return {};
  }
  std::memcpy(t.data_ptr(), bytes.data() + start, t.nbytes());
  return t;
}

void python_fixture(const std::string& arguments, const std::string& script) {
  std::string command =
      "/usr/bin/python3 " + (fs::path(REEL_SOURCE_DIR) / "tests/fixtures" / script).string() + " " + arguments;
  int status = std::system(command.c_str());
  ASSERT_EQ(status, 0) << command;
}

}  // namespace reel::test
