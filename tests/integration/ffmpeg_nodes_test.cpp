// The FFmpeg nodes and the model-free set, checked from outside: outputs are read back with
// ffprobe and decoded again with source.video; bad inputs and outputs give the documented error
// and leave nothing behind; a long stream runs in flat memory; every graph in graphs/ runs.
#include "media.h"
#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include <sys/resource.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

extern "C" {
#include <libavformat/avformat.h>
#include <libavutil/display.h>
}

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel {
namespace {

json pattern(int width, int height, int frames, const std::string& fps = "24") {
  return {{"id", "gen"},
          {"type", "generator.pattern"},
          {"params", {{"width", width}, {"height", height}, {"frames", frames}, {"fps", fps}, {"seed", 3}}}};
}

json encoder(const std::string& from, const json& params) {
  return {{"id", "encode"}, {"type", "encoder.ffmpeg"}, {"inputs", {{"in", from}}}, {"params", params}};
}

bool folder_is_empty(const fs::path& dir) { return fs::is_empty(dir); }

// Copies `in` to `out` with a display matrix saying "rotate by `clockwise` degrees to show",
// as phones write it. (The ffmpeg tool of this Debian cannot set one.)
void remux_with_rotation(const fs::path& in, const fs::path& out, double clockwise) {
  AVFormatContext* input = nullptr;
  ASSERT_GE(avformat_open_input(&input, in.c_str(), nullptr, nullptr), 0);
  ASSERT_GE(avformat_find_stream_info(input, nullptr), 0);
  AVFormatContext* output = nullptr;
  ASSERT_GE(avformat_alloc_output_context2(&output, nullptr, nullptr, out.c_str()), 0);
  AVStream* stream = avformat_new_stream(output, nullptr);
  avcodec_parameters_copy(stream->codecpar, input->streams[0]->codecpar);
  stream->codecpar->codec_tag = 0;
  stream->time_base = input->streams[0]->time_base;
  auto* matrix = reinterpret_cast<std::int32_t*>(av_stream_new_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, 9 * 4));
  av_display_rotation_set(matrix, -clockwise);  // the matrix counts counter-clockwise
  ASSERT_GE(avio_open(&output->pb, out.c_str(), AVIO_FLAG_WRITE), 0);
  ASSERT_GE(avformat_write_header(output, nullptr), 0);
  AVPacket* packet = av_packet_alloc();
  while (av_read_frame(input, packet) >= 0) {
    av_packet_rescale_ts(packet, input->streams[0]->time_base, stream->time_base);
    packet->stream_index = 0;
    av_interleaved_write_frame(output, packet);
  }
  av_write_trailer(output);
  av_packet_free(&packet);
  avio_closep(&output->pb);
  avformat_free_context(output);
  avformat_close_input(&input);
}

struct CodecCase {
  std::string codec, extension, probe_name, pix_fmt, container;
  double min_psnr;  // infinity: bit-exact
};

class EncoderCodecs : public ::testing::TestWithParam<CodecCase> {};

TEST_P(EncoderCodecs, WritesWhatFfprobeReadsAndDecodesBack) {
  const CodecCase& c = GetParam();
  fs::path dir = test::temp_dir("codec");
  fs::path out = dir / ("clip." + c.extension);
  RunResult r = test::run(test::graph_json(
      {pattern(160, 96, 12, "30000/1001"), encoder("gen.out", {{"path", out.string()}, {"codec", c.codec}})}));
  ASSERT_TRUE(r.ok()) << r.failure->user_message() << "\n" << r.failure->detail;

  json p = test::probe(out);
  EXPECT_EQ(p["codec_name"], c.probe_name);
  EXPECT_NE(p["format_name"].get<std::string>().find(c.container), std::string::npos) << p["format_name"];
  EXPECT_EQ(p["width"], 160);
  EXPECT_EQ(p["height"], 96);
  EXPECT_EQ(p["pix_fmt"], c.pix_fmt);
  EXPECT_EQ(p["r_frame_rate"], "30000/1001");  // exact, not 29.97
  EXPECT_EQ(p["nb_read_frames"], "12");
  // FFmpeg 5.1 reads no colour tags back from ProRes in MOV, not even from files its own tool
  // writes with explicit tags; the other YUV codecs must carry them.
  if (c.pix_fmt.rfind("yuv", 0) == 0 && c.codec != "prores") {
    EXPECT_EQ(p["color_primaries"], "smpte170m");  // SD: BT.601
    EXPECT_EQ(p["color_space"], "smpte170m");
  }

  auto original = test::source_frames(
      "generator.pattern", {{"width", 160}, {"height", 96}, {"frames", 12}, {"fps", "30000/1001"}, {"seed", 3}});
  auto decoded = test::source_frames("source.video", {{"path", out.string()}});
  ASSERT_EQ(decoded.size(), original.size());
  for (std::size_t i = 0; i < decoded.size(); ++i) {
    double quality = test::psnr(original[i], decoded[i]);
    if (std::isinf(c.min_psnr)) {
      EXPECT_TRUE(at::equal(original[i], decoded[i])) << "frame " << i << " differs (PSNR " << quality << ")";
    } else {
      EXPECT_GE(quality, c.min_psnr) << "frame " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryCodec, EncoderCodecs,
                         ::testing::Values(CodecCase{"h264", "mp4", "h264", "yuv420p", "mp4", 30},
                                           CodecCase{"h265", "mp4", "hevc", "yuv420p", "mp4", 30},
                                           CodecCase{"vp9", "webm", "vp9", "yuv420p", "webm", 30},
                                           CodecCase{"av1", "mkv", "av1", "yuv420p", "matroska", 30},
                                           CodecCase{"prores", "mov", "prores", "yuv422p10le", "mov", 35},
                                           CodecCase{"ffv1", "mkv", "ffv1", "bgr0", "matroska", INFINITY}),
                         [](const auto& info) { return info.param.codec; });

void PrintTo(const CodecCase& c, std::ostream* os) { *os << c.codec << " in ." << c.extension; }

TEST(Encoder, HdIsTaggedBt709AndMp4HasFaststart) {
  fs::path out = test::temp_dir() / "hd.mp4";
  ASSERT_TRUE(test::run(test::graph_json({pattern(1280, 720, 3), encoder("gen.out", {{"path", out.string()}})})).ok());
  json p = test::probe(out);
  EXPECT_EQ(p["color_primaries"], "bt709");
  EXPECT_EQ(p["color_transfer"], "bt709");
  EXPECT_EQ(p["color_space"], "bt709");
  // +faststart: the index (moov) comes before the media data (mdat).
  std::ifstream in(out, std::ios::binary);
  std::string head(4096, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  EXPECT_LT(head.find("moov"), head.find("mdat"));
}

// The same settings give the same file as the ffmpeg tool, byte for byte: colour conversion,
// encoder options, threads, aspect ratio, container tags.
TEST(Encoder, H264IsByteIdenticalToTheFfmpegTool) {
  fs::path dir = test::temp_dir();
  fs::path clip = test::make_video(dir, "in.mkv", 1280, 720, 12, "30", "-pix_fmt bgr0 -c:v ffv1");
  ASSERT_TRUE(test::run(test::graph_json({{{"id", "src"}, {"type", "source.video"}, {"params", {{"path", clip.string()}}}},
                                          encoder("src.out", {{"path", (dir / "reel.mp4").string()},
                                                              {"crf", 23},
                                                              {"preset", "veryfast"},
                                                              {"audio", "none"}})}))
                  .ok());
  ASSERT_EQ(test::shell("ffmpeg -v error -y -i '" + clip.string() +
                        "' -vf 'scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,"
                        "format=yuv420p' -c:v libx264 -crf 23 -preset veryfast -color_primaries bt709 -color_trc bt709 "
                        "-colorspace bt709 -movflags +faststart '" +
                        (dir / "ffmpeg.mp4").string() + "'"),
            0);
  std::ifstream a(dir / "reel.mp4", std::ios::binary), b(dir / "ffmpeg.mp4", std::ios::binary);
  std::string reel_bytes((std::istreambuf_iterator<char>(a)), {}), ffmpeg_bytes((std::istreambuf_iterator<char>(b)), {});
  EXPECT_GT(reel_bytes.size(), 1000u);
  EXPECT_EQ(reel_bytes.size(), ffmpeg_bytes.size());
  EXPECT_TRUE(reel_bytes == ffmpeg_bytes) << "reel.mp4 and ffmpeg.mp4 differ";
}

TEST(Encoder, OddSizeIsAClearErrorOrPaddedOrCropped) {
  fs::path dir = test::temp_dir();
  RunResult refused =
      test::run(test::graph_json({pattern(161, 97, 3), encoder("gen.out", {{"path", (dir / "a.mp4").string()}})}));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.failure->kind, ErrorKind::invalid_graph);
  EXPECT_EQ(refused.failure->pointer, "/nodes/1/params/odd_size");
  EXPECT_EQ(refused.failure->phase, Phase::configure);
  EXPECT_TRUE(folder_is_empty(dir));
  ASSERT_TRUE(test::run(test::graph_json({pattern(161, 97, 3), encoder("gen.out", {{"path", (dir / "p.mp4").string()},
                                                                                   {"odd_size", "pad"}})}))
                  .ok());
  EXPECT_EQ(test::probe(dir / "p.mp4")["width"], 162);
  ASSERT_TRUE(test::run(test::graph_json({pattern(161, 97, 3), encoder("gen.out", {{"path", (dir / "c.mp4").string()},
                                                                                   {"odd_size", "crop"}})}))
                  .ok());
  EXPECT_EQ(test::probe(dir / "c.mp4")["height"], 96);
}

TEST(Encoder, PngWritesOneImageOrANumberedSequence) {
  fs::path dir = test::temp_dir();
  ASSERT_TRUE(test::run(test::graph_json({pattern(64, 48, 1), encoder("gen.out", {{"path", (dir / "one.png").string()},
                                                                                  {"codec", "png"}})}))
                  .ok());
  EXPECT_EQ(test::probe(dir / "one.png")["codec_name"], "png");
  ASSERT_TRUE(
      test::run(test::graph_json({pattern(64, 48, 4),
                                  encoder("gen.out", {{"path", (dir / "seq_%03d.png").string()}, {"codec", "png"}})}))
          .ok());
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(fs::exists(dir / ("seq_00" + std::to_string(i) + ".png"))) << i;
  RunResult no_pattern = test::run(test::graph_json(
      {pattern(64, 48, 4), encoder("gen.out", {{"path", (dir / "x.png").string()}, {"codec", "png"}})}));
  ASSERT_FALSE(no_pattern.ok());
  EXPECT_EQ(no_pattern.failure->pointer, "/nodes/1/params/path");
  auto decoded = test::source_frames("source.image", {{"path", (dir / "seq_002.png").string()}});
  auto original = test::source_frames("generator.pattern", {{"width", 64}, {"height", 48}, {"frames", 4}, {"seed", 3}});
  ASSERT_EQ(decoded.size(), 1u);
  EXPECT_TRUE(at::equal(decoded[0], original[2]));  // PNG is lossless
}

TEST(Encoder, ExistingOutputIsNotOverwrittenAndUnwritableFolderIsAnIoError) {
  fs::path dir = test::temp_dir();
  test::write_file(dir / "clip.mp4", "precious");
  RunResult r =
      test::run(test::graph_json({pattern(64, 48, 3), encoder("gen.out", {{"path", (dir / "clip.mp4").string()}})}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->kind, ErrorKind::io);
  EXPECT_EQ(test::read_lines(dir / "clip.mp4").at(0), "precious");
  for (const char* path : {"/nonexistent-folder/clip.mp4", "/sys/reel-clip.mp4"}) {
    RunResult w = test::run(test::graph_json({pattern(64, 48, 3), encoder("gen.out", {{"path", path}})}));
    ASSERT_FALSE(w.ok()) << path;
    EXPECT_EQ(w.failure->kind, ErrorKind::io) << path << ": " << w.failure->user_message();
    EXPECT_EQ(exit_code(w.failure->kind), 74);
  }
}

TEST(Encoder, FailureMidStreamLeavesNoPartialFile) {
  fs::path dir = test::temp_dir();
  json g = test::graph_json({pattern(64, 48, 30),
                             {{"id", "boom"},
                              {"type", "test.map"},
                              {"inputs", {{"in", "gen.out"}}},
                              {"params", {{"fail_phase", "process"}, {"fail_frame", 20}}}},
                             encoder("boom.out", {{"path", (dir / "clip.mp4").string()}})});
  RunResult r = test::run(g);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(folder_is_empty(dir)) << fs::directory_iterator(dir)->path();
}

// Steady state allocates nothing per frame: frames (and FFmpeg's and libswscale's buffers) are
// reused, so the page faults of a run do not grow with its length. A fresh 640x360 and 1280x720
// RGB buffer per frame alone would fault in (691,200 + 2,764,800) / 4,096 = 843 pages per frame.
TEST(MediaPath, PageFaultsPerFrameDoNotGrowWithTheNumberOfFrames) {
  fs::path dir = test::temp_dir();
  fs::path clip = test::make_video(dir, "in.mkv", 640, 360, 160, "30", "-c:v ffv1");
  auto faults_of_run = [&](int frames) {
    json graph = test::graph_json(
        {{{"id", "src"}, {"type", "source.video"}, {"params", {{"path", clip.string()}, {"count", frames}}}},
         {{"id", "up"},
          {"type", "upscaler.resize"},
          {"inputs", {{"in", "src.out"}}},
          {"params", {{"width", 1280}, {"height", 720}}}},
         encoder("up.out", {{"path", (dir / "out.mp4").string()}, {"preset", "ultrafast"}})});
    RunOptions options;
    options.overwrite_outputs = true;
    rusage before{}, after{};
    getrusage(RUSAGE_SELF, &before);
    RunResult r = test::run(graph, options);
    getrusage(RUSAGE_SELF, &after);
    EXPECT_TRUE(r.ok()) << (r.failure ? r.failure->user_message() : "");
    return after.ru_minflt - before.ru_minflt;
  };
  faults_of_run(10);  // libraries, codecs and threads warmed up
  const long short_run = faults_of_run(20);
  const long long_run = faults_of_run(150);
  const double per_frame = static_cast<double>(long_run - short_run) / 130;
  std::printf("page faults: 20 frames %ld, 150 frames %ld: %.1f per extra frame\n", short_run, long_run, per_frame);
  EXPECT_LT(per_frame, 40.0) << "buffers are allocated afresh for every frame";
}

TEST(SourceVideo, BadInputsAreClearErrorsNamingTheFile) {
  fs::path dir = test::temp_dir("bad");
  fs::path good = test::make_video(dir, "good.mp4", 64, 48, 10);
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  test::write_file(dir / "zero.mp4", "");
  test::write_file(dir / "truncated.mp4", bytes.substr(0, bytes.size() / 2));
  std::string noise(20000, '\0');
  for (std::size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761u) >> 13);
  test::write_file(dir / "random.mp4", noise);
  test::write_file(dir / "text.mp4", "this is not a video\n");
  fs::path out_dir = test::temp_dir("out");
  for (const char* name : {"zero.mp4", "truncated.mp4", "random.mp4", "text.mp4", "missing.mp4"}) {
    SCOPED_TRACE(name);
    std::string path = (dir / name).string();
    RunResult r = test::run(test::graph_json({{{"id", "src"}, {"type", "source.video"}, {"params", {{"path", path}}}},
                                              encoder("src.out", {{"path", (out_dir / "out.mp4").string()}})}));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.failure->kind, ErrorKind::bad_input) << r.failure->detail;
    EXPECT_EQ(exit_code(r.failure->kind), 66);
    EXPECT_EQ(r.failure->node_id, "src");
    EXPECT_NE(r.failure->reason.find(path), std::string::npos) << r.failure->reason;
    EXPECT_TRUE(folder_is_empty(out_dir));
  }
}

// Frames whose flat grey level encodes a number n (luma 16 + 3n), so which input frame an output
// frame shows can be read back from it. Lossless codecs keep the level exact.
struct Container {
  std::string extension, codec;
};
const std::vector<Container> kContainers = {{"mkv", "-c:v ffv1"},
                                            {"webm", "-c:v libvpx-vp9 -lossless 1 -deadline realtime -cpu-used 8"},
                                            {"mp4", "-c:v libx264 -qp 0 -preset ultrafast"},
                                            {"mov", "-c:v libx264 -qp 0 -preset ultrafast"}};

fs::path numbered_clip(const fs::path& dir, const std::string& name, const Container& c, const std::string& rate,
                       int frames, const std::string& select = "") {
  fs::path file = dir / (name + "." + c.extension);
  std::string filter = "nullsrc=s=64x48:r=" + rate + ",format=yuv420p,geq=lum='16+3*N':cb=128:cr=128,trim=end_frame=" +
                       std::to_string(frames);
  if (!select.empty()) filter += ",select='" + select + "'";
  std::string command = "ffmpeg -v error -y -f lavfi -i \"" + filter + "\"" +
                        (select.empty() ? "" : " -fps_mode passthrough") + " " + c.codec + " '" + file.string() + "'";
  EXPECT_EQ(test::shell(command), 0) << command;
  return file;
}

// The number a numbered frame carries (limited-range grey back through RGB).
int number_of(const at::Tensor& frame) {
  double rgb = frame.to(at::kDouble).mean().item<double>();
  return static_cast<int>(std::lround(rgb * 219.0 / 255.0 / 3.0));
}

std::vector<int> numbers(const std::vector<at::Tensor>& frames) {
  std::vector<int> n;
  for (const auto& f : frames) n.push_back(number_of(f));
  return n;
}

// Read at its own rate, every container gives the stream back frame for frame: no frame dropped
// or shown twice because the container rounds timestamps (MKV and WebM store milliseconds).
TEST(SourceVideoFps, AStreamReadAtItsOwnRateIsUnchangedInEveryContainer) {
  fs::path dir = test::temp_dir("fps");
  const std::vector<std::pair<std::string, int>> rates = {{"24", 24}, {"30", 30}, {"30000/1001", 30}, {"25", 25}};
  for (const auto& c : kContainers)
    for (const auto& [rate, frames] : rates) {
      std::string label = c.extension + " at " + rate;
      fs::path clip = numbered_clip(dir, c.extension + std::to_string(frames) + (rate.size() > 3 ? "ntsc" : ""), c,
                                    rate, frames);
      auto stored = test::source_frames("source.video", {{"path", clip.string()}});
      auto resampled = test::source_frames("source.video", {{"path", clip.string()}, {"fps", rate}});
      std::vector<int> expected(static_cast<std::size_t>(frames));
      for (int i = 0; i < frames; ++i) expected[i] = i;
      EXPECT_EQ(numbers(stored), expected) << label;
      EXPECT_EQ(numbers(resampled), expected) << label;
    }
}

// Variable rate: frames on a 1/60 s grid with some left out, read at 30 fps. Output frame k shows
// the last input frame at or before k/30 s, i.e. the kept frame with the largest n <= 2k, in every
// container whatever its time base.
TEST(SourceVideoFps, VariableRateMapsEachOutputFrameToTheInputOfItsTimeSlot) {
  fs::path dir = test::temp_dir("vfr");
  const std::string keep = "not(eq(mod(n,5),1))*not(eq(mod(n,7),3))*not(between(n,20,25))";
  std::vector<int> kept;
  for (int n = 0; n < 72; ++n)
    if (n % 5 != 1 && n % 7 != 3 && !(n >= 20 && n <= 25)) kept.push_back(n);
  for (const auto& c : kContainers) {
    fs::path clip = numbered_clip(dir, "vfr", c, "60", 72, keep);
    auto stored = test::source_frames("source.video", {{"path", clip.string()}});
    ASSERT_EQ(numbers(stored), kept) << c.extension << ": the fixture keeps the frames chosen";
    auto resampled = test::source_frames("source.video", {{"path", clip.string()}, {"fps", "30"}});
    std::vector<int> got = numbers(resampled);
    // Every frame up to the last input frame's time, 71/60 s: k = 0..35.
    ASSERT_GE(got.size(), 36u) << c.extension;
    EXPECT_LE(got.size(), 37u) << c.extension;
    for (std::size_t k = 0; k < got.size(); ++k) {
      int expected = *std::prev(std::upper_bound(kept.begin(), kept.end(), static_cast<int>(2 * k)));
      EXPECT_EQ(got[k], expected) << c.extension << ": output frame " << k << " (" << k << "/30 s)";
    }
  }
}

// `start` enters a constant-rate stream at the keyframe before it (x264 and VP9 with a keyframe
// every 10 frames; every FFV1 frame is one) and a variable-rate stream by decoding from its start:
// the frames are those of a decode from the start, in every container, on and around keyframes.
TEST(SourceVideo, StartIsFrameExactThroughKeyframesAndInVariableRateStreams) {
  fs::path dir = test::temp_dir("seek");
  for (const auto& c : kContainers) {
    const Container gop{c.extension, c.codec + " -g 10"};
    fs::path clip = numbered_clip(dir, "gop", gop, "24", 60);
    for (int start : {1, 9, 10, 11, 37, 58}) {
      auto frames = test::source_frames("source.video", {{"path", clip.string()}, {"start", start}, {"count", 3}});
      std::vector<int> expected;
      for (int n = start; n < std::min(start + 3, 60); ++n) expected.push_back(n);
      EXPECT_EQ(numbers(frames), expected) << c.extension << " from frame " << start;
    }
  }
  const std::string keep = "not(eq(mod(n,5),1))*not(eq(mod(n,7),3))*not(between(n,20,25))";
  std::vector<int> kept;
  for (int n = 0; n < 72; ++n)
    if (n % 5 != 1 && n % 7 != 3 && !(n >= 20 && n <= 25)) kept.push_back(n);
  for (const auto& c : kContainers) {
    fs::path clip = numbered_clip(dir, "vfr", {c.extension, c.codec + " -g 10"}, "60", 72, keep);
    for (int start : {3, 14, 30}) {
      auto frames = test::source_frames("source.video", {{"path", clip.string()}, {"start", start}, {"count", 4}});
      std::vector<int> expected(kept.begin() + start, kept.begin() + start + 4);
      EXPECT_EQ(numbers(frames), expected) << c.extension << " (variable rate) from frame " << start;
    }
  }
}

// A 2 s clip at 24 fps with a 440 Hz tone in AAC.
fs::path clip_with_audio(const fs::path& dir) {
  fs::path clip = dir / "with-audio.mp4";
  EXPECT_EQ(test::shell("ffmpeg -v error -y -f lavfi -i testsrc2=s=160x96:r=24:d=2 -f lavfi -i "
                        "sine=frequency=440:sample_rate=48000:duration=2 -c:v libx264 -preset ultrafast -c:a aac "
                        "-shortest '" + clip.string() + "'"),
            0);
  return clip;
}

// ffprobe's streams of a file: codec_type, codec_name and duration of each.
json probe_streams(const fs::path& file) {
  std::string out;
  test::shell("ffprobe -v error -show_entries stream=codec_type,codec_name,duration -of json '" + file.string() + "'",
              &out);
  json j = json::parse(out, nullptr, false);
  return j.is_discarded() ? json::array() : j["streams"];
}

std::optional<json> stream_of(const json& streams, const std::string& type) {
  for (const auto& s : streams)
    if (s["codec_type"] == type) return s;
  return std::nullopt;
}

json video_source(const fs::path& clip, const json& extra = json::object()) {
  json params = {{"path", clip.string()}};
  params.update(extra);
  return {{"id", "src"}, {"type", "source.video"}, {"params", params}};
}

// The sound of the source goes through nodes whose frames span the same time (an upscaler, an
// interpolator doubling the rate) and is copied beside the video, cut to the video's length.
TEST(EncoderAudio, TheSourcesAudioIsCopiedThroughNodesThatKeepTheTime) {
  fs::path dir = test::temp_dir("audio");
  fs::path clip = clip_with_audio(dir);
  fs::path out = dir / "out.mp4";
  RunResult r = test::run(test::graph_json(
      {video_source(clip),
       {{"id", "up"}, {"type", "upscaler.resize"}, {"inputs", {{"in", "src.out"}}}, {"params", {{"scale", 2}}}},
       {{"id", "interp"}, {"type", "interpolator.blend"}, {"inputs", {{"in", "up.out"}}}, {"params", {{"multiplier", 2}}}},
       encoder("interp.out", {{"path", out.string()}})}));
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  json streams = probe_streams(out);
  auto audio = stream_of(streams, "audio");
  auto video = stream_of(streams, "video");
  ASSERT_TRUE(audio && video) << streams.dump();
  EXPECT_EQ((*audio)["codec_name"], "aac");
  double audio_seconds = std::stod((*audio)["duration"].get<std::string>());
  double video_seconds = std::stod((*video)["duration"].get<std::string>());
  EXPECT_NEAR(audio_seconds, video_seconds, 0.05) << streams.dump();
  EXPECT_NEAR(video_seconds, 2.0, 0.05);
  EXPECT_EQ(r.nodes.back().facts.at(0).first, "audio");
  EXPECT_NE(r.nodes.back().facts.at(0).second.find("aac copied from"), std::string::npos);

  // Frames 24-35 (0.5 s from 1 s): the audio follows the cut.
  fs::path part = dir / "part.mkv";
  ASSERT_TRUE(test::run(test::graph_json({video_source(clip, {{"start", 24}, {"count", 12}}),
                                          encoder("src.out", {{"path", part.string()}})}))
                  .ok());
  auto part_audio = stream_of(probe_streams(part), "audio");
  ASSERT_TRUE(part_audio);
  std::string packets;
  test::shell("ffprobe -v error -select_streams a:0 -show_entries packet=pts_time,duration_time -of csv=p=0 '" +
                  part.string() + "'",
              &packets);
  std::stringstream lines(packets);
  double first = 1e9, last_end = 0;
  for (std::string line; std::getline(lines, line);) {
    double pts = 0, duration = 0;
    if (std::sscanf(line.c_str(), "%lf,%lf", &pts, &duration) != 2) continue;
    first = std::min(first, pts);
    last_end = std::max(last_end, pts + duration);
  }
  EXPECT_NEAR(first, 0.0, 0.03) << packets;
  EXPECT_NEAR(last_end, 0.5, 0.03) << packets;
}

// Where the audio cannot follow, reel says so: a warning (or an error when copy was asked for),
// never silence.
TEST(EncoderAudio, AudioThatCannotBeKeptIsReportedNotSilentlyLost) {
  fs::path dir = test::temp_dir("audio");
  fs::path clip = clip_with_audio(dir);
  // AAC does not go into WebM as it is.
  RunResult webm = test::run(test::graph_json(
      {video_source(clip, {{"count", 6}}), encoder("src.out", {{"path", (dir / "a.webm").string()}, {"codec", "vp9"}})}));
  ASSERT_TRUE(webm.ok()) << webm.failure->user_message();
  EXPECT_FALSE(stream_of(probe_streams(dir / "a.webm"), "audio"));
  ASSERT_FALSE(webm.nodes.back().facts.empty());
  EXPECT_NE(webm.nodes.back().facts[0].second.find("dropped (a .webm file cannot store aac"), std::string::npos)
      << webm.nodes.back().facts[0].second;
  RunResult required = test::run(test::graph_json(
      {video_source(clip, {{"count", 6}}),
       encoder("src.out", {{"path", (dir / "b.webm").string()}, {"codec", "vp9"}, {"audio", "copy"}})}));
  ASSERT_FALSE(required.ok());
  EXPECT_EQ(required.failure->pointer, "/nodes/1/params/audio");
  RunResult none = test::run(test::graph_json(
      {video_source(clip, {{"count", 6}}), encoder("src.out", {{"path", (dir / "c.mp4").string()}, {"audio", "none"}})}));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(stream_of(probe_streams(dir / "c.mp4"), "audio"));
  EXPECT_TRUE(none.nodes.back().facts.empty());
  // Frames with no sound at all cannot be asked to carry it.
  RunResult silent = test::run(test::graph_json(
      {pattern(64, 48, 3), encoder("gen.out", {{"path", (dir / "d.mp4").string()}, {"audio", "copy"}})}));
  ASSERT_FALSE(silent.ok());
  EXPECT_NE(silent.failure->reason.find("carry no audio"), std::string::npos) << silent.failure->reason;
  // A node whose frames do not span its input's time drops the sound, and the log says where.
  json conditioned = {{"id", "gen"}, {"type", "test.conditioned"}, {"inputs", {{"in", "src.out"}}}, {"params", {{"frames", 2}}}};
  fs::path graph = dir / "drop.json";
  test::write_file(graph, test::graph_json({video_source(clip, {{"count", 4}}), conditioned,
                                            encoder("gen.out", {{"path", (dir / "e.mp4").string()}})})
                              .dump());
  std::string log;
  test::shell(std::string(REEL_EXECUTABLE) + " --plugin-path " + REEL_TEST_PLUGIN_DIR + " run --no-progress '" +
                  graph.string() + "' 2>&1",
              &log);
  EXPECT_NE(log.find("node gen (test.conditioned) does not keep the aac audio of " + clip.string()), std::string::npos)
      << log;
}

// The nodes that hand frame memory to libswscale check the frame themselves, whoever calls them:
// defence in depth behind the executor's own check at the hand-over.
TEST(BuiltInNodes, ResizeAndEncoderRefuseAMisshapenFrameBeforeLibswscale) {
  fs::path dir = test::temp_dir();
  StreamDesc in;
  in.width = 8, in.height = 8, in.fps = {24, 1}, in.frame_count = 1;
  const std::vector<std::pair<std::string, json>> nodes = {
      {"upscaler.resize", {{"scale", 2}}}, {"encoder.ffmpeg", {{"path", (dir / "x.mkv").string()}, {"codec", "ffv1"}}}};
  for (const auto& [type, values] : nodes) {
    const RegisteredType* entry = test::catalog().find(type);
    ASSERT_NE(entry, nullptr);
    Params params = validate_params(entry->type, values);
    std::vector<StreamDesc> inputs = {in};
    auto node = entry->type.create();
    node->configure(NodeConfig{"n", params, inputs, false});
    node->load();
    Emitter out;
    Frame one_channel{at::zeros({1, 8, 8}, at::kByte), 0, {}};
    try {
      node->process(one_channel, 0, out);
      ADD_FAILURE() << type << " took a 1-channel frame";
    } catch (const BadInputError& e) {
      EXPECT_NE(std::string(e.what()).find("shape [1, 8, 8]"), std::string::npos) << e.what();
    }
    node->discard_outputs();
    node->unload();
  }
  EXPECT_TRUE(folder_is_empty(dir));
}

TEST(SourceVideo, RangeResizeRotationTenBitAndFpsResampling) {
  fs::path dir = test::temp_dir("src");
  fs::path clip = test::make_video(dir, "clip.mp4", 160, 96, 48, "24");
  auto all = test::source_frames("source.video", {{"path", clip.string()}});
  ASSERT_EQ(all.size(), 48u);
  auto range = test::source_frames("source.video", {{"path", clip.string()}, {"start", 10}, {"count", 5}});
  ASSERT_EQ(range.size(), 5u);
  EXPECT_TRUE(at::equal(range[0], all[10]));
  auto small = test::source_frames("source.video", {{"path", clip.string()}, {"width", 80}, {"count", 1}});
  EXPECT_EQ(small[0].sizes(), (std::vector<std::int64_t>{3, 48, 80}));
  auto half_rate = test::source_frames("source.video", {{"path", clip.string()}, {"fps", "12"}});
  EXPECT_EQ(half_rate.size(), 24u);
  EXPECT_TRUE(at::equal(half_rate[3], all[6]));

  // A portrait phone clip: stored 160x96, shown rotated 90 degrees clockwise. ffmpeg's own
  // autorotation is the reference for which way is up.
  fs::path rotated = dir / "rotated.mp4";
  remux_with_rotation(clip, rotated, 90);
  auto upright = test::source_frames("source.video", {{"path", rotated.string()}, {"count", 1}});
  ASSERT_EQ(upright.size(), 1u);
  EXPECT_EQ(upright[0].sizes(), (std::vector<std::int64_t>{3, 160, 96}));
  ASSERT_EQ(test::shell("ffmpeg -v error -y -i '" + rotated.string() + "' -frames:v 1 '" +
                        (dir / "upright.png").string() + "'"),
            0);
  auto reference = test::source_frames("source.image", {{"path", (dir / "upright.png").string()}});
  ASSERT_EQ(reference[0].sizes(), upright[0].sizes());
  // The two decoders convert colour differently (about 26 dB on testsrc2's sharp edges), but the
  // other way up would not match at all.
  double right_way = test::psnr(reference[0], upright[0]);
  double upside_down = test::psnr(reference[0], at::rot90(upright[0], 2, {1, 2}));
  std::printf("rotation: PSNR against ffmpeg %.1f dB, upside down %.1f dB\n", right_way, upside_down);
  EXPECT_GT(right_way, 22);
  EXPECT_GT(right_way, upside_down + 10);

  fs::path deep =
      test::make_video(dir, "deep.mkv", 160, 96, 3, "24", "-vf scale=161:97 -c:v ffv1 -pix_fmt yuv444p10le");
  auto ten_bit = test::source_frames("source.video", {{"path", deep.string()}});
  ASSERT_EQ(ten_bit.size(), 3u);
  EXPECT_EQ(ten_bit[0].sizes(), (std::vector<std::int64_t>{3, 97, 161}));
}

TEST(GeneratorPattern, SameSeedAndPromptGiveTheSameFramesAndTheyMove) {
  json params = {{"width", 64}, {"height", 48}, {"frames", 5}, {"seed", 9}, {"prompt", "tide"}};
  auto a = test::source_frames("generator.pattern", params);
  auto b = test::source_frames("generator.pattern", params);
  ASSERT_EQ(a.size(), 5u);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << i;
  EXPECT_LT(test::psnr(a[0], a[4]), 30) << "the frames should move";
  params["prompt"] = "storm";
  EXPECT_FALSE(at::equal(test::source_frames("generator.pattern", params)[0], a[0]));
}

TEST(UpscalerResize, ScaleOrOneSideKeepsTheAspectRatio) {
  fs::path dir = test::temp_dir();
  auto run_resize = [&](const json& params, const std::string& name) {
    fs::path out = dir / name;
    json g = test::graph_json(
        {pattern(160, 90, 2),
         {{"id", "up"}, {"type", "upscaler.resize"}, {"inputs", {{"in", "gen.out"}}}, {"params", params}},
         encoder("up.out", {{"path", out.string()}, {"codec", "ffv1"}})});
    RunResult r = test::run(g);
    EXPECT_TRUE(r.ok()) << r.failure->user_message();
    json p = test::probe(out);
    return std::make_pair(p["width"].get<int>(), p["height"].get<int>());
  };
  EXPECT_EQ(run_resize({{"scale", 2}, {"filter", "lanczos"}}, "a.mkv"), std::make_pair(320, 180));
  EXPECT_EQ(run_resize({{"width", 640}}, "b.mkv"), std::make_pair(640, 360));
  EXPECT_EQ(run_resize({{"width", 100}, {"height", 100}, {"filter", "area"}}, "c.mkv"), std::make_pair(100, 100));
}

TEST(InterpolatorBlend, NFramesBecomeNMinusOneTimesMPlusOneAtMTimesTheRate) {
  fs::path out = test::temp_dir() / "blend.mkv";
  json g = test::graph_json({pattern(64, 48, 49),
                             {{"id", "blend"},
                              {"type", "interpolator.blend"},
                              {"inputs", {{"in", "gen.out"}}},
                              {"params", {{"multiplier", 2}}}},
                             encoder("blend.out", {{"path", out.string()}, {"codec", "ffv1"}})});
  RunResult r = test::run(g);
  ASSERT_TRUE(r.ok()) << r.failure->user_message();
  json p = test::probe(out);
  EXPECT_EQ(p["nb_read_frames"], "97");
  EXPECT_EQ(p["r_frame_rate"], "48/1");
  auto original =
      test::source_frames("generator.pattern", {{"width", 64}, {"height", 48}, {"frames", 49}, {"seed", 3}});
  auto decoded = test::source_frames("source.video", {{"path", out.string()}});
  ASSERT_EQ(decoded.size(), 97u);
  for (std::size_t k = 0; k < original.size(); ++k) EXPECT_TRUE(at::equal(decoded[2 * k], original[k])) << k;
}

TEST(LongStream, PeakMemoryDoesNotGrowWithFrameCount) {
  auto peak = [](int frames) {
    fs::path out = test::temp_dir("long") / "long.mp4";
    RunResult r = test::run(test::graph_json(
        {pattern(160, 96, frames),
         {{"id", "up"}, {"type", "upscaler.resize"}, {"inputs", {{"in", "gen.out"}}}, {"params", {{"scale", 2}}}},
         encoder("up.out", {{"path", out.string()}, {"preset", "ultrafast"}})}));
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(test::probe(out)["nb_read_frames"], std::to_string(frames));
    return static_cast<double>(r.peak_rss_bytes);
  };
  peak(50);  // warm-up
  double short_run = peak(200);
  double long_run = peak(2000);
  std::printf("peak RSS: 200 frames %.1f MB, 2000 frames %.1f MB\n", short_run / 1e6, long_run / 1e6);
  EXPECT_LT(long_run, short_run * 1.10);
}

// Every example graph runs, with its inputs and outputs pointed at temporary files.
TEST(ExampleGraphs, EveryGraphInTheRepositoryRuns) {
  fs::path dir = test::temp_dir("graphs");
  fs::path video = test::make_video(dir, "input.mp4", 160, 96, 10);
  fs::path image = dir / "input.png";
  ASSERT_EQ(test::shell("ffmpeg -v error -f lavfi -i testsrc2=size=80x60 -frames:v 1 '" + image.string() + "'"), 0);
  std::map<std::string, std::vector<std::string>> sets = {
      {"demo.json", {"encode.path=" + (dir / "demo.mp4").string()}},
      {"upscale-video.json", {"src.path=" + video.string(), "encode.path=" + (dir / "upscaled.mp4").string()}},
      {"interpolate-video.json", {"src.path=" + video.string(), "encode.path=" + (dir / "interpolated.mp4").string()}},
      {"upscale-image.json", {"src.path=" + image.string(), "save.path=" + (dir / "upscaled.png").string()}},
      {"upscale-video-esrgan.json",
       {"src.path=" + video.string(), "up.model=" + (test::shared_dir() / "models/realesrgan/realesrgan-x4fast.param").string(),
        "encode.path=" + (dir / "esrgan.mp4").string()}},
      {"interpolate-video-rife.json",
       {"src.path=" + video.string(),
        "interp.model=" + test::shared_archive("reference/rife/weights.tar.xz").string() + "/flownet.pkl",
        "encode.path=" + (dir / "interpolated-rife.mp4").string()}},
  };
  // The CogVideoX graphs on a tiny model at a tiny size: 9 frames of 96x64 -> 4x -> 17 frames.
  auto cogvideox = [&](const std::string& model, const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> s = {
        "gen.model=" + (test::shared_dir() / "reference/cogvideox/models" / model).string(), "gen.frames=9",
        "gen.width=96", "gen.height=64", "gen.steps=2", "gen.seed=1", "gen.device=cpu",
        "up.model=" + (test::shared_dir() / "models/realesrgan/realesrgan-x4fast.param").string(),
        "interp.model=" + test::shared_archive("reference/rife/weights.tar.xz").string() + "/flownet.pkl",
        "encode.path=" + (dir / out).string()};
    s.insert(s.end(), extra.begin(), extra.end());
    return s;
  };
  if (!test::shared_dir().empty()) {
    sets["t2v.json"] = cogvideox("tiny-cogvideox-5b", "t2v.mp4", {});
    sets["i2v.json"] = cogvideox("tiny-cogvideox-5b-i2v", "i2v.mp4", {"src.path=" + image.string()});
    sets["v2v.json"] = cogvideox("tiny-cogvideox-2b", "v2v.mp4", {"src.path=" + video.string(), "src.count=9"});
  }
  const std::set<std::string> needs_shared = {"upscale-video-esrgan.json", "interpolate-video-rife.json", "t2v.json",
                                              "i2v.json", "v2v.json"};
  const std::set<std::string> needs_cogvideox = {"t2v.json", "i2v.json", "v2v.json"};
  std::size_t found = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(REEL_SOURCE_DIR) / "graphs")) {
    std::string name = entry.path().filename();
    SCOPED_TRACE(name);
    if (needs_shared.count(name) && test::shared_dir().empty()) {
      std::fprintf(stderr, "\n*** SKIPPED %s: its weights are missing (REEL_SHARED_DIR) ***\n\n", name.c_str());
      found += sets.count(name);
      continue;
    }
    if (needs_cogvideox.count(name) && !test::catalog().find("generator.cogvideox")) {
      std::fprintf(stderr, "\n*** SKIPPED %s: generator.cogvideox is not built (libsentencepiece missing) ***\n\n",
                   name.c_str());
      found += sets.count(name);
      continue;
    }
    ASSERT_TRUE(sets.count(name)) << "a new graph needs its inputs and outputs listed here";
    GraphSpec g = parse_graph_file(entry.path());
    apply_overrides(g, sets.at(name));
    RunResult r = run_graph(g, test::catalog(), {});
    EXPECT_TRUE(r.ok()) << r.failure->user_message();
    ++found;
  }
  EXPECT_EQ(found, sets.size());
  EXPECT_EQ(test::probe(dir / "demo.mp4")["nb_read_frames"], "97");
  if (sets.count("t2v.json") && test::catalog().find("generator.cogvideox"))
    for (const char* out : {"t2v.mp4", "i2v.mp4", "v2v.mp4"}) {
      json probe = test::probe(dir / out);
      EXPECT_EQ(probe["nb_read_frames"], "17") << out;
      EXPECT_EQ(probe["width"], 384) << out;
      EXPECT_EQ(probe["r_frame_rate"], "16/1") << out;
    }
  EXPECT_EQ(test::probe(dir / "interpolated.mp4")["nb_read_frames"], "19");
  if (!test::shared_dir().empty()) {
    EXPECT_EQ(test::probe(dir / "interpolated-rife.mp4")["nb_read_frames"], "19");
  }
  EXPECT_EQ(test::probe(dir / "upscaled.png")["width"], 320);
}

}  // namespace
}  // namespace reel
