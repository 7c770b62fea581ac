#pragma once
// Joins video files made as parts of one stream (`reel shard`) into one file by stream copy: no
// decoding, no re-encoding. Every part must hold one video stream with the first part's codec,
// parameters, extra data (the encoder's headers) and rate, start with a keyframe, and hold exactly
// the frames it is said to; any difference is an error naming the part. The source's audio can
// be copied in once, from where the first frame sits, cut where the video ends.

#include <reel/stream.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace reel::ffmpeg {

struct JoinPart {
  std::string path;
  std::int64_t frames = 0;  // how many it must hold
};

// The audio to add: `source`'s main audio stream from `start_frame` of its main video stream
// (whose rate and first timestamp place it). Empty when the file has no audio.
std::optional<AudioSource> audio_from_frame(const std::string& source, std::int64_t start_frame);

// Writes `output` (atomically: a temporary file renamed when complete) and returns the frames
// written. Audio the container cannot store is an error when `audio_required`, else left out
// with a warning (as encoder.ffmpeg's audio auto and copy do). Throws BadInputError naming the
// part that does not fit, IoError when writing fails.
std::int64_t join_parts(const std::vector<JoinPart>& parts, const std::string& output,
                        const std::optional<AudioSource>& audio, bool audio_required, bool overwrite);

}  // namespace reel::ffmpeg
