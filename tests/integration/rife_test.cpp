// interpolator.rife: counts, times and order with a model whose output is known (lerp at t, as
// TorchScript), padding and cropping, scene cuts, and the native IFNet v4.6 on the shared
// reference (random weights in all three file forms, outputs of an independent implementation).
#include "flow_models.h"
#include "interpolators.h"
#include "media.h"
#include "scene.h"
#include "test_support.h"

#include <reel/runtime/memory.h>
#include <reel/runtime/report.h>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace reel;

namespace {

#define REQUIRE_RIFE_REFERENCE() REEL_REQUIRE_SHARED("reference/rife/weights.tar.xz")

fs::path rife_weights(const std::string& file) { return test::shared_archive("reference/rife/weights.tar.xz") / file; }
fs::path reference(const std::string& name) { return test::shared_dir() / "reference/rife" / name; }

// A TorchScript module with the flow-model contract that returns lerp(img0, img1, t), written by
// torch.jit.save in tests/fixtures/ifnet.py.
fs::path lerp_model() {
  static fs::path path;
  if (path.empty()) {
    fs::path file = test::temp_dir("lerp") / "lerp.pt";
    test::python_fixture("lerp-torchscript " + file.string(), "ifnet.py");
    path = file;
  }
  return path;
}

at::Tensor read_image(const fs::path& file) { return test::source_frames("source.image", {{"path", file.string()}}).at(0); }

const NodeType& rife() { return test::catalog().find("interpolator.rife")->type; }

struct Driven {
  StreamDesc out;
  std::vector<at::Tensor> frames;
  std::map<std::string, std::int64_t> counters;
};

// Drives one interpolator.rife node without a graph: configure, load, process each frame, finish.
Driven drive(const std::vector<at::Tensor>& inputs, json params, Rational fps = {8, 1}, const NodeType* type = nullptr) {
  c10::InferenceMode inference;
  json values{{"device", "cpu"}, {"scene_threshold", 1.0}};
  values.update(params);
  const NodeType& t = type ? *type : rife();
  StreamDesc in{static_cast<int>(inputs[0].size(2)), static_cast<int>(inputs[0].size(1)), 3, fps,
                static_cast<std::int64_t>(inputs.size())};
  std::vector<StreamDesc> streams{in};
  Params p = validate_params(t, values);
  auto node = t.create();
  Driven d;
  d.out = node->configure(NodeConfig{"rife", p, streams}).at(0);
  node->load();
  auto collect = [&](Emitter& e) {
    for (auto& [port, frame] : e.frames()) d.frames.push_back(frame.image);
  };
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    Emitter e;
    node->process(Frame{inputs[i], static_cast<std::int64_t>(i), {}}, 0, e);
    collect(e);
  }
  Emitter e;
  node->finish(e);
  collect(e);
  for (const auto& [name, value] : node->counters()) d.counters[name] = value;
  node->unload();
  return d;
}

// Frames that say where they are: channel 0 is 0 on even and 255 on odd frames (so a blend of a
// pair gives 255 t or 255 (1 - t)), channel 1 is the frame's index, channel 2 is 128.
std::vector<at::Tensor> probe_frames(int count, int width = 40, int height = 24) {
  std::vector<at::Tensor> frames;
  for (int k = 0; k < count; ++k) {
    at::Tensor f = at::empty({3, height, width}, at::kByte);
    f[0].fill_(k % 2 ? 255 : 0);
    f[1].fill_(k);
    f[2].fill_(128);
    frames.push_back(f);
  }
  return frames;
}

// Checks the outputs of probe_frames against the definition: output j at input position
// j * in / out; on an input it is that input, unchanged; between inputs k and k+1 at t it is
// their lerp (within rounding).
void expect_retimed(const std::vector<at::Tensor>& inputs, const std::vector<at::Tensor>& outputs, Rational in,
                    Rational out) {
  const std::int64_t n = static_cast<std::int64_t>(inputs.size());
  const __int128 num = static_cast<__int128>(in.num) * out.den, den = static_cast<__int128>(in.den) * out.num;
  const std::int64_t expected_count = n == 0 ? 0 : static_cast<std::int64_t>((n - 1) * den / num) + 1;
  ASSERT_EQ(static_cast<std::int64_t>(outputs.size()), expected_count);
  for (std::int64_t j = 0; j < expected_count; ++j) {
    SCOPED_TRACE("output " + std::to_string(j));
    const std::int64_t k = static_cast<std::int64_t>(j * num / den);
    const std::int64_t rest = static_cast<std::int64_t>(j * num % den);
    const at::Tensor& f = outputs[j];
    if (rest == 0) {
      EXPECT_TRUE(at::equal(f, inputs[k])) << "should be input " << k;
      continue;
    }
    const double t = static_cast<double>(rest) / static_cast<double>(den);
    const double probe = (k % 2 == 0) ? 255 * t : 255 * (1 - t);
    EXPECT_NEAR(f[0][0][0].item<int>(), probe, 0.51) << "t " << t;
    EXPECT_NEAR(f[1][0][0].item<int>(), k + t, 0.51) << "pair " << k << "-" << k + 1;
    EXPECT_EQ(f[2][0][0].item<int>(), 128);
  }
}

at::Tensor hwc(const at::Tensor& chw) { return chw.permute({1, 2, 0}).contiguous(); }

std::unique_ptr<interp::FlowModel> ifnet(const fs::path& file) {
  return interp::load_ifnet(weights::open_checkpoint(file));
}

// The float frame the node computes between a and b (CHW uint8) at t, as H x W x 3.
at::Tensor interpolate(interp::FlowModel& model, const at::Tensor& a, const at::Tensor& b, double t, double scale) {
  c10::InferenceMode inference;
  const int m = interp::padding_multiple(scale);
  return hwc(interp::interpolate_cropped(model, interp::model_input(a, m, "cpu", at::kFloat),
                                         interp::model_input(b, m, "cpu", at::kFloat), t, scale, a.size(1), a.size(2)));
}

int max_level_difference(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kInt) - b.to(at::kInt)).abs().max().item<int>();
}

}  // namespace

// ---- timing, with the lerp model ----

TEST(RifeTiming, MultipliersGiveExactCountsTimestepsAndOrder) {
  for (int m : {2, 3, 4})
    for (int n : {1, 2, 49}) {
      SCOPED_TRACE("m " + std::to_string(m) + ", N " + std::to_string(n));
      auto inputs = probe_frames(n);
      Driven d = drive(inputs, {{"model", lerp_model().string()}, {"multiplier", m}});
      EXPECT_EQ(d.out.fps, (Rational{8 * m, 1}));
      EXPECT_EQ(*d.out.frame_count, (n - 1) * m + 1);
      expect_retimed(inputs, d.frames, {8, 1}, {8 * m, 1});
      EXPECT_EQ(d.counters["interpolated_frames"], (n - 1) * (m - 1));
    }
}

TEST(RifeTiming, TargetRatesPutEveryFrameAtItsExactTime) {
  struct Case {
    Rational in;
    std::string fps;
    Rational out;
  };
  for (const Case& c : {Case{{8, 1}, "24", {24, 1}}, Case{{24, 1}, "60", {60, 1}}, Case{{30000, 1001}, "60", {60, 1}},
                        Case{{24, 1}, "30000/1001", {30000, 1001}}}) {
    SCOPED_TRACE(c.in.str() + " -> " + c.fps);
    auto inputs = probe_frames(49);
    Driven d = drive(inputs, {{"model", lerp_model().string()}, {"fps", c.fps}}, c.in);
    EXPECT_EQ(d.out.fps.str(), c.out.str());
    EXPECT_EQ(*d.out.frame_count, static_cast<std::int64_t>(d.frames.size()));
    expect_retimed(inputs, d.frames, c.in, c.out);
  }
}

TEST(RifePadding, FramesComeBackAtTheirSizeWithNoStripSqueezeOrShift) {
  for (auto [w, h] : {std::pair{720, 480}, std::pair{200, 120}}) {
    SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h));
    at::manual_seed(w);
    at::Tensor a = at::randint(0, 256, {3, h, w}, at::kByte);
    at::Tensor b = at::randint(0, 256, {3, h, w}, at::kByte);
    Driven d = drive({a, b}, {{"model", lerp_model().string()}, {"multiplier", 2}});
    ASSERT_EQ(d.frames.size(), 3u);
    const at::Tensor& mid = d.frames[1];
    ASSERT_EQ(mid.sizes(), a.sizes());
    at::Tensor expected = (a.to(at::kFloat) + b.to(at::kFloat)).div_(2);
    at::Tensor error = (mid.to(at::kFloat) - expected).abs();
    EXPECT_LE(error.max().item<float>(), 0.51f);
    // The padding is at the right and bottom: the last column and row are where a crop from the
    // wrong side, a resize or a zero strip would show first.
    EXPECT_LE(error.select(2, w - 1).max().item<float>(), 0.51f);
    EXPECT_LE(error.select(1, h - 1).max().item<float>(), 0.51f);
  }
}

// ---- scene cuts and identical neighbours ----

TEST(RifeScenes, ACutRepeatsTheEarlierFrameAndIdenticalPairsSkipTheModel) {
  std::atomic<int> calls{0};
  NodeType counting = interp::rife_node_type([&](double) { ++calls; });
  at::Tensor black = at::zeros({3, 24, 40}, at::kByte), white = at::full({3, 24, 40}, 255, at::kByte);
  at::Tensor grey = at::full({3, 24, 40}, 230, at::kByte);
  EXPECT_DOUBLE_EQ(interp::scene_difference(black, white), 1.0);
  EXPECT_DOUBLE_EQ(interp::scene_difference(white, white), 0.0);

  Driven d = drive({black, white, white, grey}, {{"model", lerp_model().string()}, {"scene_threshold", 0.2}},
                   {8, 1}, &counting);
  ASSERT_EQ(d.frames.size(), 7u);
  EXPECT_TRUE(at::equal(d.frames[1], black));  // the cut: the earlier frame holds until it
  EXPECT_TRUE(at::equal(d.frames[2], white));
  EXPECT_TRUE(at::equal(d.frames[3], white));  // identical neighbours: no model needed
  EXPECT_NEAR(d.frames[5][0][0][0].item<int>(), 242.5, 0.51);  // white -> grey (0.1 apart) is interpolated
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(d.counters["scene_cuts"], 1);
  EXPECT_EQ(d.counters["identical_pairs"], 1);
  EXPECT_EQ(d.counters["pairs_interpolated"], 1);
  EXPECT_EQ(d.counters["interpolated_frames"], 1);
}

TEST(RifeScenes, TheRunReportCountsCutsAndIdenticalPairs) {
  json graph = test::graph_json(json::array(
      {{{"id", "src"}, {"type", "generator.pattern"}, {"params", {{"frames", 3}, {"width", 32}, {"height", 32}}}},
       {{"id", "interp"},
        {"type", "interpolator.rife"},
        {"inputs", {{"in", "src.out"}}},
        {"params", {{"model", lerp_model().string()}, {"device", "cpu"}}}},
       {{"id", "sink"}, {"type", "test.sink"}, {"inputs", {{"in", "interp.out"}}}}}));
  RunResult r = test::run(graph);
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  json report = run_report(r);
  const json& counters = report["nodes"][1]["counters"];
  ASSERT_TRUE(counters.is_object()) << report.dump(2);
  // Two pairs, each interpolated, cut or identical; at m = 2 one frame per interpolated pair.
  EXPECT_EQ(counters["pairs_interpolated"].get<int>() + counters["scene_cuts"].get<int>() +
                counters["identical_pairs"].get<int>(),
            2);
  EXPECT_EQ(counters["interpolated_frames"], counters["pairs_interpolated"]);
  EXPECT_EQ(r.nodes[1].frames_out, 5);
}

// ---- the native IFNet v4.6 on the shared reference ----

TEST(RifeReference, AllThreeWeightFilesLoadToIdenticalTensorsOfThePublishedShapes) {
  REQUIRE_RIFE_REFERENCE();
  weights::Expected expected = interp::ifnet_expected();
  std::int64_t parameters = 0;
  for (const auto& [name, shape] : expected) parameters += c10::multiply_integers(shape);
  EXPECT_EQ(expected.size(), 120u);
  EXPECT_EQ(parameters, 5'306'256);
  EXPECT_EQ(expected.front().first, "block0.conv0.0.0.weight");
  EXPECT_EQ(expected.front().second, (std::vector<std::int64_t>{96, 7, 3, 3}));

  std::vector<std::vector<std::pair<std::string, at::Tensor>>> loaded;
  for (const char* file : {"flownet.pkl", "ifnet_cpu.pth", "model.safetensors"}) {
    SCOPED_TRACE(file);
    weights::Checkpoint checkpoint = weights::open_checkpoint(rife_weights(file));
    EXPECT_EQ(checkpoint.parameter_count(), 5'306'256u);
    interp::Recognition r = interp::recognise(checkpoint);
    EXPECT_TRUE(r.loadable) << r.what;
    loaded.push_back(weights::match(checkpoint, expected, "RIFE IFNet v4.6"));
  }
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(at::equal(loaded[0][i].second, loaded[1][i].second)) << expected[i].first;
    EXPECT_TRUE(at::equal(loaded[0][i].second, loaded[2][i].second)) << expected[i].first;
  }
}

TEST(RifeReference, ReproducesEveryReferenceOutputWithin1e4) {
  REQUIRE_RIFE_REFERENCE();
  std::ifstream file(reference("cases.json"));
  json cases = json::parse(file)["cases"];
  ASSERT_EQ(cases.size(), 6u);
  auto model = ifnet(rife_weights("flownet.pkl"));
  for (const json& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    at::Tensor a = read_image(reference(c["img0"])), b = read_image(reference(c["img1"]));
    const std::int64_t h = c["height"], w = c["width"];
    EXPECT_EQ(c["pad_multiple"].get<int>(), interp::padding_multiple(c["scale"]));
    at::Tensor expected = test::read_npy(reference(c["name"].get<std::string>() + ".npy"));
    ASSERT_EQ(expected.sizes(), (std::vector<std::int64_t>{h, w, 3}));
    at::Tensor ours = interpolate(*model, a, b, c["t"], c["scale"]);
    const double error = (ours - expected).abs().max().item<double>();
    std::printf("%s: max abs %.3g\n", c["name"].get<std::string>().c_str(), error);
    EXPECT_LE(error, 1e-4);
  }
}

TEST(RifeReference, TheNodeMatchesTheReferencePngsAtEveryTAndScale) {
  REQUIRE_RIFE_REFERENCE();
  at::Tensor a = read_image(reference("a0.png")), b = read_image(reference("a1.png"));
  for (const char* scale : {"1", "0.5"}) {
    SCOPED_TRACE(scale);
    // multiplier 4 gives t = 0.25, 0.5, 0.75 between the two frames; from all three files.
    for (const char* weights_file : {"flownet.pkl", "ifnet_cpu.pth", "model.safetensors"}) {
      Driven d = drive({a, b}, {{"model", rife_weights(weights_file).string()}, {"multiplier", 4},
                                {"scale", std::stod(scale)}});
      ASSERT_EQ(d.frames.size(), 5u);
      for (int i = 1; i <= 3; ++i) {
        at::Tensor expected = read_image(reference(std::string("a_s") + scale + "_t" + (i == 1 ? "0.25" : i == 2 ? "0.5" : "0.75") + ".png"));
        EXPECT_LE(max_level_difference(d.frames[i], expected), 1) << weights_file << " t " << i / 4.0;
      }
    }
  }
}

// v4.5 is v4.6 without the sixth (unused) channel after lastconv's pixel shuffle: v4.6 weights
// cut to v4.5's shapes must give the same frames.
TEST(RifeReference, AV45CheckpointLoadsAndComputesAsV46) {
  REQUIRE_RIFE_REFERENCE();
  weights::Checkpoint v46 = weights::open_checkpoint(rife_weights("model.safetensors"));
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (std::size_t i = 0; i < v46.tensors().size(); ++i) {
    const std::string& name = v46.tensors()[i].name;
    at::Tensor t = v46.read(i);
    if (name.find("lastconv.0.") != std::string::npos) t = t.narrow(name.ends_with("weight") ? 1 : 0, 0, 20).contiguous();
    tensors.emplace_back(name, t);
  }
  fs::path file = test::temp_dir("rife-v45") / "v45.safetensors";
  weights::save_safetensors(file, tensors, false);
  interp::Recognition r = interp::recognise(weights::open_checkpoint(file));
  EXPECT_TRUE(r.loadable);
  EXPECT_EQ(r.what, "RIFE IFNet v4.5");
  at::Tensor a = read_image(reference("a0.png")), b = read_image(reference("a1.png"));
  at::Tensor ours = interpolate(*ifnet(file), a, b, 0.25, 1);
  at::Tensor expected = test::read_npy(reference("a_s1_t0.25.npy"));
  EXPECT_LE((ours - expected).abs().max().item<double>(), 1e-4);
}

TEST(RifeReference, IsDeterministicOnTheCpu) {
  REQUIRE_RIFE_REFERENCE();
  at::Tensor a = read_image(reference("a0.png")), b = read_image(reference("a1.png"));
  auto model = ifnet(rife_weights("model.safetensors"));
  at::Tensor first = interpolate(*model, a, b, 0.3, 1);
  at::Tensor second = interpolate(*model, a, b, 0.3, 1);
  EXPECT_TRUE(at::equal(first, second));
}

// Frames that are not a multiple of the padding (200x120 -> 224x128 at scale 1, 256x128 at
// 0.5): the node's padding and cropping against the independent Python implementation's.
TEST(RifeReference, PaddingAndCroppingMatchAnIndependentImplementation) {
  REQUIRE_RIFE_REFERENCE();
  const int w = 200, h = 120;
  at::manual_seed(11);
  auto smooth = [&] {
    at::Tensor low = at::rand({1, 3, 15, 25});
    return at::upsample_bicubic2d(low, {h, w}, false).clamp(0, 1).mul(255).round().to(at::kByte).squeeze(0);
  };
  at::Tensor a = smooth(), b = smooth();
  fs::path dir = test::temp_dir("rife-pad");
  auto write = [&](const at::Tensor& f, const fs::path& file) {
    at::Tensor x = hwc(f);
    std::ofstream(file, std::ios::binary).write(static_cast<const char*>(x.data_ptr()), static_cast<std::streamsize>(x.nbytes()));
  };
  write(a, dir / "a.u8");
  write(b, dir / "b.u8");
  auto model = ifnet(rife_weights("ifnet_cpu.pth"));
  for (double scale : {1.0, 0.5}) {
    SCOPED_TRACE(scale);
    fs::path out = dir / ("out" + std::to_string(scale) + ".f32");
    test::python_fixture("reference " + rife_weights("ifnet_cpu.pth").string() + " " + (dir / "a.u8").string() + " " +
                             (dir / "b.u8").string() + " " + std::to_string(h) + " " + std::to_string(w) + " 0.25 " +
                             std::to_string(scale) + " " + out.string(),
                         "ifnet.py");
    at::Tensor expected = at::empty({h, w, 3}, at::kFloat);
    std::ifstream(out, std::ios::binary).read(static_cast<char*>(expected.data_ptr()), static_cast<std::streamsize>(expected.nbytes()));
    const double error = (interpolate(*model, a, b, 0.25, scale) - expected).abs().max().item<double>();
    std::printf("200x120 at scale %g: max abs %.3g against the Python implementation\n", scale, error);
    EXPECT_LE(error, 1e-4);
  }
}

TEST(RifeReference, Bf16OnTheCpuStaysCloseToFp32) {
  REQUIRE_RIFE_REFERENCE();
  at::Tensor a = read_image(reference("a0.png")), b = read_image(reference("a1.png"));
  json params{{"model", rife_weights("model.safetensors").string()}};
  Driven fp32 = drive({a, b}, params);
  params["precision"] = "bf16";
  Driven bf16 = drive({a, b}, params);
  ASSERT_EQ(bf16.frames.size(), 3u);
  const double psnr = test::psnr(fp32.frames[1], bf16.frames[1]);
  std::printf("bf16 vs fp32: %.1f dB\n", psnr);
  EXPECT_GT(psnr, 25.0);
}

// ---- out of memory, memory, settings ----

namespace {

// interpolator.rife under another name, whose model calls throw std::bad_alloc on demand.
struct OomInjection {
  std::atomic<int> calls{0}, fail_from{-1}, fail_count{0};
  std::vector<double> scales;
  PluginCatalog catalog;
  OomInjection() {
    catalog.load_directory(REEL_PLUGIN_DIR);
    NodeType type = interp::rife_node_type([this](double scale) {
      scales.push_back(scale);
      int call = calls++;
      if (fail_from >= 0 && call >= fail_from && fail_count-- > 0) throw std::bad_alloc();
    });
    type.name = "test.rife_oom";
    catalog.add_builtin(std::move(type));
  }
  RunResult run(const fs::path& out, double scale) {
    json graph = test::graph_json(json::array(
        {{{"id", "src"}, {"type", "generator.pattern"}, {"params", {{"frames", 4}, {"width", 64}, {"height", 48}}}},
         {{"id", "interp"},
          {"type", "test.rife_oom"},
          {"inputs", {{"in", "src.out"}}},
          {"params", {{"model", rife_weights("model.safetensors").string()}, {"scale", scale}, {"device", "cpu"},
                      {"scene_threshold", 1.0}}}},
         {{"id", "encode"},
          {"type", "encoder.ffmpeg"},
          {"inputs", {{"in", "interp.out"}}},
          {"params", {{"path", out.string()}, {"codec", "ffv1"}}}}}));
    return run_graph(test::graph(graph), catalog, {});
  }
};

}  // namespace

TEST(RifeOutOfMemory, HalvesTheScaleAndRetriesTheSamePairWithNothingDroppedOrRepeated) {
  REQUIRE_RIFE_REFERENCE();
  OomInjection injection;
  fs::path dir = test::temp_dir("rife-oom");
  RunResult clean = injection.run(dir / "clean.mkv", 0.5);
  ASSERT_TRUE(clean.ok()) << clean.failure->user_message();

  injection.calls = 0;
  injection.scales.clear();
  injection.fail_from = 1;  // the second pair's model call, at scale 1
  injection.fail_count = 1;
  RunResult degraded = injection.run(dir / "degraded.mkv", 1);
  ASSERT_TRUE(degraded.ok()) << degraded.failure->user_message();
  EXPECT_EQ(degraded.nodes[1].oom_retries, 1);
  EXPECT_EQ(degraded.nodes[1].frames_in, 4);
  EXPECT_EQ(degraded.nodes[1].frames_out, 7);
  EXPECT_EQ(injection.scales, (std::vector<double>{1, 1, 0.5, 0.5}));  // pair 1 at 1, pair 2 failed, retried at 0.5
  auto a = test::source_frames("source.video", {{"path", (dir / "clean.mkv").string()}});
  auto b = test::source_frames("source.video", {{"path", (dir / "degraded.mkv").string()}});
  ASSERT_EQ(a.size(), 7u);
  ASSERT_EQ(b.size(), 7u);
  // Frames 0, 2, 4, 6 are the inputs; 3 and 5 were made at scale 0.5 as in the clean run.
  for (int i : {0, 2, 3, 4, 5, 6}) EXPECT_LE(max_level_difference(a[i], b[i]), 1) << "frame " << i;
}

TEST(RifeOutOfMemory, PastTheSmallestScaleFailsAsOutOfMemoryNamingTheSetting) {
  REQUIRE_RIFE_REFERENCE();
  OomInjection injection;
  injection.fail_from = 0;
  injection.fail_count = 1000;
  fs::path out = test::temp_dir("rife-oom") / "never.mkv";
  RunResult result = injection.run(out, 1);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.failure->kind, ErrorKind::out_of_memory);
  EXPECT_EQ(result.nodes[1].oom_retries, 2);  // 1 -> 0.5 -> 0.25, then nothing smaller
  const std::string message = result.failure->user_message();
  EXPECT_NE(message.find("at scale 0.25"), std::string::npos) << message;
  EXPECT_NE(message.find("'scale' (the node halves it on its own down to 0.25)"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(out));
}

TEST(RifeMemory, UnloadGivesTheModelsMemoryBack) {
  REQUIRE_RIFE_REFERENCE();
  json graph = test::graph_json(json::array(
      {{{"id", "src"}, {"type", "generator.pattern"}, {"params", {{"frames", 3}, {"width", 64}, {"height", 64}}}},
       {{"id", "interp"},
        {"type", "interpolator.rife"},
        {"inputs", {{"in", "src.out"}}},
        {"params", {{"model", rife_weights("flownet.pkl").string()}, {"device", "cpu"}}}},
       {{"id", "sink"}, {"type", "test.sink"}, {"inputs", {{"in", "interp.out"}}}}}));
  ASSERT_TRUE(test::run(graph).ok());  // warm-up: thread pools and allocator arenas
  release_cached_memory();
  const std::uint64_t baseline = test::rss_bytes();
  RunResult result = test::run(graph);
  ASSERT_TRUE(result.ok()) << result.failure->user_message();
  const std::uint64_t after = test::rss_bytes();
  std::printf("IFNet v4.6: RSS baseline %.1f MB, grew %.1f MB across load, after the run %.1f MB\n", baseline / 1e6,
              result.nodes[1].rss_after_load_bytes / 1e6, after / 1e6);
  EXPECT_GT(result.nodes[1].rss_after_load_bytes, 18'000'000);  // 5.3M fp32 parameters were resident
  EXPECT_LT(after, baseline + 8'000'000);
}

// A long-lived worker sees many frame sizes: nothing may be kept per size (RIFE's own warp keeps a
// grid per size forever). Two rounds of five new sizes each; what the second round leaves behind
// must be what the first did.
TEST(RifeMemory, ManyFrameSizesLeaveNothingBehind) {
  REQUIRE_RIFE_REFERENCE();
  auto model = ifnet(rife_weights("model.safetensors"));
  auto round = [&](int first) {
    for (int side = first; side < first + 5 * 64; side += 64) {
      at::Tensor a = at::randint(0, 256, {3, side, side + 32}, at::kByte);
      interpolate(*model, a, a.flip({2}), 0.5, 1);
    }
    release_cached_memory();
    return test::rss_bytes();
  };
  round(256);  // warm-up: thread pools, oneDNN kernels
  const std::uint64_t after_first = round(288), after_second = round(320);
  std::printf("RSS after five sizes %.1f MB, after five more %.1f MB\n", after_first / 1e6, after_second / 1e6);
  EXPECT_LT(after_second, after_first + 4'000'000);
}

TEST(RifeMemory, TheEstimateCoversTheWeightsAndOnePair) {
  REQUIRE_RIFE_REFERENCE();
  StreamDesc in{720, 480, 3, {8, 1}, 49};
  std::vector<StreamDesc> inputs{in};
  for (auto [precision, element] : {std::pair{"fp32", 4}, std::pair{"bf16", 2}}) {
    Params p = validate_params(rife(), {{"model", rife_weights("flownet.pkl").string()}, {"device", "cpu"},
                                        {"precision", precision}});
    auto node = rife().create();
    node->configure(NodeConfig{"rife", p, inputs});
    auto estimate = node->estimate();
    ASSERT_EQ(estimate.size(), 1u);
    EXPECT_EQ(estimate[0].device, "cpu");
    EXPECT_EQ(estimate[0].weight_bytes, 5'306'256u * element);
    // Measured (bench/rife-vs-pytorch.sh): 196 MB for one fp32 pair at 720x480, scale 1.
    EXPECT_GT(estimate[0].working_bytes, 170'000'000u * element / 4) << precision;
    EXPECT_LT(estimate[0].working_bytes, 260'000'000u * element / 4) << precision;
    node->unload();
  }
}

TEST(RifeMemory, PeakDoesNotGrowWithClipLength) {
  REQUIRE_RIFE_REFERENCE();
  auto peak = [](int frames) {
    json graph = test::graph_json(json::array(
        {{{"id", "src"}, {"type", "generator.pattern"}, {"params", {{"frames", frames}, {"width", 96}, {"height", 64}}}},
         {{"id", "interp"},
          {"type", "interpolator.rife"},
          {"inputs", {{"in", "src.out"}}},
          {"params", {{"model", rife_weights("model.safetensors").string()}, {"device", "cpu"}}}},
         {{"id", "sink"}, {"type", "test.sink"}, {"inputs", {{"in", "interp.out"}}}}}));
    RunResult r = test::run(graph);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.nodes[1].frames_out, 2 * frames - 1);
    return static_cast<double>(r.peak_rss_bytes);
  };
  peak(10);  // warm-up
  const double short_run = peak(20), long_run = peak(120);
  std::printf("peak RSS: 20 frames %.1f MB, 120 frames %.1f MB\n", short_run / 1e6, long_run / 1e6);
  EXPECT_LT(long_run, short_run * 1.10);
}

TEST(RifeConfigure, BadSettingsAndOtherModelsAreNamedBeforeAnythingLoads) {
  REQUIRE_RIFE_REFERENCE();
  auto failure_of = [](json params, int channels = 3) {
    params["model"] = params.value("model", rife_weights("model.safetensors").string());
    params["device"] = params.value("device", "cpu");
    StreamDesc in{32, 32, channels, {8, 1}, 3};
    std::vector<StreamDesc> inputs{in};
    try {
      Params p = validate_params(rife(), params);
      rife().create()->configure(NodeConfig{"rife", p, inputs});
    } catch (const Error& e) {
      return std::string(e.what()) + " | " + e.hint();
    }
    ADD_FAILURE() << "configure accepted " << params.dump();
    return std::string();
  };
  EXPECT_NE(failure_of({{"scale", 0.3}}).find("scale 0.3 is not 1, 0.5 or 0.25"), std::string::npos);
  EXPECT_NE(failure_of({{"scale", 0.5}, {"model", lerp_model().string()}}).find("takes no scale"), std::string::npos);
  EXPECT_NE(failure_of({{"fps", "60"}, {"multiplier", 3}}).find("both fps and multiplier"), std::string::npos);
  EXPECT_NE(failure_of({{"fps", "fast"}}).find("is not a rate"), std::string::npos);
  EXPECT_NE(failure_of({{"fps", "1000"}}).find("at most 16"), std::string::npos);
  EXPECT_NE(failure_of({{"fps", "9000000000/300000001"}}).find("terms above 10^9"), std::string::npos);
  EXPECT_NE(failure_of(json::object(), 4).find("takes RGB frames"), std::string::npos);
  EXPECT_NE(failure_of({{"device", "cpu"}, {"precision", "fp16"}}).find("fp16 needs a CUDA device"), std::string::npos);
  EXPECT_NE(failure_of({{"model", "no-such-model"}}).find("looked in"), std::string::npos);

  // Other RIFE versions and other networks are refused by name.
  fs::path dir = test::temp_dir("rife-other");
  auto save = [&](const std::string& name, std::vector<std::pair<std::string, at::Tensor>> tensors) {
    weights::save_safetensors(dir / name, tensors, false);
    return (dir / name).string();
  };
  std::string v47 = save("v47.safetensors", {{"encode.0.weight", at::zeros({32, 3, 3, 3})},
                                             {"block0.conv0.0.0.weight", at::zeros({96, 15, 3, 3})}});
  EXPECT_NE(failure_of({{"model", v47}}).find("RIFE IFNet 4.7 or later"), std::string::npos);
  std::string v40 = save("v40.safetensors", {{"block0.conv0.0.0.weight", at::zeros({120, 7, 3, 3})},
                                             {"block0.convblock.0.0.weight", at::zeros({240, 240, 3, 3})}});
  EXPECT_NE(failure_of({{"model", v40}}).find("RIFE IFNet 4.0-4.4"), std::string::npos);
  std::string esrgan = save("esrgan.safetensors", {{"body.0.weight", at::zeros({64, 3, 3, 3})}});
  EXPECT_NE(failure_of({{"model", esrgan}}).find("not a RIFE IFNet checkpoint"), std::string::npos);
}

TEST(RifeConfigure, ACheckpointMissingATensorFailsAtLoadNamingIt) {
  REQUIRE_RIFE_REFERENCE();
  weights::Checkpoint full = weights::open_checkpoint(rife_weights("model.safetensors"));
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (std::size_t i = 0; i < full.tensors().size(); ++i)
    if (full.tensors()[i].name != "block2.convblock.3.beta") tensors.emplace_back(full.tensors()[i].name, full.read(i));
  fs::path file = test::temp_dir("rife-missing") / "missing.safetensors";
  weights::save_safetensors(file, tensors, false);
  json graph = test::graph_json(json::array(
      {{{"id", "src"}, {"type", "generator.pattern"}, {"params", {{"frames", 2}, {"width", 32}, {"height", 32}}}},
       {{"id", "interp"},
        {"type", "interpolator.rife"},
        {"inputs", {{"in", "src.out"}}},
        {"params", {{"model", file.string()}, {"device", "cpu"}}}},
       {{"id", "sink"}, {"type", "test.sink"}, {"inputs", {{"in", "interp.out"}}}}}));
  RunResult r = test::run(graph);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::bad_input);
  EXPECT_NE(r.failure->user_message().find("block2.convblock.3.beta"), std::string::npos) << r.failure->user_message();
}

// ---- the example graph and the CLI ----

TEST(RifeGraph, TheExampleGraphGivesTheExactRateAndFrameCount) {
  REQUIRE_RIFE_REFERENCE();
  fs::path dir = test::temp_dir("rife-graph");
  struct Case {
    std::string input_fps, set, rate;
    int frames;
  };
  // 7 frames: 24 -> 60 gives floor(6 * 2.5) + 1 = 16; 30000/1001 x2 gives 13 at 60000/1001.
  for (const Case& c : {Case{"24", "interp.fps=60", "60/1", 16}, Case{"30000/1001", "interp.multiplier=2", "60000/1001", 13}}) {
    SCOPED_TRACE(c.set);
    fs::path video = test::make_video(dir, "in.mp4", 48, 32, 7, c.input_fps);
    fs::path out = dir / "out.mp4";
    fs::remove(out);
    std::string command = std::string(REEL_EXECUTABLE) + " run " + REEL_SOURCE_DIR +
                          "/graphs/interpolate-video-rife.json --no-progress --models-dir " +
                          rife_weights("").string() + " --set src.path=" + video.string() + " --set " + c.set +
                          " --set encode.path=" + out.string() + " 2>&1";
    std::string output;
    ASSERT_EQ(test::shell(command, &output), 0) << output;
    EXPECT_NE(output.find("  interp: interpolated_frames "), std::string::npos) << output;  // the node's counters
    json probe = test::probe(out);
    EXPECT_EQ(probe["r_frame_rate"], c.rate);
    EXPECT_EQ(probe["nb_read_frames"], std::to_string(c.frames));
  }
}

TEST(RifeGraph, ReelModelsNamesTheNetworkInEveryFileForm) {
  REQUIRE_RIFE_REFERENCE();
  std::string output;
  ASSERT_EQ(test::shell(std::string(REEL_EXECUTABLE) + " models " + rife_weights("").string() + " --json", &output), 0)
      << output;
  json listing = json::parse(output);
  int found = 0;
  for (const json& entry : listing.is_array() ? listing : listing["models"]) {
    SCOPED_TRACE(entry.dump());
    EXPECT_NE(entry.dump().find("RIFE IFNet v4.6"), std::string::npos);
    EXPECT_NE(entry.dump().find("interpolator.rife"), std::string::npos);
    ++found;
  }
  EXPECT_EQ(found, 3);
}
