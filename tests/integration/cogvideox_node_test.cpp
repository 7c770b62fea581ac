// generator.cogvideox through the executor, with the real FFmpeg nodes around it: every reference
// case (T2V, I2V, V2V) written losslessly and read back matches the reference frames at 50 dB or
// better; failures unload every node and leave no output.
#include "media.h"
#include "test_support.h"

#include <reel/compute.h>
#include <reel/reel.h>
#include <reel/runtime/executor.h>
#include <reel/runtime/failure.h>
#include <reel/runtime/graph.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace reel;

namespace {

#define REQUIRE_COGVIDEOX_CASES() REEL_REQUIRE_SHARED("reference/cogvideox/cases/t2v_5b_ddim/case.json")

fs::path cases(const std::string& relative) { return test::shared_dir() / "reference/cogvideox/cases" / relative; }
fs::path models(const std::string& name) { return test::shared_dir() / "reference/cogvideox/models" / name; }

// The generator's params for a reference case, the model folder given by path.
json generator_params(const json& c) {
  json p = {{"model", models(c["model"]).string()},
            {"prompt", c["prompt"]},
            {"negative_prompt", c["negative_prompt"]},
            {"frames", c["num_frames"]},
            {"width", c["width"]},
            {"height", c["height"]},
            {"steps", c["steps"]},
            {"guidance", c["guidance"]},
            {"dynamic_guidance", c["dynamic_cfg"]},
            {"seed", c["seed"]},
            {"scheduler", c["scheduler"]},
            {"device", "cpu"}};
  if (c.contains("strength")) p["strength"] = c["strength"];
  return p;
}

// gen -> FFV1 bgr0 (lossless RGB); for I2V and V2V a source feeds gen's image or video input.
json case_graph(const json& c, const fs::path& out) {
  json nodes = json::array();
  json gen = {{"id", "gen"}, {"type", "generator.cogvideox"}, {"params", generator_params(c)}};
  if (c["kind"] == "i2v") {
    nodes.push_back({{"id", "src"}, {"type", "source.image"}, {"params", {{"path", cases(c["name"].get<std::string>() + "/input_image.png").string()}}}});
    gen["inputs"] = {{"image", "src.image"}};
  } else if (c["kind"] == "v2v") {
    nodes.push_back({{"id", "src"}, {"type", "source.video"}, {"params", {{"path", cases(c["name"].get<std::string>() + "/input_video.mkv").string()}}}});
    gen["inputs"] = {{"video", "src.out"}};
  }
  nodes.push_back(gen);
  nodes.push_back({{"id", "encode"},
                   {"type", "encoder.ffmpeg"},
                   {"inputs", {{"in", "gen.out"}}},
                   {"params", {{"path", out.string()}, {"codec", "ffv1"}, {"pix_fmt", "bgr0"}}}});
  return test::graph_json(nodes);
}

// Collects the generator's denoising steps as the CLI and the worker see them.
struct StageRecorder : RunObserver {
  std::mutex mutex;
  std::vector<std::pair<std::int64_t, std::int64_t>> steps;
  void on_stage(const std::string& node, const std::string& stage, std::int64_t done, std::int64_t total) override {
    std::lock_guard lock(mutex);
    if (node == "gen" && stage == "denoising") steps.emplace_back(done, total);
  }
};

const NodeReport* report_of(const RunResult& r, const std::string& id) {
  for (const auto& n : r.nodes)
    if (n.id == id) return &n;
  return nullptr;
}

class CogVideoXCase : public testing::TestWithParam<const char*> {};

TEST_P(CogVideoXCase, ThroughTheNodeAndALosslessFileReproducesTheReferenceFrames) {
  REQUIRE_COGVIDEOX_CASES();
  const std::string name = GetParam();
  const json c = json::parse(std::ifstream(cases(name + "/case.json")));
  const fs::path out = test::temp_dir("cogvideox-node") / (name + ".mkv");
  StageRecorder stages;
  RunResult r = test::run(case_graph(c, out), RunOptions{.observer = &stages});
  ASSERT_TRUE(r.ok()) << r.failure->user_message();

  std::vector<at::Tensor> frames = test::source_frames("source.video", {{"path", out.string()}});
  const at::Tensor expected = test::read_npy(cases(name + "/frames_u8.npy")).permute({0, 3, 1, 2});
  ASSERT_EQ(static_cast<std::int64_t>(frames.size()), expected.size(0));
  const at::Tensor ours = at::stack(frames);
  const double psnr = test::psnr(ours, expected);
  std::fprintf(stderr, "%s through the node: %.1f dB\n", name.c_str(), psnr);
  EXPECT_GE(psnr, 50.0);

  // One progress report per denoising step, and the seed in the run report.
  const std::int64_t steps = c["timesteps"].size();
  ASSERT_EQ(static_cast<std::int64_t>(stages.steps.size()), steps);
  for (std::int64_t i = 0; i < steps; ++i) EXPECT_EQ(stages.steps[i], std::make_pair(i + 1, steps));
  const NodeReport* gen = report_of(r, "gen");
  ASSERT_NE(gen, nullptr);
  EXPECT_EQ(gen->state, NodeState::unloaded);
  EXPECT_NE(std::find(gen->facts.begin(), gen->facts.end(), std::make_pair(std::string("seed"), std::to_string(c["seed"].get<int>()))),
            gen->facts.end());
}

INSTANTIATE_TEST_SUITE_P(ReferenceCases, CogVideoXCase,
                         testing::Values("t2v_5b_ddim", "t2v_5b_dpm_dyncfg", "t2v_2b_ddim", "i2v_5b_ddim", "v2v_5b_dpm_dyncfg",
                                         "i2v_15_dpm"));

json small_t2v(const std::string& model, const fs::path& out) {
  return test::graph_json(
      {{{"id", "gen"},
        {"type", "generator.cogvideox"},
        {"params", {{"model", model}, {"prompt", "a fox"}, {"frames", 5}, {"width", 32}, {"height", 32}, {"steps", 2}, {"device", "cpu"}}}},
       {{"id", "encode"}, {"type", "encoder.ffmpeg"}, {"inputs", {{"in", "gen.out"}}}, {"params", {{"path", out.string()}, {"codec", "ffv1"}}}}});
}

void expect_everything_unloaded(const RunResult& r) {
  for (const auto& n : r.nodes)
    EXPECT_TRUE(n.state == NodeState::unloaded || n.state == NodeState::configured || n.state == NodeState::created ||
                n.state == NodeState::failed)
        << n.id << " is " << to_string(n.state);
}

TEST(CogVideoXNode, AModelFolderWithoutItsTransformerIsNamedBeforeAnythingLoads) {
  REQUIRE_COGVIDEOX_CASES();
  const fs::path folder = test::temp_dir("cogvideox-broken") / "model";
  fs::copy(models("tiny-cogvideox-5b"), folder, fs::copy_options::recursive);
  fs::remove_all(folder / "transformer");
  const fs::path out = test::temp_dir("cogvideox-out") / "out.mkv";
  RunResult r = test::run(small_t2v(folder.string(), out));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::bad_input) << r.failure->user_message();
  EXPECT_EQ(r.failure->node_id, "gen");
  EXPECT_NE(r.failure->reason.find("'transformer'"), std::string::npos) << r.failure->reason;
  EXPECT_FALSE(fs::exists(out));
  expect_everything_unloaded(r);
}

TEST(CogVideoXNode, AnImageToVideoModelWithoutAnImageIsRefusedAtConfigure) {
  REQUIRE_COGVIDEOX_CASES();
  const fs::path out = test::temp_dir("cogvideox-out") / "out.mkv";
  RunResult r = test::run(small_t2v(models("tiny-cogvideox-5b-i2v").string(), out));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::invalid_graph) << r.failure->user_message();
  EXPECT_NE(r.failure->reason.find("image-to-video model"), std::string::npos) << r.failure->reason;
  EXPECT_FALSE(fs::exists(out));
}

TEST(CogVideoXNode, AnImageForATextToVideoModelIsRefusedAtConfigure) {
  REQUIRE_COGVIDEOX_CASES();
  const fs::path out = test::temp_dir("cogvideox-out") / "out.mkv";
  json graph = small_t2v(models("tiny-cogvideox-5b").string(), out);
  graph["nodes"].push_back({{"id", "src"}, {"type", "source.image"}, {"params", {{"path", cases("i2v_5b_ddim/input_image.png").string()}}}});
  graph["nodes"][0]["inputs"] = {{"image", "src.image"}};
  RunResult r = test::run(graph);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.failure->reason.find("not from an image"), std::string::npos) << r.failure->reason;
}

// Out of memory while sampling, for real: the CLI under a 900 MiB data limit (prlimit), asked
// for 1024x1024x49, whose attention chunks take 1 GiB each: the first denoising step fails.
TEST(CogVideoXNode, OutOfMemoryWhileSamplingFailsWithTheOffloadHintAndUnloadsEverything) {
  REQUIRE_COGVIDEOX_CASES();
  const fs::path dir = test::temp_dir("cogvideox-oom"), out = dir / "out" / "video.mkv";
  fs::create_directories(out.parent_path());
  json graph = small_t2v(models("tiny-cogvideox-5b").string(), out);
  graph["nodes"][0]["params"]["width"] = 1024;
  graph["nodes"][0]["params"]["height"] = 1024;
  graph["nodes"][0]["params"]["frames"] = 49;
  std::ofstream(dir / "graph.json") << graph.dump();
  std::string output;
  const int status = test::shell("prlimit --data=" + std::to_string(900ll << 20) + " " + REEL_EXECUTABLE + " run " +
                                     (dir / "graph.json").string() + " --no-progress --report " +
                                     (dir / "report.json").string() + " 2>&1",
                                 &output);
  EXPECT_EQ(status, exit_code(ErrorKind::out_of_memory)) << output;
  EXPECT_NE(output.find("out of memory in node \"gen\""), std::string::npos) << output;
  EXPECT_NE(output.find("offload"), std::string::npos) << output;
  EXPECT_EQ(output.find("frame #"), std::string::npos) << "no libtorch backtrace for the user: " << output;
  const json report = json::parse(std::ifstream(dir / "report.json"));
  EXPECT_EQ(report["error"]["kind"], "out of memory");
  EXPECT_EQ(report["nodes"][0]["counters"]["denoising_steps"], 0) << "failed inside the first step";
  for (const json& node : report["nodes"]) EXPECT_NE(node["final_state"], "loaded") << node.dump();
  EXPECT_TRUE(fs::is_empty(out.parent_path())) << "no output, not even a partial one";
}

TEST(CogVideoXNode, SeedMinusOneDrawsASeedAndReportsIt) {
  REQUIRE_COGVIDEOX_CASES();
  const fs::path out = test::temp_dir("cogvideox-out") / "out.mkv";
  RunResult r = test::run(small_t2v(models("tiny-cogvideox-2b").string(), out));
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  const NodeReport* gen = report_of(r, "gen");
  auto seed = std::find_if(gen->facts.begin(), gen->facts.end(), [](const auto& f) { return f.first == "seed"; });
  ASSERT_NE(seed, gen->facts.end());
  EXPECT_FALSE(seed->second.empty());
  // 5 frames are 2 latent frames, which the VAE decodes to 8 (as the reference does).
  EXPECT_EQ(test::probe(out)["nb_read_frames"], "8");
  EXPECT_EQ(r.nodes.front().outputs.at(0).frame_count, 8) << "the stream said so at configure";
}

}  // namespace

namespace {

// `reel models` names each folder's variant and components, and what keeps a folder from running.
TEST(CogVideoXModels, ReelModelsNamesTheVariantAndComponentsOfEveryFolder) {
  REQUIRE_COGVIDEOX_CASES();
  const fs::path dir = test::temp_dir("cogvideox-models");
  for (const char* name : {"tiny-cogvideox-5b", "tiny-cogvideox-2b", "tiny-cogvideox-5b-i2v", "tiny-cogvideox1.5-5b-i2v"})
    fs::create_directory_symlink(models(name), dir / name);
  fs::copy(models("tiny-cogvideox-2b"), dir / "broken", fs::copy_options::recursive);
  fs::remove_all(dir / "broken/transformer");
  std::string output;
  ASSERT_EQ(test::shell(std::string(REEL_EXECUTABLE) + " models " + dir.string() + " --json", &output), 0) << output;
  std::map<std::string, json> by_name;
  for (const json& item : json::parse(output)) by_name[fs::path(item["path"].get<std::string>()).filename()] = item;
  const std::map<std::string, std::string> variants = {{"tiny-cogvideox-5b", "CogVideoX-5b"},
                                                       {"tiny-cogvideox-2b", "CogVideoX-2b"},
                                                       {"tiny-cogvideox-5b-i2v", "CogVideoX-5b-I2V"},
                                                       {"tiny-cogvideox1.5-5b-i2v", "CogVideoX1.5-5b-I2V"},
                                                       {"broken", "CogVideoXPipeline (variant unknown)"}};
  for (const auto& [name, variant] : variants) {
    ASSERT_TRUE(by_name.count(name)) << name << " not listed: " << output;
    const json& item = by_name[name];
    EXPECT_EQ(item["architecture"], variant) << name;
    EXPECT_EQ(item["node_type"], "generator.cogvideox") << name;
    for (const char* component : {"text_encoder", "tokenizer", "transformer", "vae", "scheduler"})
      EXPECT_TRUE(item["components"].contains(component)) << name << " " << component;
  }
  EXPECT_FALSE(by_name["tiny-cogvideox-5b"].contains("problem")) << by_name["tiny-cogvideox-5b"].dump();
  EXPECT_NE(by_name["tiny-cogvideox-5b"]["components"]["transformer"].get<std::string>().find("52336 parameters"),
            std::string::npos);
  EXPECT_EQ(by_name["broken"]["components"]["transformer"], "missing");
  EXPECT_NE(by_name["broken"]["problem"].get<std::string>().find("transformer"), std::string::npos);
  EXPECT_FALSE(by_name["tiny-cogvideox1.5-5b-i2v"].contains("problem")) << "1.5 runs";

  // Named directly, a model folder is described itself.
  ASSERT_EQ(test::shell(std::string(REEL_EXECUTABLE) + " models " + models("tiny-cogvideox-5b-i2v").string(), &output), 0);
  EXPECT_NE(output.find("CogVideoX-5b-I2V, run with generator.cogvideox"), std::string::npos) << output;
}

}  // namespace

namespace {

// Denoising steps reach the user: the CLI prints each (stderr is not a terminal here) and the
// worker emits a stage event per step.
TEST(CogVideoXNode, TheCliAndTheWorkerShowEveryDenoisingStep) {
  REQUIRE_COGVIDEOX_CASES();
  const fs::path dir = test::temp_dir("cogvideox-progress");
  std::ofstream(dir / "graph.json") << small_t2v(models("tiny-cogvideox-2b").string(), dir / "out.mkv").dump();
  std::string output;
  ASSERT_EQ(test::shell(std::string(REEL_EXECUTABLE) + " run " + (dir / "graph.json").string() + " 2>&1", &output), 0)
      << output;
  EXPECT_NE(output.find("gen: denoising step 1/2"), std::string::npos) << output;
  EXPECT_NE(output.find("gen: denoising step 2/2"), std::string::npos) << output;
  EXPECT_NE(output.find("variant CogVideoX-2b, seed "), std::string::npos) << "the run's facts: " << output;

  std::ofstream(dir / "jobs.txt") << json{{"graph", (dir / "graph.json").string()}, {"id", "j1"}, {"overwrite", true}}.dump()
                                  << "\n";
  ASSERT_EQ(test::shell(std::string(REEL_EXECUTABLE) + " worker < " + (dir / "jobs.txt").string() + " 2>/dev/null", &output), 0)
      << output;
  int stages = 0;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    const json event = json::parse(line, nullptr, false);
    if (event.is_object() && event["event"] == "stage") {
      ++stages;
      EXPECT_EQ(event["node"], "gen");
      EXPECT_EQ(event["stage"], "denoising");
      EXPECT_EQ(event["done"], stages);
      EXPECT_EQ(event["total"], 2);
    }
  }
  EXPECT_EQ(stages, 2) << output;
}

}  // namespace

namespace {

// Cancelled during the denoising: the loop stops between steps, nothing is written.
TEST(CogVideoXNode, CancellingBetweenDenoisingStepsStopsTheRunAndLeavesNoOutput) {
  REQUIRE_COGVIDEOX_CASES();
  const fs::path out = test::temp_dir("cogvideox-cancel") / "out.mkv";
  json graph = small_t2v(models("tiny-cogvideox-2b").string(), out);
  graph["nodes"][0]["params"]["steps"] = 6;
  std::atomic<bool> cancel{false};
  struct CancelAfterTwo : StageRecorder {
    std::atomic<bool>* flag = nullptr;
    void on_stage(const std::string& node, const std::string& stage, std::int64_t done, std::int64_t total) override {
      StageRecorder::on_stage(node, stage, done, total);
      if (done == 2) flag->store(true);
    }
  } observer;
  observer.flag = &cancel;
  RunResult r = test::run(graph, RunOptions{.observer = &observer, .cancel = &cancel});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.cancelled()) << r.failure->user_message();
  EXPECT_EQ(observer.steps.size(), 2u) << "no step after the cancel";
  EXPECT_TRUE(fs::is_empty(out.parent_path()));
  expect_everything_unloaded(r);
}

// `reel plan` on CogVideoX-5b's real sizes (configs only) in bf16 with every component kept on a
// device with less memory than that needs: the warning names offload model. The device is this
// machine's RAM, so the check applies where that lies between the two needs (24 GB here).
TEST(CogVideoXNode, PlanWarnsWithTheOffloadPolicyThatFits) {
  REQUIRE_COGVIDEOX_CASES();
  const auto ram = device_memory_bytes("cpu");
  if (!ram || *ram < 16e9 || *ram > 25.9e9) GTEST_SKIP() << "this machine's RAM is outside 16-25.9 GB";
  const fs::path dir = test::temp_dir("cogvideox-plan");
  std::string output;
  ASSERT_EQ(test::shell("REEL_SHARED_DIR=" + test::shared_dir().string() + " bash " + REEL_SOURCE_DIR +
                            "/bench/cogvideox-memory.sh " + fs::path(REEL_EXECUTABLE).parent_path().parent_path().string() +
                            " --keep " + dir.string() + " 2>&1",
                        &output),
            0)
      << output;
  std::ofstream(dir / "graph.json") << json{{"version", 1},
                                            {"nodes",
                                             {{{"id", "gen"},
                                               {"type", "generator.cogvideox"},
                                               {"params", {{"model", (dir / "CogVideoX-5b").string()}, {"prompt", "p"},
                                                           {"device", "cpu"}, {"precision", "bf16"}, {"offload", "none"}}}},
                                              {{"id", "save"},
                                               {"type", "encoder.ffmpeg"},
                                               {"inputs", {{"in", "gen.out"}}},
                                               {"params", {{"path", (dir / "out.mkv").string()}, {"codec", "ffv1"}}}}}}}
                                               .dump();
  ASSERT_EQ(test::shell(std::string(REEL_EXECUTABLE) + " plan " + (dir / "graph.json").string() + " 2>&1", &output), 0)
      << output;
  EXPECT_NE(output.find("with offload none needs about 25.9 GB"), std::string::npos) << output;
  EXPECT_NE(output.find("set offload to model (about 15.9 GB)"), std::string::npos) << output;
}

}  // namespace

namespace {

// Parameters the schema cannot check are refused at configure, naming the parameter.
TEST(CogVideoXNode, ParametersItCannotUseAreRefusedByName) {
  REQUIRE_COGVIDEOX_CASES();
  const fs::path out = test::temp_dir("cogvideox-params") / "out.mkv";
  auto refused = [&](const json& params, const std::function<void(json&)>& also = {}) -> std::string {
    json graph = small_t2v(models("tiny-cogvideox-2b").string(), out);
    graph["nodes"][0]["params"].update(params);
    if (also) also(graph);
    RunResult r = test::run(graph);
    if (r.ok()) return "accepted";
    EXPECT_EQ(r.failure->kind, ErrorKind::invalid_graph) << r.failure->user_message();
    return r.failure->pointer;
  };
  EXPECT_EQ(refused({{"vae_tile", 12}}), "/nodes/0/params/vae_tile");
  EXPECT_EQ(refused({{"seed", "lucky"}}), "/nodes/0/params/seed");
  EXPECT_EQ(refused({{"fps", "fast"}}), "/nodes/0/params/fps");
  EXPECT_EQ(refused({{"offload", "none"}, {"frames", 16}}), "/nodes/0/params/frames");
  // Both optional inputs at once: which mode is meant cannot be told.
  EXPECT_EQ(refused(json::object(), [&](json& graph) {
              graph["nodes"].push_back({{"id", "img"}, {"type", "source.image"}, {"params", {{"path", cases("i2v_5b_ddim/input_image.png").string()}}}});
              graph["nodes"].push_back({{"id", "vid"}, {"type", "source.video"}, {"params", {{"path", cases("v2v_5b_dpm_dyncfg/input_video.mkv").string()}}}});
              graph["nodes"][0]["inputs"] = {{"image", "img.image"}, {"video", "vid.out"}};
            }),
            "/nodes/0/params/image");
  EXPECT_TRUE(fs::is_empty(out.parent_path()));
}

}  // namespace
