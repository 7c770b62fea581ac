#pragma once
// Reads the first video stream of any file FFmpeg can open and turns its frames into RGB
// tensors (CHW, uint8), upright (rotation metadata applied), optionally resized.

#include <reel/stream.h>

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>

namespace reel::ffmpeg {

struct VideoInfo {
  int width = 0, height = 0;                // as displayed: after rotation
  Rational fps;                             // average frame rate
  Rational time_base;                       // the container's timestamp unit, in seconds (1/1000 in MKV)
  std::optional<std::int64_t> frame_count;  // from the container header, when it has one
  int rotation = 0;                         // degrees clockwise to display upright: 0, 90, 180, 270
  std::string codec, pix_fmt;
  double start_seconds = 0;  // the video stream's first timestamp on the file's timeline
  int audio_stream = -1;     // the file's main audio stream, -1 without one
  std::string audio_codec;   // its codec ("aac", "opus")
};

class Decoder {
 public:
  // Opens and probes `path`. Throws BadInputError naming the file when it is missing, not a
  // video, or unsupported. Output size 0: the source's (upright) size.
  Decoder(const std::string& path, int out_width = 0, int out_height = 0);
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  const VideoInfo& info() const noexcept { return info_; }
  // The next frame and its time, or nothing at the end. Throws BadInputError when the data is
  // corrupt.
  struct Picture {
    at::Tensor image;
    std::int64_t pts = 0;       // in time_base units from the stream's start (counted when missing)
    std::int64_t duration = 0;  // in time_base units; 0 when the container does not say
  };
  std::optional<Picture> next();
  // `count` periods of `rate` (count / rate seconds) in time_base units, rounded to the nearest:
  // the precision at which the container stores timestamps.
  std::int64_t ticks(std::int64_t count, Rational rate) const;
  std::int64_t frames_decoded() const noexcept { return decoded_; }

 private:
  struct State;
  std::unique_ptr<State> state_;
  VideoInfo info_;
  std::string path_;
  int out_width_ = 0, out_height_ = 0;
  std::int64_t decoded_ = 0;
};

}  // namespace reel::ffmpeg
