#pragma once
// Whether a video stream's header places every frame by its timestamp: a constant rate (the real
// frame rate is the average) and no frame missing (the header's frame count fills the duration).
// Only such a stream can be entered at a keyframe and still be counted frame by frame
// (Decoder::skip_to); any other is decoded from its start to reach a frame. MP4 and MOV of a
// constant rate qualify; MKV and WebM (no frame count in the header) and variable rates do not.

#include <string>

struct AVStream;

namespace reel::ffmpeg {

bool frames_on_stated_grid(const AVStream& stream);

// The same for `path`'s main video stream; false when it cannot be read.
bool enters_at_keyframes(const std::string& path);

}  // namespace reel::ffmpeg
