#pragma once
// Small helpers shared by the FFmpeg nodes of this plugin.

extern "C" {
#include <libavutil/error.h>
}

#include <string>

namespace reel::ffmpeg {

inline std::string av_error(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof text);
  return text;
}

}  // namespace reel::ffmpeg
