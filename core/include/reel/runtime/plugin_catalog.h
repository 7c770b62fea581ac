#pragma once
// Finds plugin libraries on explicit search paths, checks their handshake, and keeps the node
// types they declare. Libraries are loaded from one thread and never unloaded.
//
// The plugin cache (as GStreamer's registry): what each library declares, keyed by its path, size
// and modification time, so that a command that runs no node code reads the node types without
// loading any library (or libtorch), and `reel run` loads only the libraries its graph uses.

#include <reel/plugin.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace reel {

struct RegisteredType {
  NodeType type;
  std::filesystem::path plugin_file;  // the plugin file that declared it
  // False for a type known from the plugin cache only: described (name, ports, params) but its
  // library not loaded yet, so it has no factory. PluginCatalog::load_types loads it.
  bool loaded() const noexcept { return static_cast<bool>(type.create); }
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

  // Finds the plugin libraries directly inside each folder, folders in order, as load_directory.
  // With a cache file, a library whose path, size and modification time match its cache entry is
  // described from the cache and not loaded; the others are loaded, and the cache is rewritten
  // when anything changed. A refused library is never cached (it is tried, and reported, every
  // time). A cache that is missing, unreadable or written by another reel is rebuilt; one that
  // cannot be written is only logged.
  void discover(const std::vector<std::filesystem::path>& dirs, const std::filesystem::path& cache_file = {});
  // Loads the libraries that declare these types where they are known from the cache only, so
  // each has its factory. Unknown names are left for graph validation to report. Throws
  // Error(kind plugin) naming the library when one cannot be loaded now; its types are removed
  // and it is recorded as refused.
  void load_types(const std::vector<std::string>& type_names);
  // Every library known from the cache only (`reel models` asks every model type about a
  // checkpoint). One that cannot be loaded now is refused (recorded, logged); the rest still load.
  void load_all();

  const RegisteredType* find(const std::string& type_name) const;
  const std::map<std::string, RegisteredType>& types() const noexcept { return types_; }
  const std::vector<RefusedPlugin>& refused() const noexcept { return refused_; }

 private:
  // Adds a library's types; throws Error(kind plugin) and adds none when one is already known.
  void admit(const std::filesystem::path& file, std::vector<NodeType> types);
  // load_library that records (and logs) a refusal instead of throwing; false when refused.
  bool try_load(const std::filesystem::path& file);
  void refuse(const std::filesystem::path& file, const std::exception& why);
  void load_described(const std::filesystem::path& file);

  std::map<std::string, RegisteredType> types_;
  std::vector<RefusedPlugin> refused_;
};

// A node type's description as JSON (`reel plugins --json`, `reel describe --json`, the plugin
// cache), and back: the description only, without factory or model detection.
nlohmann::json node_type_json(const RegisteredType& entry);
NodeType node_type_from_json(const nlohmann::json& description);
// "undeclared", "same_frame", "adjacent_pair"
const char* to_string(FrameDependence dependence) noexcept;

// Where the plugin cache lives: $REEL_PLUGIN_CACHE when set (empty: no cache), else
// $XDG_CACHE_HOME/reel/plugins.json, else ~/.cache/reel/plugins.json; empty when none applies.
std::filesystem::path default_plugin_cache();

// The default search path: REEL_PLUGIN_PATH (colon-separated) first, then the folder
// `<dir of the running executable>/../lib/reel/plugins` (the build tree and the install tree).
std::vector<std::filesystem::path> default_plugin_path();

}  // namespace reel
