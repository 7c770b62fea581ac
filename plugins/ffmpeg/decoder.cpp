#include "decoder.h"

#include "ffmpeg_util.h"
#include "frame_grid.h"

#include <reel/error.h>

#include <ATen/ATen.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/mathematics.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace reel::ffmpeg {

struct Decoder::State {
  AVFormatContext* format = nullptr;
  AVCodecContext* codec = nullptr;
  SwsContext* scaler = nullptr;
  AVPacket* packet = nullptr;
  AVFrame* frame = nullptr;
  int stream = -1;
  bool flushing = false, ended = false;
  int scaler_format = -1, scaler_width = 0, scaler_height = 0;

  ~State() {
    sws_freeContext(scaler);
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&codec);
    avformat_close_input(&format);
  }
};

namespace {

int rotation_of(const AVStream* stream) {
  const std::uint8_t* matrix = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, nullptr);
  if (!matrix) return 0;
  // av_display_rotation_get: counter-clockwise degrees; we want clockwise in 0..359.
  double ccw = av_display_rotation_get(reinterpret_cast<const std::int32_t*>(matrix));
  if (std::isnan(ccw)) return 0;
  int clockwise = static_cast<int>(std::lround(-ccw)) % 360;
  if (clockwise < 0) clockwise += 360;
  return (clockwise + 45) / 90 * 90 % 360;
}

}  // namespace

Decoder::Decoder(const std::string& path, int out_width, int out_height)
    : state_(std::make_unique<State>()), path_(path), out_width_(out_width), out_height_(out_height) {
  open();
}

void Decoder::open() {
  const std::string& path = path_;
  auto bad = [&](const std::string& why, std::string hint = {}) {
    return BadInputError(path + ": " + why, std::move(hint));
  };
  if (int rc = avformat_open_input(&state_->format, path.c_str(), nullptr, nullptr); rc < 0)
    throw bad(
        rc == AVERROR(ENOENT) ? "no such file" : "cannot be read as video or image (" + av_error(rc) + ")",
        rc == AVERROR(ENOENT) ? "Check the path." : "Check that the file is complete and in a format FFmpeg reads.");
  if (int rc = avformat_find_stream_info(state_->format, nullptr); rc < 0)
    throw bad("its streams cannot be read (" + av_error(rc) + ")", "The file may be truncated or corrupt.");
  const AVCodec* codec = nullptr;
  state_->stream = av_find_best_stream(state_->format, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (state_->stream < 0 || !codec) throw bad("it has no video stream that FFmpeg can decode");
  AVStream* stream = state_->format->streams[state_->stream];
  state_->codec = avcodec_alloc_context3(codec);
  state_->packet = av_packet_alloc();
  state_->frame = av_frame_alloc();
  if (!state_->codec || !state_->packet || !state_->frame) throw std::bad_alloc();
  avcodec_parameters_to_context(state_->codec, stream->codecpar);
  // Threads as the ffmpeg tool chooses them ("auto": one per core, frame and slice threading as
  // the codec supports); libavcodec's own default is one thread.
  state_->codec->thread_count = 0;
  if (int rc = avcodec_open2(state_->codec, codec, nullptr); rc < 0)
    throw bad("its decoder failed to open (" + av_error(rc) + ")");
  if (state_->codec->width <= 0 || state_->codec->height <= 0) throw bad("its video has no size");

  info_.rotation = rotation_of(stream);
  bool sideways = info_.rotation == 90 || info_.rotation == 270;
  info_.width = sideways ? state_->codec->height : state_->codec->width;
  info_.height = sideways ? state_->codec->width : state_->codec->height;
  AVRational rate = stream->avg_frame_rate.num > 0 ? stream->avg_frame_rate : stream->r_frame_rate;
  info_.fps = rate.num > 0 && rate.den > 0 ? Rational{rate.num, rate.den}.reduced() : Rational{25, 1};
  if (stream->nb_frames > 0) info_.frame_count = stream->nb_frames;
  info_.time_base = Rational{stream->time_base.num, stream->time_base.den};
  if (stream->start_time != AV_NOPTS_VALUE) info_.start_seconds = static_cast<double>(stream->start_time) * av_q2d(stream->time_base);
  info_.audio_stream = av_find_best_stream(state_->format, AVMEDIA_TYPE_AUDIO, -1, state_->stream, nullptr, 0);
  if (info_.audio_stream >= 0)
    info_.audio_codec = avcodec_get_name(state_->format->streams[info_.audio_stream]->codecpar->codec_id);
  else
    info_.audio_stream = -1;
  info_.codec = codec->name;
  const char* pix = av_get_pix_fmt_name(state_->codec->pix_fmt);
  info_.pix_fmt = pix ? pix : "unknown";
  if (out_width_ <= 0) out_width_ = info_.width;
  if (out_height_ <= 0) out_height_ = info_.height;
}

Decoder::~Decoder() = default;

std::int64_t Decoder::ticks(std::int64_t count, Rational rate) const {
  const AVRational base{static_cast<int>(info_.time_base.num), static_cast<int>(info_.time_base.den)};
  const AVRational period{static_cast<int>(rate.den), static_cast<int>(rate.num)};
  return av_rescale_q_rnd(count, period, base, static_cast<AVRounding>(AV_ROUND_NEAR_INF | AV_ROUND_PASS_MINMAX));
}

bool Decoder::receive() {
  State& s = *state_;
  while (!s.ended) {
    int rc = avcodec_receive_frame(s.codec, s.frame);
    if (rc == 0) break;
    if (rc == AVERROR_EOF) {
      s.ended = true;
      return false;
    }
    if (rc != AVERROR(EAGAIN))
      throw BadInputError(path_ + ": frame " + std::to_string(decoded_) + " cannot be decoded (" + av_error(rc) + ")",
                          "The file is corrupt.");
    if (s.flushing) continue;
    rc = av_read_frame(s.format, s.packet);
    if (rc == AVERROR_EOF) {
      s.flushing = true;
      avcodec_send_packet(s.codec, nullptr);
      continue;
    }
    if (rc < 0)
      throw BadInputError(
          path_ + ": reading failed after " + std::to_string(decoded_) + " frames (" + av_error(rc) + ")",
          "The file may be truncated or corrupt.");
    if (s.packet->stream_index == s.stream) {
      rc = avcodec_send_packet(s.codec, s.packet);
      if (rc < 0 && rc != AVERROR(EAGAIN) && rc != AVERROR_INVALIDDATA)
        throw BadInputError(path_ + ": the data after frame " + std::to_string(decoded_) + " is corrupt (" +
                            av_error(rc) + ")");
    }
    av_packet_unref(s.packet);
  }
  return !s.ended;
}

std::optional<Decoder::Picture> Decoder::next() {
  if (held_) {
    held_ = false;
    return convert();
  }
  if (!receive()) return std::nullopt;
  return convert();
}

std::int64_t Decoder::frame_index(std::int64_t pts) const {
  const AVRational base{static_cast<int>(info_.time_base.num), static_cast<int>(info_.time_base.den)};
  const AVRational period{static_cast<int>(info_.fps.den), static_cast<int>(info_.fps.num)};
  return av_rescale_q_rnd(pts, base, period, static_cast<AVRounding>(AV_ROUND_NEAR_INF | AV_ROUND_PASS_MINMAX));
}

bool Decoder::seek_near(std::int64_t index) {
  State& s = *state_;
  AVStream* stream = s.format->streams[s.stream];
  // Only where a timestamp says which frame it is (frame_grid.h). MKV and WebM headers state no
  // frame count, and a variable-rate MKV has frames on a grid with gaps in it: those are decoded
  // from the start.
  if (!frames_on_stated_grid(*stream)) return false;
  const std::int64_t start = stream->start_time == AV_NOPTS_VALUE ? 0 : stream->start_time;
  if (av_seek_frame(s.format, s.stream, start + ticks(index, info_.fps), AVSEEK_FLAG_BACKWARD) < 0) return false;
  avcodec_flush_buffers(s.codec);
  s.flushing = s.ended = false;
  while (receive()) {
    const std::int64_t pts = s.frame->best_effort_timestamp;
    if (pts == AV_NOPTS_VALUE) return false;
    const std::int64_t at = frame_index(pts - start);
    // Off the grid (not a constant rate after all), or past the frame (the seek overshot): only
    // a decode from the start can say which frame this is.
    if (ticks(at, info_.fps) != pts - start || at > index) return false;
    if (at == index) {
      held_ = true;
      decoded_ = index;
      return true;
    }
    av_frame_unref(s.frame);
  }
  return false;
}

bool Decoder::skip_to(std::int64_t index) {
  if (index <= decoded_) return true;
  if (seek_near(index)) return true;
  // From the start again, counting frames as they come.
  state_ = std::make_unique<State>();
  held_ = false;
  decoded_ = 0;
  open();
  for (; decoded_ < index; ++decoded_) {
    if (!receive()) return false;
    av_frame_unref(state_->frame);
  }
  return true;
}

Decoder::Picture Decoder::convert() {
  State& s = *state_;

  // Convert to packed RGB at the output size (before rotation: the scaler sees stored pixels).
  bool sideways = info_.rotation == 90 || info_.rotation == 270;
  int scaled_w = sideways ? out_height_ : out_width_, scaled_h = sideways ? out_width_ : out_height_;
  if (!s.scaler || s.scaler_format != s.frame->format || s.scaler_width != s.frame->width ||
      s.scaler_height != s.frame->height) {
    sws_freeContext(s.scaler);
    s.scaler = sws_getContext(s.frame->width, s.frame->height, static_cast<AVPixelFormat>(s.frame->format), scaled_w,
                              scaled_h, AV_PIX_FMT_GBRP, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr,
                              nullptr, nullptr);
    if (!s.scaler) throw BadInputError(path_ + ": its pixel format " + info_.pix_fmt + " cannot be converted to RGB");
    s.scaler_format = s.frame->format, s.scaler_width = s.frame->width, s.scaler_height = s.frame->height;
  }
  // Planar RGB out (GBRP): libswscale writes the CHW tensor's planes directly, no reordering copy.
  at::Tensor image = at::empty({3, scaled_h, scaled_w}, at::kByte);
  std::uint8_t* r = image.data_ptr<std::uint8_t>();
  const std::size_t plane = static_cast<std::size_t>(scaled_w) * scaled_h;
  std::uint8_t* dst[3] = {r + plane, r + 2 * plane, r};  // green, blue, red
  int dst_stride[3] = {scaled_w, scaled_w, scaled_w};
  sws_scale(s.scaler, s.frame->data, s.frame->linesize, 0, s.frame->height, dst, dst_stride);
  // A rotated clip needs its pixels moved; that copy is the rotation itself.
  if (info_.rotation != 0) image = at::rot90(image, -info_.rotation / 90, {1, 2}).contiguous();  // clockwise
  Picture picture;
  picture.image = image;
  AVStream* stream = s.format->streams[s.stream];
  const std::int64_t start = stream->start_time == AV_NOPTS_VALUE ? 0 : stream->start_time;
  std::int64_t pts = s.frame->best_effort_timestamp;
  picture.pts = pts == AV_NOPTS_VALUE ? ticks(decoded_, info_.fps) : pts - start;
#if LIBAVUTIL_VERSION_MAJOR >= 58
  picture.duration = std::max<std::int64_t>(0, s.frame->duration);
#else
  picture.duration = std::max<std::int64_t>(0, s.frame->pkt_duration);
#endif
  av_frame_unref(s.frame);
  ++decoded_;
  return picture;
}

}  // namespace reel::ffmpeg
