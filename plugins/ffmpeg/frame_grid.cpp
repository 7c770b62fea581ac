#include "frame_grid.h"

extern "C" {
#include <libavformat/avformat.h>
#include <libavutil/mathematics.h>
}

#include <cstdlib>

namespace reel::ffmpeg {

bool frames_on_stated_grid(const AVStream& stream) {
  if (stream.nb_frames <= 0 || stream.duration <= 0 || stream.avg_frame_rate.num <= 0 ||
      av_cmp_q(stream.r_frame_rate, stream.avg_frame_rate) != 0)
    return false;
  const AVRational period{stream.avg_frame_rate.den, stream.avg_frame_rate.num};
  const std::int64_t frames = av_rescale_q_rnd(stream.duration, stream.time_base, period,
                                               static_cast<AVRounding>(AV_ROUND_NEAR_INF | AV_ROUND_PASS_MINMAX));
  return std::llabs(frames - stream.nb_frames) <= 1;
}

bool enters_at_keyframes(const std::string& path) {
  AVFormatContext* format = nullptr;
  if (avformat_open_input(&format, path.c_str(), nullptr, nullptr) < 0) return false;
  bool grid = false;
  if (avformat_find_stream_info(format, nullptr) >= 0) {
    const int video = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    grid = video >= 0 && frames_on_stated_grid(*format->streams[video]);
  }
  avformat_close_input(&format);
  return grid;
}

}  // namespace reel::ffmpeg
