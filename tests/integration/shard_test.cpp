// `reel shard`: a video split into frame ranges, run as separate jobs in any order (one twice),
// gives back exactly the frames of one run; a changed source is refused; status says what is left.
#include "media.h"
#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace reel;

namespace {

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

Outcome reel_cli(const std::string& arguments, const std::string& environment = "") {
  Outcome o;
  o.exit_code = test::shell(environment + " " + REEL_EXECUTABLE + " --plugin-path " + REEL_TEST_PLUGIN_DIR + " " +
                                arguments + " 2>&1",
                            &o.output);
  return o;
}

fs::path write_file(const fs::path& file, const std::string& text) {
  std::ofstream(file) << text;
  return file;
}

// source -> resize x2 -> blend x2 -> FFV1 (lossless, so decoded frames can be compared exactly).
json upscale_interpolate(const fs::path& clip, const fs::path& out, const std::string& middle_type = "upscaler.resize") {
  return {{"version", 1},
          {"nodes",
           {{{"id", "src"}, {"type", "source.video"}, {"params", {{"path", clip.string()}}}},
            {{"id", "up"}, {"type", middle_type}, {"inputs", {{"in", "src.out"}}}, {"params", json::object()}},
            {{"id", "interp"}, {"type", "interpolator.blend"}, {"inputs", {{"in", "up.out"}}}, {"params", {{"multiplier", 2}}}},
            {{"id", "enc"},
             {"type", "encoder.ffmpeg"},
             {"inputs", {{"in", "interp.out"}}},
             {"params", {{"path", out.string()}, {"codec", "ffv1"}}}}}}};
}

std::vector<at::Tensor> frames_of(const fs::path& file) { return test::source_frames("source.video", {{"path", file.string()}}); }

}  // namespace

TEST(Shard, PartsRunOutOfOrderAndTwiceGiveExactlyTheFramesOfOneRun) {
  const fs::path dir = test::temp_dir("shard");
  const fs::path clip = test::make_video(dir, "clip.mp4", 64, 48, 41, "24", "-c:v libx264 -qp 0 -g 8");
  json graph = upscale_interpolate(clip, dir / "out.mkv");
  graph["nodes"][1]["params"] = {{"scale", 2}};
  const fs::path graph_file = write_file(dir / "graph.json", graph.dump());

  Outcome whole = reel_cli("run --no-progress " + graph_file.string() + " --set enc.path=" + (dir / "whole.mkv").string());
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  const auto expected = frames_of(dir / "whole.mkv");
  ASSERT_EQ(expected.size(), 81u);  // (41 - 1) * 2 + 1

  const fs::path plan_file = dir / "plan.json";
  Outcome plan = reel_cli("shard plan " + graph_file.string() + " --shards 4 -o " + plan_file.string());
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  const json p = json::parse(std::ifstream(plan_file));
  EXPECT_EQ(p["frames_out"]["ratio"], "2/1");
  EXPECT_EQ(p["frames_out"]["period"], 1);
  EXPECT_EQ(p["frames_out"]["halo"], 1);
  ASSERT_EQ(p["shards"].size(), 4u);
  std::int64_t kept = 0, covered = 0;
  for (const json& s : p["shards"]) {
    EXPECT_EQ(s["start"].get<std::int64_t>(), covered) << s;
    covered += s["frames"].get<std::int64_t>();
    kept += s["keep"].get<std::int64_t>();
  }
  EXPECT_EQ(covered, 41);
  EXPECT_EQ(kept, 81);

  Outcome before = reel_cli("shard status " + plan_file.string());
  EXPECT_EQ(before.exit_code, 1) << before.output;
  EXPECT_NE(before.output.find("0 of 4 done; to run: 0-3"), std::string::npos) << before.output;

  for (int shard : {3, 1}) {
    Outcome run = reel_cli("shard run " + plan_file.string() + " --shard " + std::to_string(shard));
    ASSERT_EQ(run.exit_code, 0) << run.output;
  }
  Outcome middle = reel_cli("shard status " + plan_file.string());
  EXPECT_NE(middle.output.find("2 of 4 done; to run: 0,2"), std::string::npos) << middle.output;
  Outcome resubmit = reel_cli("shard status --to-run " + plan_file.string());  // for sbatch --array=...
  EXPECT_EQ(resubmit.exit_code, 1);
  EXPECT_EQ(resubmit.output, "0,2\n");
  Outcome early = reel_cli("shard join " + plan_file.string());
  EXPECT_EQ(early.exit_code, 66) << early.output;
  EXPECT_NE(early.output.find("shards 0,2 of " + plan_file.string() + " are not done"), std::string::npos)
      << early.output;
  EXPECT_FALSE(fs::exists(dir / "out.mkv"));
  // The index from the array job's environment, as Slurm and Kubernetes set it.
  Outcome from_slurm = reel_cli("shard run " + plan_file.string(), "SLURM_ARRAY_TASK_ID=0");
  ASSERT_EQ(from_slurm.exit_code, 0) << from_slurm.output;
  Outcome from_kubernetes = reel_cli("shard run " + plan_file.string(), "JOB_COMPLETION_INDEX=2");
  ASSERT_EQ(from_kubernetes.exit_code, 0) << from_kubernetes.output;
  const fs::path part1 = p["shards"][1]["part"].get<std::string>();
  const auto written = fs::last_write_time(part1);
  Outcome again = reel_cli("shard run " + plan_file.string() + " --shard 1");
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("done already"), std::string::npos) << again.output;
  EXPECT_EQ(fs::last_write_time(part1), written) << "a finished shard is not run again";

  Outcome after = reel_cli("shard status " + plan_file.string());
  EXPECT_EQ(after.exit_code, 0) << after.output;
  EXPECT_NE(after.output.find("4 of 4 done"), std::string::npos) << after.output;
  Outcome nothing_to_run = reel_cli("shard status --to-run " + plan_file.string());
  EXPECT_EQ(nothing_to_run.exit_code, 0);
  EXPECT_EQ(nothing_to_run.output, "");

  // The parts, one after another, are the single run's frames, bit for bit.
  std::vector<at::Tensor> joined;
  for (const json& s : p["shards"]) {
    const auto part = frames_of(s["part"].get<std::string>());
    EXPECT_EQ(static_cast<std::int64_t>(part.size()), s["keep"].get<std::int64_t>()) << s;
    joined.insert(joined.end(), part.begin(), part.end());
  }
  ASSERT_EQ(joined.size(), expected.size());
  for (std::size_t i = 0; i < joined.size(); ++i) EXPECT_TRUE(at::equal(joined[i], expected[i])) << "frame " << i;

  // Joined by stream copy into the graph's output: every frame once, bit for bit.
  Outcome join = reel_cli("shard join " + plan_file.string());
  ASSERT_EQ(join.exit_code, 0) << join.output;
  const auto one_file = frames_of(dir / "out.mkv");
  ASSERT_EQ(one_file.size(), expected.size());
  for (std::size_t i = 0; i < one_file.size(); ++i) EXPECT_TRUE(at::equal(one_file[i], expected[i])) << "frame " << i;
  EXPECT_EQ(test::probe(dir / "out.mkv")["nb_read_frames"], "81");
  EXPECT_EQ(test::probe(dir / "out.mkv")["r_frame_rate"], "48/1");

  // A part changed after its shard finished (same size, one byte): the join names it, writes nothing.
  const fs::path part2 = p["shards"][2]["part"].get<std::string>();
  {
    std::fstream bytes(part2, std::ios::in | std::ios::out | std::ios::binary);
    bytes.seekp(static_cast<std::streamoff>(fs::file_size(part2) / 2));
    bytes.put('\x5a');
  }
  Outcome tampered = reel_cli("shard join " + plan_file.string() + " -o " + (dir / "again.mkv").string());
  EXPECT_EQ(tampered.exit_code, 66) << tampered.output;
  EXPECT_NE(tampered.output.find(part2.string() + " is not the file its shard wrote"), std::string::npos)
      << tampered.output;
  EXPECT_FALSE(fs::exists(dir / "again.mkv"));

  // Another source under the same name: every shard refuses to run for this plan.
  test::make_video(dir, "clip.mp4", 64, 48, 41, "25", "-c:v libx264 -qp 0 -g 8");
  Outcome changed = reel_cli("shard run " + plan_file.string() + " --shard 0");
  EXPECT_EQ(changed.exit_code, 66) << changed.output;
  EXPECT_NE(changed.output.find("has changed since"), std::string::npos) << changed.output;
}

TEST(Shard, WhatCannotBeSplitIsRefusedSayingWhy) {
  const fs::path dir = test::temp_dir("shard-refused");
  const fs::path clip = test::make_video(dir, "clip.mp4", 64, 48, 12, "24", "-c:v libx264 -qp 0");
  // A node that does not say which input frames its output frames come from.
  const fs::path undeclared =
      write_file(dir / "undeclared.json", upscale_interpolate(clip, dir / "out.mkv", "test.map").dump());
  Outcome o = reel_cli("shard plan " + undeclared.string() + " --shards 2 -o " + (dir / "p.json").string());
  EXPECT_EQ(o.exit_code, 65) << o.output;
  EXPECT_NE(o.output.find("node 'up' (test.map) does not declare which input frames"), std::string::npos) << o.output;
  EXPECT_FALSE(fs::exists(dir / "p.json"));

  const fs::path fine = write_file(dir / "fine.json", upscale_interpolate(clip, dir / "out.mkv").dump());
  Outcome too_many = reel_cli("shard plan " + fine.string() + " --shards 7 -o " + (dir / "p.json").string());
  EXPECT_EQ(too_many.exit_code, 64) << too_many.output;
  EXPECT_NE(too_many.output.find("too few for 7 shards"), std::string::npos) << too_many.output;

  Outcome not_a_plan = reel_cli("shard status " + fine.string());
  EXPECT_EQ(not_a_plan.exit_code, 66) << not_a_plan.output;
  EXPECT_NE(not_a_plan.output.find("is not a reel shard plan"), std::string::npos) << not_a_plan.output;
  Outcome two = reel_cli("shard plan " + fine.string() + " --shards 2 -o " + (dir / "p.json").string());
  ASSERT_EQ(two.exit_code, 0) << two.output;
  Outcome no_index = reel_cli("shard run " + (dir / "p.json").string());
  EXPECT_EQ(no_index.exit_code, 64) << no_index.output;
  EXPECT_NE(no_index.output.find("no shard index"), std::string::npos) << no_index.output;
  Outcome out_of_range = reel_cli("shard run " + (dir / "p.json").string() + " --shard 2");
  EXPECT_EQ(out_of_range.exit_code, 64) << out_of_range.output;
}

// H.264 parts (each a fresh encode starting on a keyframe) joined by stream copy, with the
// source's AAC audio added once: every frame once, evenly spaced across the seams, and the sound.
TEST(Shard, AnH264JoinHasEveryFrameOnceAndTheSourcesAudio) {
  const fs::path dir = test::temp_dir("shard-h264");
  const fs::path clip = dir / "clip.mp4";
  ASSERT_EQ(test::shell("ffmpeg -v error -y -f lavfi -i testsrc2=s=160x96:r=24:d=2 -f lavfi -i "
                        "sine=frequency=440:sample_rate=48000:duration=2 -c:v libx264 -preset ultrafast -g 12 -c:a aac "
                        "-shortest '" + clip.string() + "'"),
            0);
  json graph = upscale_interpolate(clip, dir / "out.mp4");
  graph["nodes"][1]["params"] = {{"scale", 2}};
  graph["nodes"][3]["params"] = {{"path", (dir / "out.mp4").string()}, {"preset", "ultrafast"}};
  const fs::path graph_file = write_file(dir / "graph.json", graph.dump());
  const fs::path plan_file = dir / "plan.json";
  ASSERT_EQ(reel_cli("shard plan " + graph_file.string() + " --shards 3 -o " + plan_file.string()).exit_code, 0);
  for (int shard : {2, 0, 1}) {
    Outcome run = reel_cli("shard run " + plan_file.string() + " --shard " + std::to_string(shard));
    ASSERT_EQ(run.exit_code, 0) << run.output;
  }
  Outcome join = reel_cli("shard join " + plan_file.string());
  ASSERT_EQ(join.exit_code, 0) << join.output;
  EXPECT_NE(join.output.find("with the source's audio"), std::string::npos) << join.output;

  const json video = test::probe(dir / "out.mp4");
  EXPECT_EQ(video["nb_read_frames"], "95");  // (48 - 1) * 2 + 1
  EXPECT_EQ(video["r_frame_rate"], "48/1");
  std::string times;
  test::shell("ffprobe -v error -select_streams v:0 -show_entries frame=pts -of default=nw=1:nk=1 '" + (dir / "out.mp4").string() +
                  "'",
              &times);
  std::vector<long long> pts;
  std::istringstream lines(times);
  for (long long t; lines >> t;) pts.push_back(t);
  ASSERT_EQ(pts.size(), 95u);
  for (std::size_t i = 1; i < pts.size(); ++i) EXPECT_EQ(pts[i] - pts[i - 1], pts[1] - pts[0]) << "frame " << i;
  std::string audio;
  test::shell("ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,duration -of csv=p=0 '" +
                  (dir / "out.mp4").string() + "'",
              &audio);
  EXPECT_EQ(audio.substr(0, 4), "aac,") << audio;
  const double seconds = std::stod(audio.substr(4));
  EXPECT_NEAR(seconds, 95.0 / 48, 0.05) << audio;
}

// The plan knows the source and the models by content (size and sampled bytes), not by time: a
// copy on another machine is the same file, a changed model is refused.
TEST(Shard, AChangedModelIsRefusedAndACopiedSourceIsNot) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4fast.param");
  const fs::path dir = test::temp_dir("shard-models");
  const fs::path clip = test::make_video(dir, "clip.mp4", 16, 16, 8, "24", "-c:v libx264 -qp 0");
  for (const char* ext : {".param", ".bin"})
    fs::copy_file(test::shared_dir() / "models/realesrgan" / (std::string("realesrgan-x4fast") + ext),
                  dir / (std::string("model") + ext));
  json graph = upscale_interpolate(clip, dir / "out.mkv", "upscaler.esrgan");
  graph["nodes"][1]["params"] = {{"model", (dir / "model.param").string()}};
  const fs::path graph_file = write_file(dir / "graph.json", graph.dump());
  const fs::path plan_file = dir / "plan.json";
  ASSERT_EQ(reel_cli("shard plan " + graph_file.string() + " --shards 2 -o " + plan_file.string()).exit_code, 0);
  EXPECT_EQ(json::parse(std::ifstream(plan_file))["models"].size(), 1u);

  // Copied again (a new modification time, the same bytes): still the plan's source.
  fs::copy_file(clip, dir / "copy.mp4");
  fs::remove(clip);
  fs::rename(dir / "copy.mp4", clip);
  Outcome copied = reel_cli("shard run " + plan_file.string() + " --shard 0");
  EXPECT_EQ(copied.exit_code, 0) << copied.output;

  // One weight changed in the middle of the .bin: not the model the plan was made with.
  const fs::path bin = dir / "model.bin";
  fs::permissions(bin, fs::perms::owner_write, fs::perm_options::add);  // copied from a read-only folder
  {
    std::fstream bytes(bin, std::ios::in | std::ios::out | std::ios::binary);
    bytes.seekp(static_cast<std::streamoff>(fs::file_size(bin) / 2));
    bytes.put('\x7f');
  }
  Outcome changed = reel_cli("shard run " + plan_file.string() + " --shard 1");
  EXPECT_EQ(changed.exit_code, 66) << changed.output;
  EXPECT_NE(changed.output.find("the model of node 'up' here is not the one"), std::string::npos) << changed.output;
}

// A graph that makes one clip (a generator) is sharded by job: one run per --set variation, each
// equal to `reel run` with those sets, each done once; a failed job is recorded and named.
TEST(Shard, JobsAreRunOncePerVariationInTheirShards) {
  const fs::path dir = test::temp_dir("shard-jobs");
  const json graph = {
      {"version", 1},
      {"nodes",
       {{{"id", "gen"}, {"type", "generator.pattern"}, {"params", {{"width", 64}, {"height", 48}, {"frames", 6}}}},
        {{"id", "enc"},
         {"type", "encoder.ffmpeg"},
         {"inputs", {{"in", "gen.out"}}},
         {"params", {{"path", (dir / "clip.mkv").string()}, {"codec", "ffv1"}}}}}}};
  const fs::path graph_file = write_file(dir / "graph.json", graph.dump());
  const json variations = json::array({{{"gen.prompt", "a cat"}, {"gen.seed", 1}},
                                       {{"gen.prompt", "a dog"}, {"gen.seed", 2}},
                                       {{"gen.prompt", "rain"}, {"enc.path", (dir / "rain.mkv").string()}}});
  const fs::path jobs_file = write_file(dir / "jobs.json", variations.dump());
  const fs::path plan_file = dir / "plan.json";
  Outcome plan = reel_cli("shard plan " + graph_file.string() + " --jobs " + jobs_file.string() + " --shards 2 -o " +
                          plan_file.string());
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  const json p = json::parse(std::ifstream(plan_file));
  EXPECT_EQ(p["kind"], "jobs");
  ASSERT_EQ(p["jobs"].size(), 3u);
  const std::vector<fs::path> outputs = {dir / "clip.job-0000.mkv", dir / "clip.job-0001.mkv", dir / "rain.mkv"};
  for (std::size_t j = 0; j < 3; ++j) EXPECT_EQ(p["jobs"][j]["outputs"], json::array({outputs[j].string()}));
  EXPECT_EQ(p["shards"][0]["jobs"], json::array({0}));
  EXPECT_EQ(p["shards"][1]["jobs"], json::array({1, 2}));

  Outcome second = reel_cli("shard run " + plan_file.string() + " --shard 1");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  Outcome middle = reel_cli("shard status --to-run " + plan_file.string());
  EXPECT_EQ(middle.output, "0\n");
  Outcome first = reel_cli("shard run " + plan_file.string(), "JOB_COMPLETION_INDEX=0");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto written = fs::last_write_time(outputs[2]);
  Outcome again = reel_cli("shard run " + plan_file.string() + " --shard 1");
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("job 2 (shard 1) is done already"), std::string::npos) << again.output;
  EXPECT_EQ(fs::last_write_time(outputs[2]), written) << "a finished job is not run again";
  Outcome status = reel_cli("shard status " + plan_file.string());
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("2 of 2 done"), std::string::npos) << status.output;

  // Each job's output is what `reel run` makes with the job's sets.
  for (std::size_t j = 0; j < 3; ++j) {
    std::string sets;
    for (const auto& [key, value] : variations[j].items())
      if (key != "enc.path") sets += " --set '" + key + "=" + (value.is_string() ? value.get<std::string>() : value.dump()) + "'";
    const fs::path alone = dir / ("alone-" + std::to_string(j) + ".mkv");
    Outcome run = reel_cli("run --no-progress " + graph_file.string() + sets + " --set enc.path=" + alone.string());
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const auto expected = frames_of(alone), got = frames_of(outputs[j]);
    ASSERT_EQ(got.size(), 6u) << outputs[j];
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(at::equal(got[i], expected[i])) << "job " << j << " frame " << i;
  }
  EXPECT_FALSE(at::equal(frames_of(outputs[0])[0], frames_of(outputs[1])[0])) << "the variations differ";

  Outcome join = reel_cli("shard join " + plan_file.string());
  EXPECT_EQ(join.exit_code, 64) << join.output;
  EXPECT_NE(join.output.find("is a plan of jobs"), std::string::npos) << join.output;

  // A jobs file that is not a list of objects, and fewer jobs than shards, are refused saying why.
  write_file(jobs_file, R"({"gen.prompt": "a cat"})");
  Outcome not_a_list = reel_cli("shard plan " + graph_file.string() + " --jobs " + jobs_file.string() + " --shards 1 -o " +
                                (dir / "bad.json").string());
  EXPECT_EQ(not_a_list.exit_code, 66) << not_a_list.output;
  EXPECT_NE(not_a_list.output.find(jobs_file.string() + " is not a list of jobs"), std::string::npos) << not_a_list.output;
  write_file(jobs_file, R"([{"gen.seed": 1}, "gen.seed=2"])");
  Outcome not_an_object = reel_cli("shard plan " + graph_file.string() + " --jobs " + jobs_file.string() +
                                   " --shards 1 -o " + (dir / "bad.json").string());
  EXPECT_EQ(not_an_object.exit_code, 66) << not_an_object.output;
  EXPECT_NE(not_an_object.output.find("job 1 is not an object of node.param values"), std::string::npos)
      << not_an_object.output;
  write_file(jobs_file, R"([{"gen.seed": 1}, {"gen.nonsense": 2}])");
  Outcome bad_param = reel_cli("shard plan " + graph_file.string() + " --jobs " + jobs_file.string() + " --shards 1 -o " +
                               (dir / "bad.json").string());
  EXPECT_EQ(bad_param.exit_code, 64) << bad_param.output;
  EXPECT_NE(bad_param.output.find("job 1: "), std::string::npos) << bad_param.output;
  Outcome too_few = reel_cli("shard plan " + graph_file.string() + " --jobs " + jobs_file.string() + " --shards 3 -o " +
                             (dir / "bad.json").string());
  EXPECT_EQ(too_few.exit_code, 64) << too_few.output;
  EXPECT_NE(too_few.output.find("has 2 jobs: too few for 3 shards"), std::string::npos) << too_few.output;
  EXPECT_FALSE(fs::exists(dir / "bad.json"));

  // Two jobs writing one file are refused at the plan.
  write_file(jobs_file, json::array({{{"enc.path", (dir / "same.mkv").string()}}, {{"enc.path", (dir / "same.mkv").string()}}}).dump());
  Outcome clash = reel_cli("shard plan " + graph_file.string() + " --jobs " + jobs_file.string() + " --shards 1 -o " +
                           (dir / "clash.json").string());
  EXPECT_EQ(clash.exit_code, 64) << clash.output;
  EXPECT_NE(clash.output.find("jobs 0 and 1 both write " + (dir / "same.mkv").string()), std::string::npos) << clash.output;
  EXPECT_FALSE(fs::exists(dir / "clash.json"));
}

TEST(Shard, AFailedJobIsRecordedAndTheShardsOtherJobsStillRun) {
  const fs::path dir = test::temp_dir("shard-job-failure");
  const json graph = {{"version", 1},
                      {"nodes",
                       {{{"id", "src"}, {"type", "test.source"}, {"params", {{"frames", 4}}}},
                        {{"id", "out"},
                         {"type", "test.sink"},
                         {"inputs", {{"in", "src.out"}}},
                         {"params", {{"path", (dir / "frames.txt").string()}}}}}}};
  const fs::path graph_file = write_file(dir / "graph.json", graph.dump());
  const fs::path jobs_file =
      write_file(dir / "jobs.json", json::array({{{"src.fail_phase", "process"}, {"src.fail_with", "io"}}, {{"src.frames", 3}}}).dump());
  const fs::path plan_file = dir / "plan.json";
  ASSERT_EQ(reel_cli("shard plan " + graph_file.string() + " --jobs " + jobs_file.string() + " --shards 1 -o " +
                     plan_file.string())
                .exit_code,
            0);
  Outcome run = reel_cli("shard run " + plan_file.string() + " --shard 0");
  EXPECT_EQ(run.exit_code, 74) << run.output;  // the first failure's code: I/O, worth retrying
  EXPECT_TRUE(fs::exists(dir / "frames.job-0001.txt")) << "the job after the failed one ran";
  EXPECT_FALSE(fs::exists(dir / "frames.job-0000.txt"));
  const json failed = json::parse(std::ifstream(dir / "frames.job-0000.txt.failed.json"));
  EXPECT_EQ(failed["kind"], "I/O error");
  EXPECT_EQ(failed["retryable"], true);
  EXPECT_EQ(failed["exit_code"], 74);
  Outcome status = reel_cli("shard status " + plan_file.string());
  EXPECT_EQ(status.exit_code, 1) << status.output;
  EXPECT_NE(status.output.find("job 0: failed (I/O error, retryable: "), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("job 1: done"), std::string::npos) << status.output;
}

// Interpolation to a rate that is not a whole multiple (24 -> 60 fps: 2.5 frames per source
// frame): shards start where the two rates' frames line up (every 2 source frames), so each makes
// exactly the frames the whole run makes there.
TEST(Shard, ARateThatIsNotAMultipleSplitsWhereTheFramesLineUp) {
  const fs::path dir = test::temp_dir("shard-fps");
  const fs::path clip = test::make_video(dir, "clip.mp4", 64, 48, 41, "24", "-c:v libx264 -qp 0 -g 8");
  json graph = upscale_interpolate(clip, dir / "out.mkv");
  graph["nodes"][1]["params"] = {{"scale", 1}};
  graph["nodes"][2]["params"] = {{"fps", "60"}};
  const fs::path graph_file = write_file(dir / "graph.json", graph.dump());
  Outcome whole = reel_cli("run --no-progress " + graph_file.string() + " --set enc.path=" + (dir / "whole.mkv").string());
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  const auto expected = frames_of(dir / "whole.mkv");
  ASSERT_EQ(expected.size(), 101u);  // floor(40 * 60 / 24) + 1

  const fs::path plan_file = dir / "plan.json";
  Outcome plan = reel_cli("shard plan " + graph_file.string() + " --shards 3 -o " + plan_file.string());
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  const json p = json::parse(std::ifstream(plan_file));
  EXPECT_EQ(p["frames_out"]["ratio"], "5/2");
  EXPECT_EQ(p["frames_out"]["period"], 2);
  std::int64_t kept = 0;
  for (const json& s : p["shards"]) {
    EXPECT_EQ(s["start"].get<std::int64_t>() % 2, 0) << s;
    kept += s["keep"].get<std::int64_t>();
  }
  EXPECT_EQ(kept, 101);
  for (int shard : {2, 0, 1}) {
    Outcome run = reel_cli("shard run " + plan_file.string() + " --shard " + std::to_string(shard));
    ASSERT_EQ(run.exit_code, 0) << run.output;
  }
  Outcome join = reel_cli("shard join " + plan_file.string());
  ASSERT_EQ(join.exit_code, 0) << join.output;
  const auto joined = frames_of(dir / "out.mkv");
  ASSERT_EQ(joined.size(), expected.size());
  for (std::size_t i = 0; i < joined.size(); ++i) EXPECT_TRUE(at::equal(joined[i], expected[i])) << "frame " << i;
  EXPECT_EQ(test::probe(dir / "out.mkv")["r_frame_rate"], "60/1");

  // Too short to start 3 shards on multiples of 2 frames.
  Outcome short_clip = reel_cli("shard plan " + graph_file.string() + " --shards 3 --set src.count=5 -o " +
                                (dir / "p.json").string());
  EXPECT_EQ(short_clip.exit_code, 64) << short_clip.output;
  EXPECT_NE(short_clip.output.find("starting on multiples of 2 frames (where 24/1 and 60/1 fps frames line up)"),
            std::string::npos)
      << short_clip.output;
}

namespace {

// FNV-1a 64 of a file, as the done records hold it.
std::string fnv1a64(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::uint64_t h = 1469598103934665603ull;
  for (char c; in.get(c);) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

}  // namespace

// A part whose record is in order but whose stream does not fit the others (made by other
// settings, cut, or not starting on a keyframe): the join names the part and why, writes nothing.
TEST(Shard, TheJoinRefusesAPartThatDoesNotFitNamingItAndWhy) {
  const fs::path dir = test::temp_dir("shard-join-refusals");
  const fs::path clip = test::make_video(dir, "clip.mp4", 64, 48, 30, "24", "-c:v libx264 -qp 0 -g 8");
  json graph = upscale_interpolate(clip, dir / "out.mkv");
  graph["nodes"][1]["params"] = {{"scale", 2}};
  graph["nodes"][3]["params"] = {{"path", (dir / "out.mkv").string()}, {"preset", "ultrafast"}, {"audio", "none"}};
  const fs::path graph_file = write_file(dir / "graph.json", graph.dump());
  const fs::path plan_file = dir / "plan.json";
  ASSERT_EQ(reel_cli("shard plan " + graph_file.string() + " --shards 2 -o " + plan_file.string()).exit_code, 0);
  for (int shard : {0, 1}) ASSERT_EQ(reel_cli("shard run " + plan_file.string() + " --shard " + std::to_string(shard)).exit_code, 0);
  const json p = json::parse(std::ifstream(plan_file));
  const fs::path part = p["shards"][1]["part"].get<std::string>();
  const std::int64_t keep = p["shards"][1]["keep"].get<std::int64_t>();
  const fs::path original = dir / "original-part.mkv";
  fs::copy_file(part, original);
  const fs::path record_file = part.string() + ".done.json";
  const json record = json::parse(std::ifstream(record_file));

  const std::string x264 = " -c:v libx264 -preset ultrafast ";
  const std::vector<std::pair<std::string, std::string>> forgeries = {
      {"-c:v ffv1", "was made with another codec than"},
      {"-vf scale=64:48" + x264, "was made with another frame size than"},
      {"-pix_fmt yuv444p" + x264, "was made with another pixel format than"},
      {"-vf setpts=N/30/TB -r 30" + x264, "was made with another frame rate than"},
      {"-c:v libx264 -preset medium", "was made with other encoder headers"},  // CABAC, 8x8 transforms
      {"-c copy -bsf:v 'noise=drop=not(n)'", "does not start with a keyframe"},
      {"-c copy -bsf:v 'noise=drop=gte(n\\," + std::to_string(keep - 1) + ")'",
       "holds " + std::to_string(keep - 1) + " frames where " + std::to_string(keep) + " are expected"}};
  for (const auto& [how, why] : forgeries) {
    ASSERT_EQ(test::shell("ffmpeg -v error -y -i '" + original.string() + "' " + how + " '" + part.string() + "'"), 0) << how;
    json forged = record;  // the record made to match, so only the stream can tell
    forged["files"][0]["bytes"] = fs::file_size(part);
    forged["files"][0]["checksum_fnv1a64"] = fnv1a64(part);
    write_file(record_file, forged.dump());
    const fs::path joined = dir / "joined.mkv";
    Outcome join = reel_cli("shard join " + plan_file.string() + " -o " + joined.string());
    EXPECT_EQ(join.exit_code, 66) << how << "\n" << join.output;
    EXPECT_NE(join.output.find("part " + part.string()), std::string::npos) << how << "\n" << join.output;
    EXPECT_NE(join.output.find(why), std::string::npos) << how << "\n" << join.output;
    EXPECT_FALSE(fs::exists(joined)) << how;
  }
  // The true part back: the join goes through.
  fs::copy_file(original, part, fs::copy_options::overwrite_existing);
  write_file(record_file, record.dump());
  Outcome join = reel_cli("shard join " + plan_file.string());
  EXPECT_EQ(join.exit_code, 0) << join.output;
}

// A variable-rate MP4 states its frame count but cannot be entered at a keyframe: the plan says
// every shard decodes it from its start, and the parts are still the single run's frames. An MKV
// (no frame count in its header) is refused with the remux that fixes it.
TEST(Shard, AVariableRateSourceIsDecodedFromItsStartInEveryShardAndSaysSo) {
  const fs::path dir = test::temp_dir("shard-vfr");
  const fs::path clip = dir / "vfr.mp4";
  ASSERT_EQ(test::shell("ffmpeg -v error -y -f lavfi -i testsrc2=s=64x48:r=60 -frames:v 72 -vf "
                        "\"select='not(eq(mod(n,5),1))'\" -vsync vfr -c:v libx264 -qp 0 -g 10 '" + clip.string() + "'"),
            0);
  json graph = upscale_interpolate(clip, dir / "out.mkv");
  graph["nodes"][1]["params"] = {{"scale", 1}};
  const fs::path graph_file = write_file(dir / "graph.json", graph.dump());
  Outcome whole = reel_cli("run --no-progress " + graph_file.string() + " --set enc.path=" + (dir / "whole.mkv").string());
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  const auto expected = frames_of(dir / "whole.mkv");

  const fs::path plan_file = dir / "plan.json";
  Outcome plan = reel_cli("shard plan " + graph_file.string() + " --shards 3 -o " + plan_file.string());
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  EXPECT_NE(plan.output.find("note: " + clip.string() + " does not place its frames by their timestamps"),
            std::string::npos)
      << plan.output;
  for (int shard : {1, 2, 0}) ASSERT_EQ(reel_cli("shard run " + plan_file.string() + " --shard " + std::to_string(shard)).exit_code, 0);
  ASSERT_EQ(reel_cli("shard join " + plan_file.string()).exit_code, 0);
  const auto joined = frames_of(dir / "out.mkv");
  ASSERT_EQ(joined.size(), expected.size());
  for (std::size_t i = 0; i < joined.size(); ++i) EXPECT_TRUE(at::equal(joined[i], expected[i])) << "frame " << i;

  // A constant-rate MP4 gets no note.
  const fs::path steady = test::make_video(dir, "steady.mp4", 64, 48, 20, "24", "-c:v libx264 -qp 0 -g 8");
  Outcome quiet = reel_cli("shard plan " + graph_file.string() + " --set src.path=" + steady.string() +
                           " --shards 3 -o " + (dir / "steady.json").string());
  ASSERT_EQ(quiet.exit_code, 0) << quiet.output;
  EXPECT_EQ(quiet.output.find("note:"), std::string::npos) << quiet.output;

  ASSERT_EQ(test::shell("ffmpeg -v error -y -i '" + steady.string() + "' -c copy '" + (dir / "steady.mkv").string() + "'"), 0);
  Outcome mkv = reel_cli("shard plan " + graph_file.string() + " --set src.path=" + (dir / "steady.mkv").string() +
                         " --shards 3 -o " + (dir / "mkv.json").string());
  EXPECT_EQ(mkv.exit_code, 65) << mkv.output;
  EXPECT_NE(mkv.output.find("does not state its length"), std::string::npos) << mkv.output;
  EXPECT_NE(mkv.output.find("ffmpeg -i in.mkv -c copy in.mp4"), std::string::npos) << mkv.output;
}

// A job's fingerprint holds the files its sources read, not the files other nodes write: a
// changed source is refused, a log a node writes during the run does not make the job look stale.
TEST(Shard, AJobIsRefusedWhenItsSourceChangesButNotForFilesItsNodesWrite) {
  const fs::path dir = test::temp_dir("shard-job-inputs");
  const fs::path journal = dir / "journal.txt";
  const json logging = {{"version", 1},
                        {"nodes",
                         {{{"id", "src"}, {"type", "test.source"}, {"params", {{"frames", 3}}}},
                          {{"id", "map"}, {"type", "test.map"}, {"inputs", {{"in", "src.out"}}}, {"params", {{"journal", journal.string()}}}},
                          {{"id", "out"},
                           {"type", "test.sink"},
                           {"inputs", {{"in", "map.out"}}},
                           {"params", {{"path", (dir / "frames.txt").string()}}}}}}};
  const fs::path logging_file = write_file(dir / "logging.json", logging.dump());
  const fs::path jobs_file = write_file(dir / "jobs.json", json::array({{{"src.frames", 2}}, {{"src.frames", 3}}}).dump());
  ASSERT_EQ(reel_cli("shard plan " + logging_file.string() + " --jobs " + jobs_file.string() + " --shards 1 -o " +
                     (dir / "logging-plan.json").string())
                .exit_code,
            0);
  ASSERT_EQ(reel_cli("shard run " + (dir / "logging-plan.json").string() + " --shard 0").exit_code, 0);
  ASSERT_TRUE(fs::exists(journal));
  Outcome again = reel_cli("shard run " + (dir / "logging-plan.json").string() + " --shard 0");
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("job 1 (shard 0) is done already"), std::string::npos) << again.output;

  const fs::path clip = test::make_video(dir, "clip.mp4", 32, 32, 6, "24", "-c:v libx264 -qp 0");
  const json encode = {{"version", 1},
                       {"nodes",
                        {{{"id", "src"}, {"type", "source.video"}, {"params", {{"path", clip.string()}}}},
                         {{"id", "enc"},
                          {"type", "encoder.ffmpeg"},
                          {"inputs", {{"in", "src.out"}}},
                          {"params", {{"path", (dir / "out.mkv").string()}, {"codec", "ffv1"}}}}}}};
  const fs::path encode_file = write_file(dir / "encode.json", encode.dump());
  write_file(jobs_file, json::array({{{"src.count", 3}}, {{"src.count", 4}}}).dump());
  const fs::path plan = dir / "encode-plan.json";
  ASSERT_EQ(reel_cli("shard plan " + encode_file.string() + " --jobs " + jobs_file.string() + " --shards 2 -o " +
                     plan.string())
                .exit_code,
            0);
  ASSERT_EQ(reel_cli("shard run " + plan.string() + " --shard 0").exit_code, 0);
  test::make_video(dir, "clip.mp4", 32, 32, 6, "25", "-c:v libx264 -qp 0");  // another clip, same name
  Outcome changed = reel_cli("shard run " + plan.string() + " --shard 1");
  EXPECT_EQ(changed.exit_code, 66) << changed.output;
  EXPECT_NE(changed.output.find("job 1 of " + plan.string() + ": its graph, models or input files have changed"),
            std::string::npos)
      << changed.output;
  EXPECT_FALSE(fs::exists(dir / "out.job-0001.mkv"));
}
