#pragma once
// Copies one audio stream of a file into a muxer packet by packet (no re-encoding): from where the
// video's first frame sits, interleaved with the video as it is written, cut where the video ends.

#include <reel/stream.h>

#include <memory>
#include <string>

struct AVFormatContext;
struct AVOutputFormat;

namespace reel::ffmpeg {

class AudioCopy {
 public:
  // Opens the file. Throws BadInputError naming it when the file or its audio stream cannot be read.
  explicit AudioCopy(const AudioSource& source);
  ~AudioCopy();
  AudioCopy(const AudioCopy&) = delete;
  AudioCopy& operator=(const AudioCopy&) = delete;

  // Whether `container` can store `codec` as it is ("aac" in a .webm file cannot).
  static bool storable(const std::string& codec, const AVOutputFormat* container);

  // Adds the audio stream to `out`; call before avformat_write_header.
  void add_stream(AVFormatContext* out);
  // Writes every packet that starts before `seconds` of output time (0: the first frame).
  // Throws IoError naming `target` when writing fails.
  void write_until(double seconds, const std::string& target);

 private:
  struct State;
  std::unique_ptr<State> state_;
  AudioSource source_;
};

}  // namespace reel::ffmpeg
