// Drives every registered node type (in-tree plugins and the testkit) through the lifecycle the
// contract allows: configure/load/produce-or-process/finish/unload, double unload, unload
// without load, unload right after configure. A node type that breaks the contract fails here.
#include "media.h"
#include "test_support.h"

#include <reel/runtime/graph.h>
#include <reel/weights.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace reel {
namespace {

constexpr std::int64_t kInputFrames = 4;

// One stream per input port; optional ports are left unconnected (a default StreamDesc).
std::vector<StreamDesc> input_streams(const NodeType& type) {
  std::vector<StreamDesc> streams;
  for (const PortSpec& port : type.inputs) {
    StreamDesc s;
    if (port.optional) {
      streams.push_back(s);
      continue;
    }
    s.width = 32, s.height = 24, s.channels = 3, s.fps = {24, 1};
    s.frame_count = port.kind == PortKind::image ? 1 : kInputFrames;
    streams.push_back(s);
  }
  return streams;
}

// Runs one node alone; returns the frames it emitted per output port.
std::vector<std::vector<Frame>> drive(const RegisteredType& entry, const Params& params,
                                      std::vector<StreamDesc>& outputs) {
  const NodeType& type = entry.type;
  std::vector<StreamDesc> inputs = input_streams(type);
  std::unique_ptr<Node> node = type.create();
  outputs = node->configure(NodeConfig{"conformance", params, inputs, true});
  EXPECT_EQ(outputs.size(), type.outputs.size());
  (void)node->estimate();
  node->load();
  std::vector<std::vector<Frame>> emitted(type.outputs.size());
  auto collect = [&](Emitter& out) {
    for (auto& [port, frame] : out.frames()) {
      EXPECT_GE(port, 0);
      EXPECT_LT(port, static_cast<int>(emitted.size()));
      if (port >= 0 && port < static_cast<int>(emitted.size())) emitted[port].push_back(std::move(frame));
    }
    out.clear();
  };
  Emitter out;
  bool source = true;
  for (const StreamDesc& s : inputs) source &= s.width == 0;  // nothing connected
  if (source) {
    for (int calls = 0; calls < 100000; ++calls) {
      bool more = node->produce(out);
      collect(out);
      if (!more) break;
    }
  } else {
    for (std::size_t port = 0; port < type.inputs.size(); ++port)
      for (std::int64_t k = 0; k < inputs[port].frame_count.value_or(0); ++k) {
        Frame frame;
        frame.image =
            at::full({3, inputs[port].height, inputs[port].width}, static_cast<std::uint8_t>(16 * k), at::kByte);
        frame.index = k;
        node->process(frame, static_cast<int>(port), out);
        collect(out);
      }
    // After its inputs, a node may produce (a generator conditioned on them).
    for (int calls = 0; calls < 100000; ++calls) {
      bool more = node->produce(out);
      collect(out);
      if (!more) break;
    }
  }
  node->finish(out);
  collect(out);
  node->unload();
  node->unload();  // idempotent
  return emitted;
}

TEST(NodeConformance, EveryRegisteredTypeKeepsTheLifecycleContract) {
  const PluginCatalog& catalog = test::catalog();
  ASSERT_FALSE(catalog.types().empty());
  fs::path dir = test::temp_dir("conformance");
  fs::path previous = fs::current_path();
  fs::current_path(dir);  // sinks write their example outputs here
  // Inputs named by the sources' example_params.
  if (catalog.find("source.video")) test::make_video(dir, "conformance-input.mp4", 64, 48, 5);
  if (catalog.find("source.image")) test::make_video(dir, "conformance-input.png", 64, 48, 1);
  // Model nodes' example_params name models of the shared folder (the real Real-ESRGAN weights,
  // the random-weight RIFE of the reference).
  const fs::path models = test::shared_dir() / "models/realesrgan";
  // generator.cogvideox's example names CogVideoX-5b: the tiny model stands in, at a small size.
  const fs::path folders = dir / "model-folders";
  fs::create_directories(folders);
  if (!test::shared_dir().empty())
    fs::create_directory_symlink(test::shared_dir() / "reference/cogvideox/models/tiny-cogvideox-5b", folders / "CogVideoX-5b");
  const nlohmann::json small = {{"frames", 9}, {"width", 64}, {"height", 48}, {"steps", 2}, {"device", "cpu"}};
  weights::set_model_dirs({models, test::shared_archive("reference/rife/weights.tar.xz"), folders});
  for (const auto& [name, entry] : catalog.types()) {
    SCOPED_TRACE(name);
    if (entry.type.example_params.contains("model") && (test::shared_dir().empty() || !fs::exists(models))) {
      std::fprintf(stderr, "\n*** SKIPPED %s: its model is missing (REEL_SHARED_DIR) ***\n\n", name.c_str());
      continue;
    }
    nlohmann::json example = entry.type.example_params;
    if (name == "generator.cogvideox") example.update(small);
    Params params;
    ASSERT_NO_THROW(params = validate_params(entry.type, example, "example_params", name))
        << "the type's example_params do not match its own schema";
    std::vector<StreamDesc> outputs;
    std::vector<std::vector<Frame>> emitted;
    ASSERT_NO_THROW(emitted = drive(entry, params, outputs));
    for (std::size_t port = 0; port < outputs.size(); ++port) {
      if (outputs[port].frame_count) {
        EXPECT_EQ(static_cast<std::int64_t>(emitted[port].size()), *outputs[port].frame_count)
            << "emitted frame count differs from the configured stream";
      }
      for (const Frame& f : emitted[port]) {
        ASSERT_TRUE(f.image.defined());
        ASSERT_EQ(f.image.dim(), 3);
        EXPECT_EQ(f.image.size(0), outputs[port].channels);
        EXPECT_EQ(f.image.size(1), outputs[port].height);
        EXPECT_EQ(f.image.size(2), outputs[port].width);
      }
    }
    std::vector<StreamDesc> inputs = input_streams(entry.type);
    {
      auto node = entry.type.create();
      EXPECT_NO_THROW(node->unload());  // never configured, never loaded
      EXPECT_NO_THROW(node->unload());
    }
    {
      auto node = entry.type.create();
      node->configure(NodeConfig{"conformance", params, inputs, true});
      EXPECT_NO_THROW(node->discard_outputs());
      EXPECT_NO_THROW(node->unload());  // configured, never loaded
    }
    {
      auto node = entry.type.create();
      node->configure(NodeConfig{"conformance", params, inputs, true});
      node->load();
      EXPECT_NO_THROW(node->discard_outputs());  // loaded, mid-stream
      EXPECT_NO_THROW(node->unload());
      EXPECT_NO_THROW(node->unload());
    }
  }
  weights::set_model_dirs({});
  fs::current_path(previous);
}

}  // namespace
}  // namespace reel
