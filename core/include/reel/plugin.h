#pragma once
// What a plugin library declares, and the entry points the host looks for.
//
// A plugin is one shared library with two extern "C" symbols, both written by REEL_PLUGIN:
//   reel_plugin_handshake  - versions the plugin was built with; read and checked FIRST
//   reel_plugin_register   - adds the library's node types to the host's registry
// The host never unloads a plugin library: objects, deleters and exception types live in its code.

#include <reel/node.h>
#include <reel/params.h>
#include <reel/version.h>
#include <reel/weights.h>
#include <torch/version.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace reel {

// `image` input ports accept only one-frame streams; `video` ports accept any stream.
enum class PortKind { video, image };
const char* to_string(PortKind kind) noexcept;

struct PortSpec {
  std::string name;
  PortKind kind = PortKind::video;
  std::string description;
  // The port may be left unconnected (a generator's image input): the node then sees a default
  // StreamDesc for it and no frames. Last, so that {name, kind, description} still means a
  // required port.
  bool optional = false;
};

// A checkpoint a node type recognised (`reel models`, `reel models convert`).
struct DetectedModel {
  std::string architecture;  // e.g. "RRDBNet x4, 23 blocks, 64 features, 32 growth"
  int scale = 0;             // output size / input size; 0 when the model does not scale images
  weights::Expected keys;    // the network's parameter names and shapes, in order (for conversion)
  // A model that is a folder of components (a diffusers pipeline): each component's folder name
  // and what it holds ("T5 v1.1 encoder, 24 layers, 4.76G parameters").
  std::vector<std::pair<std::string, std::string>> components;
  std::string problem;  // set when the node type recognises the model but cannot run it, and why
};

// Which input frames a node computes each output frame from. Splitting one video over many runs
// (each run a range of frames) gives the same frames as one run only when every node declares
// this; reel never guesses it from what a node does.
enum class FrameDependence {
  undeclared,     // not said, or state kept across the stream (a temporal filter): never split
  same_frame,     // output frame k from input frame k alone (a resize, an upscaler, an encoder;
                  // a video source: its stored frames, any range of them)
  adjacent_pair,  // the outputs between input frames i and i+1 from those two alone (an interpolator)
};

struct NodeType {
  std::string name;  // "family.variant", e.g. "upscaler.resize"
  std::string description;
  std::vector<ParamSpec> params;
  std::vector<PortSpec> inputs;                              // none: a source (implements produce)
  std::vector<PortSpec> outputs;                             // none: a sink
  int concurrency = 1;                                       // frames one node may process at once (process only)
  FrameDependence frame_dependence = FrameDependence::undeclared;
  nlohmann::json example_params = nlohmann::json::object();  // a valid set, for docs and tests
  std::function<std::unique_ptr<Node>()> create;
  // Model nodes: recognises a checkpoint this node type runs; empty when it does not. Must not
  // load weights (only names and shapes). May throw BadInputError.
  std::function<std::optional<DetectedModel>(const weights::Checkpoint&)> detect_model;
  // Model nodes whose model is a folder: recognises one (reading configs and weight headers only);
  // empty when it is not this type's. May throw BadInputError.
  std::function<std::optional<DetectedModel>(const std::filesystem::path&)> detect_folder;
};

class Registry {
 public:
  virtual ~Registry();
  virtual void add(NodeType type) = 0;
};

}  // namespace reel

extern "C" {
// Plain C layout: readable by a host of any ABI version, so a mismatch can be reported.
struct reel_plugin_handshake_v1 {
  int abi_major;
  int abi_minor;
  const char* reel_version;
  const char* compiler;       // e.g. "gcc 12"
  const char* torch_version;  // e.g. "1.13"
  int cxx11_abi;              // _GLIBCXX_USE_CXX11_ABI
};
}

#define REEL_STRINGIFY_DETAIL(x) #x
#define REEL_STRINGIFY(x) REEL_STRINGIFY_DETAIL(x)
#if defined(__clang__)
#define REEL_COMPILER_ID "clang " REEL_STRINGIFY(__clang_major__)
#elif defined(__GNUC__)
#define REEL_COMPILER_ID "gcc " REEL_STRINGIFY(__GNUC__)
#else
#define REEL_COMPILER_ID "unknown"
#endif
#define REEL_TORCH_VERSION REEL_STRINGIFY(TORCH_VERSION_MAJOR) "." REEL_STRINGIFY(TORCH_VERSION_MINOR)

// Place once in a plugin's source: REEL_PLUGIN(register_my_nodes) where
// `void register_my_nodes(reel::Registry&)` adds the node types.
#define REEL_PLUGIN(register_function)                                                                             \
  extern "C" __attribute__((visibility("default"))) const reel_plugin_handshake_v1* reel_plugin_handshake() {      \
    static const reel_plugin_handshake_v1 handshake{REEL_ABI_MAJOR,   REEL_ABI_MINOR,     REEL_VERSION_STRING,     \
                                                    REEL_COMPILER_ID, REEL_TORCH_VERSION, _GLIBCXX_USE_CXX11_ABI}; \
    return &handshake;                                                                                             \
  }                                                                                                                \
  extern "C" __attribute__((visibility("default"))) void reel_plugin_register(reel::Registry& registry) {          \
    register_function(registry);                                                                                   \
  }
