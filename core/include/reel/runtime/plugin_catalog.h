#pragma once
// Finds plugin libraries on explicit search paths, checks their handshake, and keeps the node
// types they declare. Libraries are loaded from one thread, at start-up, and never unloaded.

#include <reel/plugin.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace reel {

struct RegisteredType {
  NodeType type;
  std::filesystem::path plugin_file;  // the plugin file that declared it
};

// A library that was found but refused; kept so that "unknown node type" can explain why.
struct RefusedPlugin {
  std::filesystem::path plugin_file;
  std::string reason;
};

class PluginCatalog {
 public:
  // Loads every `*.so` directly inside `dir` (not recursive), in name order. A refused library
  // is recorded (and logged) and loading goes on; a missing directory is ignored.
  void load_directory(const std::filesystem::path& dir);
  // Loads one library. Throws Error(kind plugin) naming the file and the reason; the catalog is
  // unchanged then.
  void load_library(const std::filesystem::path& file);
  // For node types compiled into the host process itself (tests, benchmarks).
  void add_builtin(NodeType type, const std::string& origin = "<built-in>");

  const RegisteredType* find(const std::string& type_name) const;
  const std::map<std::string, RegisteredType>& types() const noexcept { return types_; }
  const std::vector<RefusedPlugin>& refused() const noexcept { return refused_; }

 private:
  std::map<std::string, RegisteredType> types_;
  std::vector<RefusedPlugin> refused_;
};

// The default search path: REEL_PLUGIN_PATH (colon-separated) first, then the folder
// `<dir of the running executable>/../lib/reel/plugins` (the build tree and the install tree).
std::vector<std::filesystem::path> default_plugin_path();

}  // namespace reel
