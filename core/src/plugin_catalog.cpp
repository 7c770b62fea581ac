#include <reel/runtime/plugin_catalog.h>

#include <reel/error.h>

#define BOOST_DLL_USE_STD_FS
#include <spdlog/spdlog.h>
#include <torch/version.h>
#include <boost/dll/shared_library.hpp>

#include <cstdlib>
#include <dlfcn.h>
#include <cstring>
#include <sstream>

namespace fs = std::filesystem;

namespace reel {

// Key function: Registry's vtable and type_info live here, in libreel-base, once.
Registry::~Registry() = default;

const char* to_string(PortKind kind) noexcept { return kind == PortKind::image ? "image" : "video"; }

namespace {

// Plugin libraries stay loaded for the life of the process: their code owns vtables, deleters and
// exception types that outlive any catalog. This container is never destroyed on purpose.
std::vector<boost::dll::shared_library>& loaded_libraries() {
  static auto* libraries = new std::vector<boost::dll::shared_library>();
  return *libraries;
}

// Plugins link libreel, the SDK's computing half. reel-engine links it already; `reel` does not,
// so before its first plugin it loads the libreel from beside this libreel-base. A plugin's
// dependency on libreel then resolves to that one (by soname) wherever the plugin file lies and
// whatever its own search path says, as it does in reel-engine.
void load_libreel_once() {
  static const bool done = [] {
    Dl_info self{};
    if (::dladdr(reinterpret_cast<void*>(&load_libreel_once), &self) == 0 || self.dli_fname == nullptr) return false;
    const fs::path libreel = fs::path(self.dli_fname).parent_path() / REEL_CORE_SONAME;
    if (::dlopen(libreel.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      const char* why = ::dlerror();
      spdlog::debug("could not load {}: {}", libreel.string(), why ? why : "?");
      return false;
    }
    return true;
  }();
  (void)done;
}

const reel_plugin_handshake_v1 kHost{REEL_ABI_MAJOR,   REEL_ABI_MINOR,     REEL_VERSION_STRING,
                                     REEL_COMPILER_ID, REEL_TORCH_VERSION, _GLIBCXX_USE_CXX11_ABI};

std::string describe(const reel_plugin_handshake_v1& h) {
  std::ostringstream s;
  s << "ABI " << h.abi_major << "." << h.abi_minor << " (reel " << (h.reel_version ? h.reel_version : "?") << ", "
    << (h.compiler ? h.compiler : "?") << ", libtorch " << (h.torch_version ? h.torch_version : "?") << ", cxx11 ABI "
    << h.cxx11_abi << ")";
  return s.str();
}

bool same(const char* a, const char* b) { return a && b && std::strcmp(a, b) == 0; }

// Empty when the plugin may be used; otherwise why not.
std::string handshake_problem(const reel_plugin_handshake_v1& plugin) {
  if (plugin.abi_major != kHost.abi_major) return "it was built for a different plugin ABI";
  if (plugin.abi_minor > kHost.abi_minor) return "it needs a newer reel than this one";
  if (!same(plugin.compiler, kHost.compiler)) return "it was built with a different compiler";
  if (!same(plugin.torch_version, kHost.torch_version)) return "it was built against a different libtorch";
  if (plugin.cxx11_abi != kHost.cxx11_abi) return "it was built with a different C++ standard library ABI";
  return {};
}

class CollectingRegistry : public Registry {
 public:
  void add(NodeType type) override { types.push_back(std::move(type)); }
  std::vector<NodeType> types;
};

Error plugin_error(const fs::path& file, const std::string& why, std::string hint = {}) {
  return Error(ErrorKind::plugin, "cannot use plugin " + file.string() + ": " + why, std::move(hint));
}

}  // namespace

void PluginCatalog::load_library(const fs::path& file) {
  load_libreel_once();
  boost::dll::shared_library library;
  try {
    library.load(file, boost::dll::load_mode::rtld_lazy | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw plugin_error(
        file, std::string("the library could not be loaded: ") + e.what(),
        "Check that it is a reel plugin built for this machine and that its dependencies are installed.");
  }
  if (!library.has("reel_plugin_handshake") || !library.has("reel_plugin_register"))
    throw plugin_error(file, "it has no reel entry point (reel_plugin_handshake / reel_plugin_register)",
                       "A plugin uses REEL_PLUGIN(...) once; remove other libraries from the plugin path.");

  // Read the handshake before importing anything whose layout depends on the ABI.
  const auto* handshake = library.get<const reel_plugin_handshake_v1*()>("reel_plugin_handshake")();
  if (handshake == nullptr) throw plugin_error(file, "its handshake is empty");
  if (std::string problem = handshake_problem(*handshake); !problem.empty())
    throw plugin_error(file,
                       problem + ": the plugin has " + describe(*handshake) + ", this reel has " + describe(kHost),
                       "Rebuild the plugin against this reel's SDK.");

  CollectingRegistry collected;
  auto register_nodes = library.get<void(Registry&)>("reel_plugin_register");
  // From here on the library's code may have left pointers into itself in the process (a log
  // callback, static state), so it stays loaded even if it is refused below.
  loaded_libraries().push_back(library);
  try {
    register_nodes(collected);
  } catch (const std::exception& e) {
    throw plugin_error(file, std::string("its registration failed: ") + e.what());
  } catch (...) {
    throw plugin_error(file, "its registration threw an exception that is not a std::exception");
  }
  for (const NodeType& type : collected.types)
    if (type.name.empty() || !type.create)
      throw plugin_error(file, "it declares a node type without a name or factory");
  const std::size_t count = collected.types.size();
  admit(file, std::move(collected.types));
  spdlog::debug("loaded plugin {} ({} node types)", file.string(), count);
}

void PluginCatalog::admit(const fs::path& file, std::vector<NodeType> types) {
  for (const NodeType& type : types)
    if (auto it = types_.find(type.name); it != types_.end())
      throw plugin_error(file,
                         "node type '" + type.name + "' is already provided by " + it->second.plugin_file.string(),
                         "Remove one of the two libraries from the plugin path.");
  for (std::size_t i = 0; i < types.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (types[i].name == types[j].name)
        throw plugin_error(file, "it declares node type '" + types[i].name + "' twice");
  for (NodeType& type : types) {
    std::string name = type.name;
    types_.emplace(name, RegisteredType{std::move(type), file});
  }
}

void PluginCatalog::refuse(const fs::path& file, const std::exception& why) {
  const auto* error = dynamic_cast<const Error*>(&why);
  std::string reason = error ? std::string(why.what())
                             : "cannot use plugin " + file.string() + ": " + why.what();
  spdlog::warn("{}", reason);
  if (error && !error->hint().empty()) reason += ". " + error->hint();
  refused_.push_back({file, reason});
}

bool PluginCatalog::try_load(const fs::path& file) {
  try {
    load_library(file);
    return true;
  } catch (const std::exception& e) {
    refuse(file, e);
    return false;
  }
}

void PluginCatalog::load_directory(const fs::path& dir) { discover({dir}); }

void PluginCatalog::add_builtin(NodeType type, const std::string& origin) {
  if (auto it = types_.find(type.name); it != types_.end())
    throw Error(ErrorKind::plugin,
                "node type '" + type.name + "' is already provided by " + it->second.plugin_file.string());
  std::string name = type.name;
  types_.emplace(name, RegisteredType{std::move(type), origin});
}

const RegisteredType* PluginCatalog::find(const std::string& type_name) const {
  auto it = types_.find(type_name);
  return it == types_.end() ? nullptr : &it->second;
}

std::vector<fs::path> default_plugin_path() {
  std::vector<fs::path> path;
  if (const char* env = std::getenv("REEL_PLUGIN_PATH")) {
    std::stringstream list(env);
    for (std::string item; std::getline(list, item, ':');)
      if (!item.empty()) path.emplace_back(item);
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) path.push_back(exe.parent_path().parent_path() / "lib" / "reel" / "plugins");
  return path;
}

}  // namespace reel
