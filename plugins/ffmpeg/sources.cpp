// source.video and source.image: decode any file FFmpeg reads into RGB frames.
#include "decoder.h"
#include "nodes.h"

#include <reel/reel.h>

#include <ATen/ATen.h>

#include <cmath>
#include <memory>
#include <tuple>

namespace reel::ffmpeg {
namespace {

// The requested size, with a side left at 0 derived from the other by the source's aspect ratio,
// or the source's own size when both are 0.
std::pair<int, int> output_size(const VideoInfo& info, int width, int height) {
  if (width > 0 && height == 0)
    height = static_cast<int>(std::lround(static_cast<double>(info.height) * width / info.width));
  if (height > 0 && width == 0)
    width = static_cast<int>(std::lround(static_cast<double>(info.width) * height / info.height));
  return {width > 0 ? width : info.width, height > 0 ? height : info.height};
}

class VideoSource : public Node {
 public:
  std::vector<StreamDesc> configure(const NodeConfig& config) override {
    const Params& p = config.params;
    path_ = p.string("path");
    width_ = static_cast<int>(p.integer("width"));
    height_ = static_cast<int>(p.integer("height"));
    start_ = p.integer("start");
    count_ = p.integer("count");
    VideoInfo info = Decoder(path_).info();  // probe only; the file is opened again at load
    StreamDesc out;
    std::tie(out.width, out.height) = output_size(info, width_, height_);
    width_ = out.width, height_ = out.height;
    in_fps_ = info.fps;
    out.fps = info.fps;
    if (!p.string("fps").empty()) {
      auto fps = Rational::parse(p.string("fps"));
      if (!fps)
        throw InvalidParamError("fps", "fps '" + p.string("fps") + "' is not a frame rate",
                                "For example 24 or 30000/1001.");
      if (fps->num > 1'000'000'000 || fps->den > 1'000'000'000)
        throw InvalidParamError("fps", "fps '" + p.string("fps") + "' has terms above 10^9",
                                "For example 24 or 30000/1001.");
      out.fps = *fps;
      resample_ = true;
    }
    if (info.frame_count && start_ >= *info.frame_count)
      throw InvalidParamError("start",
                              "start " + std::to_string(start_) + " is past the end: " + path_ + " has " +
                                  std::to_string(*info.frame_count) + " frames",
                              "Use a start below " + std::to_string(*info.frame_count) + ".");
    if (count_ == 0) throw InvalidParamError("count", "count 0 would give no frames", "Use -1 for all frames.");
    // The length is promised only when the container states it and no resampling changes it.
    if (info.frame_count && !resample_) {
      std::int64_t n = std::max<std::int64_t>(0, *info.frame_count - start_);
      out.frame_count = count_ >= 0 ? std::min(n, count_) : n;
    }
    // The file's sound travels with the frames, from where the first used frame sits.
    if (info.audio_stream >= 0)
      out.audio = AudioSource{path_, info.audio_stream, info.audio_codec,
                              info.start_seconds + static_cast<double>(start_) / in_fps_.value()};
    stream_ = out;
    return {out};
  }

  std::vector<MemoryEstimate> estimate() const override {
    return {{"cpu", 0, static_cast<std::uint64_t>(stream_.width) * stream_.height * 3 * 4}};
  }

  void load() override {
    decoder_ = std::make_unique<Decoder>(path_, width_, height_);
    // To `start` through the keyframe before it where the stream allows, frame-exactly either way.
    // A stream that ends first gives no frame, which finish_stream() reports.
    decoder_->skip_to(start_);
  }

  bool produce(Emitter& out) override {
    if (count_ >= 0 && emitted_ >= count_) return finish_stream();
    if (!resample_) {
      if (stream_.frame_count && emitted_ >= *stream_.frame_count) {
        // The promised length is reached. A file whose header undercounts has more: say so
        // rather than drop them silently (the graph was planned for the header's length).
        if (count_ < 0 && decoder_->next())
          reel::log(LogLevel::warning, path_ + " has more frames than the " + std::to_string(emitted_) +
                                           " its header states; the rest are left out (re-mux the file to fix it)");
        return false;
      }
      auto picture = decoder_->next();
      if (!picture) return finish_stream();
      out.emit(std::move(picture->image));
      ++emitted_;
      return true;
    }
    // Constant output rate: output frame k shows the input frame whose time slot holds k / fps,
    // both times in the container's time base. Timestamps are stored rounded to it (1 ms in MKV
    // and WebM), so the output grid is rounded the same way before comparing: a stream read at
    // its own rate then maps 1:1, and no frame is dropped or doubled by a rounding difference.
    if (!started_) {
      pending_ = decoder_->next();
      if (!pending_) return finish_stream();
      origin_ = pending_->pts;
      started_ = true;
    }
    const std::int64_t t = origin_ + decoder_->ticks(emitted_, stream_.fps);
    while (pending_ && pending_->pts <= t) {
      current_ = std::move(pending_->image);
      last_pts_ = pending_->pts;
      last_duration_ = pending_->duration > 0 ? pending_->duration : decoder_->ticks(1, in_fps_);
      pending_ = decoder_->next();
    }
    // Past the end of the last input frame's slot: the clip has ended.
    if (!pending_ && t >= last_pts_ + last_duration_) return finish_stream();
    out.emit(current_);
    ++emitted_;
    return true;
  }

  void unload() override {
    decoder_.reset();
    pending_.reset();
    current_ = at::Tensor();
  }

 private:
  // A stream that ends short of the length its header promised is a truncated file: say so
  // instead of handing on fewer frames than the graph was planned for.
  bool finish_stream() {
    if (stream_.frame_count && emitted_ < *stream_.frame_count)
      throw BadInputError(path_ + ": ended after " + std::to_string(emitted_) + " frames, but its header promises " +
                              std::to_string(*stream_.frame_count),
                          "The file is probably truncated; re-encode or re-download it.");
    return false;
  }

  std::string path_;
  int width_ = 0, height_ = 0;
  std::int64_t start_ = 0, count_ = -1, emitted_ = 0;
  bool resample_ = false, started_ = false;
  Rational in_fps_;
  StreamDesc stream_;
  std::unique_ptr<Decoder> decoder_;
  std::optional<Decoder::Picture> pending_;
  at::Tensor current_;
  std::int64_t origin_ = 0, last_pts_ = 0, last_duration_ = 0;  // in the container's time base
};

class ImageSource : public Node {
 public:
  std::vector<StreamDesc> configure(const NodeConfig& config) override {
    path_ = config.params.string("path");
    width_ = static_cast<int>(config.params.integer("width"));
    height_ = static_cast<int>(config.params.integer("height"));
    StreamDesc out;
    std::tie(out.width, out.height) = output_size(Decoder(path_).info(), width_, height_);
    width_ = out.width, height_ = out.height;
    out.fps = {1, 1};
    out.frame_count = 1;
    return {out};
  }

  bool produce(Emitter& out) override {
    Decoder decoder(path_, width_, height_);
    auto picture = decoder.next();
    if (!picture) throw BadInputError(path_ + ": contains no picture", "The file may be truncated.");
    out.emit(std::move(picture->image));
    return false;
  }

  void unload() override {}

 private:
  std::string path_;
  int width_ = 0, height_ = 0;
};

}  // namespace

void register_sources(Registry& registry) {
  registry.add({
      .name = "source.video",
      .description = "Decode a video file (anything FFmpeg reads) into RGB frames",
      .params = {ParamSpec::string("path", "", "Input video file").make_required(),
                 ParamSpec::integer("start", 0, "First frame to use (0-based)").range(0, std::nullopt),
                 ParamSpec::integer("count", -1, "Frames to use; -1: to the end").range(-1, std::nullopt),
                 ParamSpec::string("fps", "", "Resample to this constant frame rate (e.g. 24); empty: as stored"),
                 ParamSpec::integer("width", 0, "Output width; 0: the video's (or from height)").range(0, 16384),
                 ParamSpec::integer("height", 0, "Output height; 0: the video's (or from width)").range(0, 16384)},
      .outputs = {{"out", PortKind::video,
                   "RGB frames, upright (rotation metadata applied), with the file's audio for a sink to copy"}},
      .frame_dependence = FrameDependence::same_frame,
      .example_params = {{"path", "conformance-input.mp4"}},
      .create = [] { return std::make_unique<VideoSource>(); },
  });
  registry.add({
      .name = "source.image",
      .description = "Read one image (PNG, JPEG, WebP... through FFmpeg) as a one-frame stream",
      .params = {ParamSpec::string("path", "", "Input image file").make_required(),
                 ParamSpec::integer("width", 0, "Output width; 0: the image's (or from height)").range(0, 16384),
                 ParamSpec::integer("height", 0, "Output height; 0: the image's (or from width)").range(0, 16384)},
      .outputs = {{"image", PortKind::image, "One RGB frame"}},
      .example_params = {{"path", "conformance-input.png"}},
      .create = [] { return std::make_unique<ImageSource>(); },
  });
}

}  // namespace reel::ffmpeg
