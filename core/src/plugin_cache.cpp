// The plugin cache half of PluginCatalog: node type descriptions to and from JSON, and discovery
// that reads unchanged libraries from the cache instead of loading them.
#include <reel/runtime/plugin_catalog.h>

#include <reel/error.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <system_error>

#include <unistd.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel {

namespace {

constexpr int kCacheFormat = 1;

// A cache written by another reel (another ABI, compiler or libtorch) may hold libraries this one
// refuses: it is not used.
std::string host_identity() {
  return std::string("reel ") + REEL_VERSION_STRING + ", ABI " + std::to_string(REEL_ABI_MAJOR) + "." +
         std::to_string(REEL_ABI_MINOR) + ", " + REEL_COMPILER_ID + ", libtorch " + REEL_TORCH_VERSION +
         ", cxx11 ABI " + std::to_string(_GLIBCXX_USE_CXX11_ABI);
}

json param_json(const ParamSpec& p) {
  json j = {{"name", p.name},
            {"type", to_string(p.type)},
            {"description", p.description},
            {"required", p.required},
            {"default", p.default_value}};
  if (p.min) j["min"] = *p.min;
  if (p.max) j["max"] = *p.max;
  if (!p.choices.empty()) j[p.type == ParamType::integer ? "words" : "choices"] = p.choices;
  return j;
}

ParamSpec param_from_json(const json& j) {
  ParamSpec p;
  p.name = j.at("name").get<std::string>();
  const auto type = j.at("type").get<std::string>();
  bool known = false;
  for (ParamType t : {ParamType::integer, ParamType::number, ParamType::boolean, ParamType::string, ParamType::choice})
    if (type == to_string(t)) p.type = t, known = true;
  if (!known) throw std::invalid_argument("unknown param type '" + type + "'");
  p.description = j.at("description").get<std::string>();
  p.required = j.at("required").get<bool>();
  p.default_value = j.at("default");
  if (j.contains("min")) p.min = j["min"].get<double>();
  if (j.contains("max")) p.max = j["max"].get<double>();
  if (j.contains("words")) p.choices = j["words"].get<std::vector<std::string>>();
  if (j.contains("choices")) p.choices = j["choices"].get<std::vector<std::string>>();
  return p;
}

json ports_json(const std::vector<PortSpec>& ports) {
  json list = json::array();
  for (const auto& p : ports)
    list.push_back({{"name", p.name}, {"kind", to_string(p.kind)}, {"optional", p.optional}, {"description", p.description}});
  return list;
}

std::vector<PortSpec> ports_from_json(const json& list) {
  std::vector<PortSpec> ports;
  for (const json& j : list) {
    const auto kind = j.at("kind").get<std::string>();
    if (kind != "video" && kind != "image") throw std::invalid_argument("unknown port kind '" + kind + "'");
    ports.push_back({j.at("name").get<std::string>(), kind == "image" ? PortKind::image : PortKind::video,
                     j.at("description").get<std::string>(), j.at("optional").get<bool>()});
  }
  return ports;
}

// What identifies one version of a library file: its size and modification time (nanoseconds).
struct Stamp {
  std::uintmax_t size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const Stamp&) const = default;
};

std::optional<Stamp> stamp_of(const fs::path& file) {
  std::error_code ec;
  Stamp stamp;
  stamp.size = fs::file_size(file, ec);
  if (ec) return std::nullopt;
  auto mtime = fs::last_write_time(file, ec);
  if (ec) return std::nullopt;
  stamp.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count();
  return stamp;
}

// The cache's libraries by absolute path; empty when the file is missing, unreadable or foreign.
std::map<std::string, json> read_cache(const fs::path& cache_file) {
  std::map<std::string, json> libraries;
  std::ifstream in(cache_file);
  if (!in) return libraries;
  try {
    json doc = json::parse(in);
    if (doc.at("format") != kCacheFormat || doc.at("host") != host_identity()) {
      spdlog::debug("plugin cache {} was written by another reel; rebuilding it", cache_file.string());
      return libraries;
    }
    for (const json& library : doc.at("libraries")) libraries[library.at("path").get<std::string>()] = library;
  } catch (const std::exception& e) {
    spdlog::debug("plugin cache {} is unreadable ({}); rebuilding it", cache_file.string(), e.what());
    libraries.clear();
  }
  return libraries;
}

// Atomically (a temporary file renamed into place), so a concurrent reader sees the old cache or
// the new one; two writers at once lose one's additions, which the next command adds again.
void write_cache(const fs::path& cache_file, const std::map<std::string, json>& libraries) {
  json doc = {{"format", kCacheFormat}, {"host", host_identity()}, {"libraries", json::array()}};
  for (const auto& [path, library] : libraries) doc["libraries"].push_back(library);
  std::error_code ec;
  fs::create_directories(cache_file.parent_path(), ec);
  const fs::path temporary = cache_file.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(temporary);
    out << doc.dump(1, ' ', false, json::error_handler_t::replace) << '\n';
    out.close();
    if (!out) {
      spdlog::debug("could not write the plugin cache {}", temporary.string());
      fs::remove(temporary, ec);
      return;
    }
  }
  fs::rename(temporary, cache_file, ec);
  if (ec) {
    spdlog::debug("could not write the plugin cache {}: {}", cache_file.string(), ec.message());
    fs::remove(temporary, ec);
  }
}

std::vector<fs::path> libraries_in(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return files;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file() && entry.path().extension() == ".so") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

const char* to_string(FrameDependence dependence) noexcept {
  switch (dependence) {
    case FrameDependence::same_frame:
      return "same_frame";
    case FrameDependence::adjacent_pair:
      return "adjacent_pair";
    case FrameDependence::undeclared:
      break;
  }
  return "undeclared";
}

json node_type_json(const RegisteredType& entry) {
  const NodeType& t = entry.type;
  json params = json::array();
  for (const auto& p : t.params) params.push_back(param_json(p));
  return {{"type", t.name},
          {"description", t.description},
          {"plugin", entry.plugin_file.string()},
          {"inputs", ports_json(t.inputs)},
          {"outputs", ports_json(t.outputs)},
          {"params", params},
          {"concurrency", t.concurrency},
          {"frame_dependence", to_string(t.frame_dependence)},
          {"example_params", t.example_params}};
}

NodeType node_type_from_json(const json& j) {
  NodeType t;
  t.name = j.at("type").get<std::string>();
  t.description = j.at("description").get<std::string>();
  t.inputs = ports_from_json(j.at("inputs"));
  t.outputs = ports_from_json(j.at("outputs"));
  for (const json& p : j.at("params")) t.params.push_back(param_from_json(p));
  t.concurrency = j.at("concurrency").get<int>();
  const std::string dependence = j.value("frame_dependence", "undeclared");
  for (auto d : {FrameDependence::same_frame, FrameDependence::adjacent_pair})
    if (dependence == to_string(d)) t.frame_dependence = d;
  t.example_params = j.at("example_params");
  return t;
}

fs::path default_plugin_cache() {
  if (const char* path = std::getenv("REEL_PLUGIN_CACHE")) return path;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fs::path(xdg) / "reel" / "plugins.json";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "reel" / "plugins.json";
  return {};
}

void PluginCatalog::discover(const std::vector<fs::path>& dirs, const fs::path& cache_file) {
  std::map<std::string, json> cache = cache_file.empty() ? std::map<std::string, json>{} : read_cache(cache_file);
  bool changed = false;
  std::set<std::string> seen;
  for (const fs::path& dir : dirs) {
    for (const fs::path& file : libraries_in(dir)) {
      const std::string key = fs::absolute(file).lexically_normal().string();
      if (!seen.insert(key).second) continue;  // a folder given twice
      const std::optional<Stamp> stamp = stamp_of(file);
      auto cached = cache.find(key);
      if (stamp && cached != cache.end()) {
        std::optional<std::vector<NodeType>> types;
        try {
          if (cached->second.at("size") == stamp->size && cached->second.at("mtime_ns") == stamp->mtime_ns) {
            types.emplace();
            for (const json& t : cached->second.at("types")) types->push_back(node_type_from_json(t));
          }
        } catch (const std::exception& e) {
          spdlog::debug("plugin cache entry for {} is unreadable ({}); loading the library", key, e.what());
          types.reset();
        }
        if (types) {
          try {
            admit(file, std::move(*types));
          } catch (const Error& e) {
            refuse(file, e);
          }
          continue;
        }
      }
      if (!try_load(file)) {
        if (cached != cache.end()) cache.erase(cached), changed = true;
        continue;
      }
      if (!stamp) continue;
      json library = {{"path", key}, {"size", stamp->size}, {"mtime_ns", stamp->mtime_ns}, {"types", json::array()}};
      for (const auto& [name, entry] : types_)
        if (entry.plugin_file == file) library["types"].push_back(node_type_json(entry));
      cache[key] = std::move(library);
      changed = true;
    }
  }
  if (cache_file.empty() || !changed) return;
  // Entries of libraries that are gone (a temporary plugin folder) are dropped; those of other
  // folders stay for the commands that search them.
  for (auto it = cache.begin(); it != cache.end();) {
    std::error_code ec;
    it = fs::exists(it->first, ec) ? std::next(it) : cache.erase(it);
  }
  write_cache(cache_file, cache);
}

void PluginCatalog::load_described(const fs::path& file) {
  std::map<std::string, RegisteredType> described;
  for (auto it = types_.begin(); it != types_.end();) {
    if (it->second.plugin_file == file && !it->second.loaded()) {
      described.insert(types_.extract(it++));
    } else {
      ++it;
    }
  }
  try {
    load_library(file);
  } catch (const Error& e) {
    refuse(file, e);
    throw;
  }
}

void PluginCatalog::load_types(const std::vector<std::string>& type_names) {
  std::set<fs::path> files;
  for (const std::string& name : type_names)
    if (const RegisteredType* entry = find(name); entry && !entry->loaded()) files.insert(entry->plugin_file);
  for (const fs::path& file : files) load_described(file);
}

void PluginCatalog::load_all() {
  std::set<fs::path> files;
  for (const auto& [name, entry] : types_)
    if (!entry.loaded()) files.insert(entry.plugin_file);
  for (const fs::path& file : files) {
    try {
      load_described(file);
    } catch (const Error&) {
      // Recorded and logged as refused by load_described; the other libraries still load.
    }
  }
}

}  // namespace reel
