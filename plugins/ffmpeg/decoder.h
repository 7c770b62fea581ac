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
  // Moves to frame `index` (0-based, in display order) before the first next(), so that next()
  // returns that frame. A stream with a constant rate and a frame count in its header (MP4, MOV)
  // is entered at the keyframe before it (a seek) when the frames decoded from there lie exactly
  // on the rate's grid; any other stream, or a seek that lands anywhere else, is decoded from its
  // start. Either way the skipped frames are not
  // converted, and the frame returned is the one a decode from the start would give. False when
  // the stream ends before `index`.
  bool skip_to(std::int64_t index);
  // `count` periods of `rate` (count / rate seconds) in time_base units, rounded to the nearest:
  // the precision at which the container stores timestamps.
  std::int64_t ticks(std::int64_t count, Rational rate) const;

 private:
  void open();
  bool receive();  // decodes the next frame into the state's frame; false at the end
  Picture convert();
  bool seek_near(std::int64_t index);
  std::int64_t frame_index(std::int64_t pts) const;  // a timestamp from the stream's start, in frames

  struct State;
  std::unique_ptr<State> state_;
  bool held_ = false;  // the state's frame holds the next frame (left there by a seek)
  VideoInfo info_;
  std::string path_;
  int out_width_ = 0, out_height_ = 0;
  std::int64_t decoded_ = 0;
};

}  // namespace reel::ffmpeg
