// upscaler.esrgan on the real Real-ESRGAN weights: reference outputs, the same result from every
// checkpoint format, tiling, out-of-memory degradation, frame counts and memory after unload.
#include "media.h"
#include "networks.h"
#include "nodes.h"
#include "test_support.h"
#include "tiler.h"

#include <reel/runtime/memory.h>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace reel;

namespace {

fs::path model(const std::string& name) { return test::shared_dir() / "models/realesrgan" / (name + ".param"); }
fs::path reference(const std::string& name) { return test::shared_dir() / "reference/esrgan" / name; }

at::Tensor read_image(const fs::path& file) { return test::source_frames("source.image", {{"path", file.string()}}).at(0); }

// Drives one upscaler.esrgan node without a graph: configure, load, process each image, unload.
std::vector<at::Tensor> upscale(const NodeType& type, const std::vector<at::Tensor>& images, json params) {
  c10::InferenceMode inference;
  json values{{"tile", 0}, {"device", "cpu"}};
  values.update(params);
  StreamDesc in{static_cast<int>(images[0].size(2)), static_cast<int>(images[0].size(1)),
                static_cast<int>(images[0].size(0)), {24, 1}, static_cast<std::int64_t>(images.size())};
  std::vector<StreamDesc> inputs{in};
  Params p = validate_params(type, values);
  auto node = type.create();
  node->configure(NodeConfig{"up", p, inputs});
  node->load();
  std::vector<at::Tensor> out;
  for (std::size_t i = 0; i < images.size(); ++i) {
    Emitter emitter;
    node->process(Frame{images[i], static_cast<std::int64_t>(i), {}}, 0, emitter);
    for (auto& [port, frame] : emitter.frames()) out.push_back(frame.image);
  }
  node->unload();
  return out;
}

const NodeType& esrgan() { return test::catalog().find("upscaler.esrgan")->type; }

struct Comparison {
  double psnr;
  int max_abs;
};
Comparison compare(const at::Tensor& a, const at::Tensor& b) {
  return {test::psnr(a, b), (a.to(at::kInt) - b.to(at::kInt)).abs().max().item<int>()};
}

std::unique_ptr<sr::Network> network_from(const fs::path& file, sr::Architecture* architecture = nullptr) {
  auto checkpoint = weights::open_checkpoint(file);
  auto a = sr::detect(checkpoint);
  EXPECT_TRUE(a.has_value());
  auto network = sr::build(*a);
  network->assign(weights::match(checkpoint, network->expected(), a->describe()));
  if (architecture) *architecture = *a;
  return network;
}

}  // namespace

class EsrganReference : public testing::TestWithParam<std::string> {};

TEST_P(EsrganReference, MatchesTheIndependentImplementationOnTheRealWeights) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4plus.param");
  REEL_REQUIRE_SHARED("reference/esrgan/in.png");
  const std::string name = GetParam();
  at::Tensor input = read_image(reference("in.png"));
  at::Tensor expected = read_image(reference(name + ".ref.png"));
  at::Tensor output = upscale(esrgan(), {input}, {{"model", model(name).string()}}).at(0);
  ASSERT_EQ(output.sizes(), expected.sizes());
  auto c = compare(output, expected);
  std::printf("%s vs reference: PSNR %.2f dB, max abs difference %d\n", name.c_str(), c.psnr, c.max_abs);
  EXPECT_GT(c.psnr, 60.0);
  EXPECT_LE(c.max_abs, 2);
}

// The same weights through safetensors (written by `reel models convert`) and through a .pth
// written by the real torch.save from those (read by an independent reader in Python): the
// outputs are identical.
TEST_P(EsrganReference, NcnnSafetensorsAndTorchSaveGiveTheSameOutput) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4plus.param");
  const std::string name = GetParam();
  fs::path dir = test::temp_dir("formats");
  fs::path safetensors = dir / (name + ".safetensors"), pth = dir / (name + ".pth");
  ASSERT_EQ(test::shell(std::string(REEL_EXECUTABLE) + " models convert " + model(name).string() + " " +
                        safetensors.string() + " 2>/dev/null"),
            0);
  test::python_fixture("from-safetensors " + safetensors.string() + " " + pth.string());
  at::Tensor input = read_image(reference("in.png"));
  at::Tensor from_ncnn = upscale(esrgan(), {input}, {{"model", model(name).string()}}).at(0);
  at::Tensor from_safetensors = upscale(esrgan(), {input}, {{"model", safetensors.string()}}).at(0);
  at::Tensor from_pth = upscale(esrgan(), {input}, {{"model", pth.string()}}).at(0);
  EXPECT_TRUE(at::equal(from_ncnn, from_safetensors));
  EXPECT_TRUE(at::equal(from_ncnn, from_pth));
}

INSTANTIATE_TEST_SUITE_P(RealWeights, EsrganReference, testing::Values("realesrgan-x4fast", "realesrgan-x4plus"));

TEST(EsrganTiling, TiledEqualsUntiledForSrvggWhenThePadCoversTheReceptiveRadius) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4fast.param");
  c10::InferenceMode inference;
  sr::Architecture a;
  auto network = network_from(model("realesrgan-x4fast"), &a);
  ASSERT_EQ(a.receptive_radius(), 34);
  at::manual_seed(7);
  at::Tensor x = at::rand({1, 3, 90, 110});
  auto forward = [&](const at::Tensor& t) { return network->forward(t); };
  at::Tensor whole = network->forward(x);
  int tiles = 0;
  at::Tensor tiled = sr::run_tiled(x, 4, {32, a.receptive_radius(), 1}, forward, [&](int) { ++tiles; });
  EXPECT_EQ(tiles, 3 * 4);
  double exact = (tiled - whole).abs().max().item<double>();
  std::printf("SRVGG tile 32, pad 34: max abs difference %.3g\n", exact);
  EXPECT_LT(exact, 1e-5);
  // A pad below the radius changes the result: the check above can fail.
  at::Tensor short_pad = sr::run_tiled(x, 4, {32, 4, 1}, forward);
  EXPECT_GT((short_pad - whole).abs().max().item<double>(), 1e-3);
}

TEST(EsrganTiling, RrdbnetSeamErrorShrinksAsThePadGrows) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4plus.param");
  at::Tensor input = read_image(reference("in.png"));
  json base{{"model", model("realesrgan-x4plus").string()}};
  at::Tensor whole = upscale(esrgan(), {input}, base).at(0);
  double previous = 0;
  for (int pad : {0, 4, 10}) {
    json params = base;
    params.update({{"tile", 32}, {"tile_pad", pad}});
    double psnr = test::psnr(upscale(esrgan(), {input}, params).at(0), whole);
    std::printf("RRDBNet tile 32, pad %d: %.1f dB against untiled\n", pad, psnr);
    EXPECT_GT(psnr, previous);
    previous = psnr;
  }
  EXPECT_GT(previous, 35.0);
}

namespace {

// upscaler.esrgan under another name, whose tiles throw std::bad_alloc on demand.
struct OomInjection {
  std::atomic<int> calls{0}, fail_from{-1}, fail_count{0};
  PluginCatalog catalog;
  OomInjection() {
    catalog.load_directory(REEL_PLUGIN_DIR);
    NodeType type = sr::esrgan_node_type([this](int) {
      int call = calls++;
      if (fail_from >= 0 && call >= fail_from && fail_count-- > 0) throw std::bad_alloc();
    });
    type.name = "test.esrgan_oom";
    catalog.add_builtin(std::move(type));
  }
  RunResult run(const fs::path& out, int tile) {
    json graph = test::graph_json(json::array(
        {{{"id", "src"}, {"type", "generator.pattern"}, {"params", {{"frames", 5}, {"width", 64}, {"height", 48}}}},
         {{"id", "up"},
          {"type", "test.esrgan_oom"},
          {"inputs", {{"in", "src.out"}}},
          {"params", {{"model", model("realesrgan-x4fast").string()}, {"tile", tile}, {"tile_pad", 40}, {"device", "cpu"}}}},
         {{"id", "encode"},
          {"type", "encoder.ffmpeg"},
          {"inputs", {{"in", "up.out"}}},
          {"params", {{"path", out.string()}, {"codec", "ffv1"}}}}}));
    GraphSpec spec = test::graph(graph);
    return run_graph(spec, catalog, {});
  }
};

}  // namespace

TEST(EsrganOutOfMemory, HalvesTheTileAndRetriesTheSameFrameWithTheOutputUnchanged) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4fast.param");
  OomInjection injection;
  fs::path dir = test::temp_dir("oom");
  RunResult clean = injection.run(dir / "clean.mkv", 32);
  ASSERT_TRUE(clean.ok()) << clean.failure->user_message();

  injection.calls = 0;
  injection.fail_from = 2;  // frame 2 (one tile per frame at tile 64), then tile 32 works
  injection.fail_count = 1;
  RunResult degraded = injection.run(dir / "degraded.mkv", 64);
  ASSERT_TRUE(degraded.ok()) << degraded.failure->user_message();
  EXPECT_EQ(degraded.nodes[1].oom_retries, 1);
  EXPECT_EQ(degraded.nodes[1].frames_in, 5);
  EXPECT_EQ(degraded.nodes[1].frames_out, 5);
  auto a = test::source_frames("source.video", {{"path", (dir / "clean.mkv").string()}});
  auto b = test::source_frames("source.video", {{"path", (dir / "degraded.mkv").string()}});
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), 5u);
  // Frames 0-1 ran at tile 64 with pad 40 (= whole frame), 2-4 at tile 32: pad 40 covers the
  // receptive radius, so all equal the clean run at tile 32 up to rounding.
  for (int i = 0; i < 5; ++i) EXPECT_LE(compare(a[i], b[i]).max_abs, 1) << "frame " << i;
}

TEST(EsrganOutOfMemory, PastTheMinimumTileFailsAsOutOfMemoryNamingTheSetting) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4fast.param");
  OomInjection injection;
  injection.fail_from = 0;
  injection.fail_count = 1000;
  fs::path out = test::temp_dir("oom") / "never.mkv";
  RunResult result = injection.run(out, 64);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.failure->kind, ErrorKind::out_of_memory);
  EXPECT_EQ(result.nodes[1].oom_retries, 1);  // 64 -> 32, then no smaller tile
  EXPECT_NE(result.failure->user_message().find("tile 32"), std::string::npos) << result.failure->user_message();
  EXPECT_NE(result.failure->user_message().find("'tile' (the node halves it on its own down to 32)"), std::string::npos) << result.failure->user_message();
  EXPECT_FALSE(fs::exists(out));
}

TEST(EsrganMemory, UnloadGivesTheModelsMemoryBack) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4plus.param");
  json graph = test::graph_json(json::array(
      {{{"id", "src"}, {"type", "generator.pattern"}, {"params", {{"frames", 2}, {"width", 32}, {"height", 32}}}},
       {{"id", "up"},
        {"type", "upscaler.esrgan"},
        {"inputs", {{"in", "src.out"}}},
        {"params", {{"model", model("realesrgan-x4plus").string()}, {"tile", 0}, {"device", "cpu"}}}},
       {{"id", "sink"}, {"type", "test.sink"}, {"inputs", {{"in", "up.out"}}}}}));
  ASSERT_TRUE(test::run(graph).ok());  // warm-up: thread pools and allocator arenas
  release_cached_memory();
  const std::uint64_t baseline = test::rss_bytes();
  RunResult result = test::run(graph);
  ASSERT_TRUE(result.ok()) << result.failure->user_message();
  const std::uint64_t after = test::rss_bytes();
  std::printf("x4plus: RSS baseline %.1f MB, grew %.1f MB across load, after the run %.1f MB\n", baseline / 1e6,
              result.nodes[1].rss_after_load_bytes / 1e6, after / 1e6);
  EXPECT_GT(result.nodes[1].rss_after_load_bytes, 60'000'000);  // 16.7M fp32 parameters were resident
  EXPECT_LT(after, baseline + 16'000'000);
}

TEST(EsrganConfigure, BadSettingsAreNamedBeforeAnythingLoads) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4fast.param");
  auto failure_of = [](json params) {
    params["model"] = params.value("model", model("realesrgan-x4fast").string());
    json graph = test::graph_json(json::array(
        {{{"id", "src"}, {"type", "generator.pattern"}, {"params", {{"frames", 1}, {"width", 32}, {"height", 32}}}},
         {{"id", "up"}, {"type", "upscaler.esrgan"}, {"inputs", {{"in", "src.out"}}}, {"params", params}},
         {{"id", "sink"}, {"type", "test.sink"}, {"inputs", {{"in", "up.out"}}}}}));
    RunResult r = test::run(graph);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : r.failure->user_message();
  };
  EXPECT_NE(failure_of({{"device", "cuda:0"}}).find("no CUDA device"), std::string::npos);
  EXPECT_NE(failure_of({{"device", "tpu"}}).find("not cpu, cuda, cuda:N or auto"), std::string::npos);
  EXPECT_NE(failure_of({{"device", "cpu"}, {"precision", "fp16"}}).find("fp16 needs a CUDA device"), std::string::npos);
  EXPECT_NE(failure_of({{"tile", 8}}).find("below the minimum"), std::string::npos);
  EXPECT_NE(failure_of({{"tile", "big"}}).find("must be an integer"), std::string::npos);
  EXPECT_NE(failure_of({{"model", "no-such-model"}}).find("looked in"), std::string::npos);
  // SRVGG-like keys with zero input channels (a division by zero in detection once).
  fs::path zero = test::temp_dir() / "zero.safetensors";
  weights::save_safetensors(zero, {{"body.0.weight", at::zeros({64, 0, 3, 3})}, {"body.1.weight", at::zeros({64})}},
                            false);
  EXPECT_NE(failure_of({{"model", zero.string()}}).find("is not a Real-ESRGAN network"), std::string::npos);
  fs::path other = test::temp_dir() / "other.safetensors";
  weights::save_safetensors(other, {{"encoder.weight", at::zeros({4, 4})}}, false);
  EXPECT_NE(failure_of({{"model", other.string()}}).find("is not a Real-ESRGAN network"), std::string::npos);
}

TEST(EsrganNode, OutscaleAndAlphaAndPrePadKeepTheDescribedSize) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4fast.param");
  at::manual_seed(3);
  at::Tensor rgba = at::randint(0, 256, {4, 20, 30}, at::kByte);
  auto out = upscale(esrgan(), {rgba}, {{"model", model("realesrgan-x4fast").string()}, {"outscale", 2.5}, {"pre_pad", 5}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].sizes(), (std::vector<std::int64_t>{4, 50, 75}));
  EXPECT_EQ(out[0].scalar_type(), at::kByte);
}

TEST(EsrganGraph, TheExampleGraphUpscalesAVideoFrameForFrame) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4fast.param");
  fs::path dir = test::temp_dir("graph");
  fs::path video = test::make_video(dir, "in.mp4", 48, 32, 7);
  fs::path out = dir / "out.mp4";
  std::string command = std::string(REEL_EXECUTABLE) + " run " + REEL_SOURCE_DIR +
                        "/graphs/upscale-video-esrgan.json --no-progress --models-dir " +
                        (test::shared_dir() / "models/realesrgan").string() + " --set src.path=" + video.string() +
                        " --set encode.path=" + out.string() + " 2>&1";
  std::string output;
  ASSERT_EQ(test::shell(command, &output), 0) << output;
  json probe = test::probe(out);
  EXPECT_EQ(probe["width"], 192);
  EXPECT_EQ(probe["height"], 128);
  EXPECT_EQ(probe["nb_read_frames"], "7");
}

namespace {

at::Tensor read_floats(const fs::path& file, std::vector<std::int64_t> shape) {
  at::Tensor t = at::empty(shape, at::kFloat);
  std::ifstream(file, std::ios::binary).read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  return t;
}

}  // namespace

// Small networks with the published architecture and key names and random weights, written by
// torch.save with PyTorch's own output: the x2 and x1 RRDBNet variants (pixel-unshuffle) and an
// SRVGGNetCompact of another depth load and compute the same.
class EsrganTinyModels : public testing::TestWithParam<std::string> {};

TEST_P(EsrganTinyModels, MatchPyTorchOnTheSameCheckpoint) {
  c10::InferenceMode inference;
  fs::path file = test::temp_dir("tiny") / "model.pth";
  test::python_fixture(GetParam() + " " + file.string());
  sr::Architecture a;
  auto network = network_from(file, &a);
  at::Tensor x = read_floats(file.string() + ".in", {1, 3, 12, 16});
  at::Tensor want = read_floats(file.string() + ".out", {1, 3, 12 * a.scale, 16 * a.scale});
  at::Tensor got = network->forward(x);
  ASSERT_EQ(got.sizes(), want.sizes()) << a.describe();
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-4) << a.describe();
}

INSTANTIATE_TEST_SUITE_P(Variants, EsrganTinyModels,
                         testing::Values("tiny-rrdbnet 4", "tiny-rrdbnet 2", "tiny-rrdbnet 1", "tiny-srvgg"));

TEST(EsrganNode, PadsOddSizesForPixelUnshuffleNetworks) {
  fs::path file = test::temp_dir("tiny") / "x2.pth";
  test::python_fixture("tiny-rrdbnet 2 " + file.string());
  at::Tensor odd = at::randint(0, 256, {3, 9, 13}, at::kByte);
  auto out = upscale(esrgan(), {odd}, {{"model", file.string()}, {"tile", 0}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].sizes(), (std::vector<std::int64_t>{3, 18, 26}));
}

TEST(EsrganNode, RunsATorchScriptModule) {
  fs::path file = test::temp_dir("ts") / "upsample.pt";
  test::python_fixture("torchscript " + file.string());  // nearest x2
  at::Tensor image = at::randint(0, 256, {3, 10, 14}, at::kByte);
  auto out = upscale(esrgan(), {image}, {{"model", file.string()}});
  ASSERT_EQ(out.size(), 1u);
  at::Tensor expected = image.repeat_interleave(2, 1).repeat_interleave(2, 2);
  EXPECT_TRUE(at::equal(out[0], expected));
}

TEST(EsrganNode, Bf16OnTheCpuStaysCloseToFp32) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4fast.param");
  at::Tensor input = read_image(reference("in.png"));
  json params{{"model", model("realesrgan-x4fast").string()}};
  at::Tensor fp32 = upscale(esrgan(), {input}, params).at(0);
  params["precision"] = "bf16";
  double psnr = test::psnr(upscale(esrgan(), {input}, params).at(0), fp32);
  std::printf("x4fast bf16 vs fp32: %.1f dB\n", psnr);
  EXPECT_GT(psnr, 30.0);
}

TEST(EsrganNode, ACheckpointMissingTensorsFailsAtLoadNamingThem) {
  // Looks like RRDBNet (one block) by its first keys, but most tensors are absent.
  fs::path file = test::temp_dir() / "partial.safetensors";
  weights::save_safetensors(file,
                            {{"params_ema.conv_first.weight", at::zeros({8, 3, 3, 3})},
                             {"params_ema.body.0.rdb1.conv1.weight", at::zeros({4, 8, 3, 3})},
                             {"params_ema.conv_last.weight", at::zeros({3, 8, 3, 3})}},
                            false);
  json graph = test::graph_json(json::array(
      {{{"id", "src"}, {"type", "generator.pattern"}, {"params", {{"frames", 2}, {"width", 16}, {"height", 16}}}},
       {{"id", "up"},
        {"type", "upscaler.esrgan"},
        {"inputs", {{"in", "src.out"}}},
        {"params", {{"model", file.string()}, {"device", "cpu"}}}},
       {{"id", "sink"}, {"type", "test.sink"}, {"inputs", {{"in", "up.out"}}}}}));
  RunResult r = test::run(graph);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::bad_input);
  EXPECT_EQ(r.failure->phase, Phase::load);
  const std::string message = r.failure->user_message();
  EXPECT_NE(message.find("does not match RRDBNet x4, 1 blocks"), std::string::npos) << message;
  EXPECT_NE(message.find("missing"), std::string::npos) << message;
  EXPECT_NE(message.find("conv_first.bias"), std::string::npos) << message;
}

TEST(ReelModelsCommand, ListsConvertsAndRefusesByName) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4fast.param");
  const std::string reel = REEL_EXECUTABLE;
  std::string out;
  ASSERT_EQ(test::shell(reel + " models " + (test::shared_dir() / "models/realesrgan").string() + " 2>&1", &out), 0);
  EXPECT_NE(out.find("RRDBNet x4, 23 blocks, 64 features, 32 growth, 16.70M parameters (ncnn), run with upscaler.esrgan"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("SRVGGNetCompact x4, 32 convs, 64 features, PReLU, 1.21M parameters (ncnn)"), std::string::npos)
      << out;
  EXPECT_EQ(out.find(".bin"), std::string::npos) << "an ncnn model is listed once, by its .param";

  fs::path dir = test::temp_dir("models-cli");
  fs::path converted = dir / "x4fast.safetensors";
  ASSERT_EQ(test::shell(reel + " models convert " + model("realesrgan-x4fast").string() + " " + converted.string() +
                        " 2>&1"),
            0);
  auto names = weights::normalized_names(weights::open_checkpoint(converted));
  EXPECT_EQ(names.size(), 101u);
  EXPECT_EQ(names.front(), "body.0.weight");
  EXPECT_EQ(names.back(), "body.66.bias");
  // Never replaced without --overwrite (exit 74, I/O).
  EXPECT_EQ(test::shell(reel + " models convert " + model("realesrgan-x4fast").string() + " " + converted.string() +
                        " 2>&1", &out),
            74)
      << out;
  // A file name that is not UTF-8 is listed, not a reason to abort the JSON listing.
  fs::path odd = test::temp_dir("models-odd");
  test::write_file(odd / std::string("caf\xe9.pth"), "not a checkpoint");
  ASSERT_EQ(test::shell(reel + " models --json " + odd.string() + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("caf\xef\xbf\xbd.pth"), std::string::npos) << out;  // U+FFFD in place of the byte
  fs::path evil = dir / "evil.pth";
  test::python_fixture("evil " + evil.string());
  EXPECT_EQ(test::shell(reel + " models convert " + evil.string() + " " + (dir / "e.safetensors").string() + " 2>&1", &out),
            66);
  EXPECT_NE(out.find("posix.system"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir / "e.safetensors"));
}
