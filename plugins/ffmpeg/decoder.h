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
  std::optional<std::int64_t> frame_count;  // from the container header, when it has one
  int rotation = 0;                         // degrees clockwise to display upright: 0, 90, 180, 270
  std::string codec, pix_fmt;
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
  // The next frame and its time in seconds, or nothing at the end. Throws BadInputError when the
  // data is corrupt.
  struct Picture {
    at::Tensor image;
    double seconds = 0;
  };
  std::optional<Picture> next();
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
