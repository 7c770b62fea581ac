#pragma once
// Small helpers shared by the FFmpeg nodes of this plugin.

extern "C" {
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
}

#include <string>

namespace reel::ffmpeg {

inline std::string av_error(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof text);
  return text;
}

// The options reel's muxers write with: MP4 and MOV get their index first (playable while
// downloading) and colour tags always. The caller frees the dictionary.
inline AVDictionary* muxer_options(const AVFormatContext* format) {
  AVDictionary* options = nullptr;
  const std::string name = format->oformat->name;
  if (name.find("mp4") != std::string::npos || name.find("mov") != std::string::npos)
    av_dict_set(&options, "movflags", "+faststart+write_colr", 0);
  return options;
}

}  // namespace reel::ffmpeg
