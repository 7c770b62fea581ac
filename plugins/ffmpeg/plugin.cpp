// libreel_ffmpeg: encoder.ffmpeg, source.video, source.image.
#include "nodes.h"

#include <reel/log.h>

extern "C" {
#include <libavutil/log.h>
}

#include <cstdio>
#include <string_view>

namespace {

// FFmpeg's own messages go to reel's log, not to the terminal.
void forward_ffmpeg_log(void* context, int level, const char* format, va_list args) {
  if (level > av_log_get_level()) return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(context, level, format, args, line, sizeof line, &print_prefix);
  std::string_view text(line);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  reel::log(level <= AV_LOG_ERROR ? reel::LogLevel::warning : reel::LogLevel::debug, text);
}

void register_nodes(reel::Registry& registry) {
  av_log_set_level(AV_LOG_INFO);
  av_log_set_callback(forward_ffmpeg_log);
  reel::ffmpeg::register_encoder(registry);
  reel::ffmpeg::register_sources(registry);
}

}  // namespace

REEL_PLUGIN(register_nodes)
