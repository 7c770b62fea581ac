#include "audio_copy.h"

#include "ffmpeg_util.h"

#include <reel/error.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/mathematics.h>
}

#include <cmath>

namespace reel::ffmpeg {

struct AudioCopy::State {
  AVFormatContext* in = nullptr;
  AVFormatContext* out = nullptr;
  AVStream* out_stream = nullptr;
  AVPacket* packet = nullptr;
  bool pending = false;  // `packet` holds one read but not yet written (it starts after the limit)
  bool ended = false;
  bool seen_first = false;  // a packet of the audio stream was read
  std::int64_t start = 0;  // the first frame's time, in the input stream's time base

  ~State() {
    av_packet_free(&packet);
    avformat_close_input(&in);
  }
};

AudioCopy::AudioCopy(const AudioSource& source) : state_(std::make_unique<State>()), source_(source) {
  auto bad = [&](const std::string& why) { return BadInputError(source.path + ": its audio " + why); };
  if (int rc = avformat_open_input(&state_->in, source.path.c_str(), nullptr, nullptr); rc < 0)
    throw bad("cannot be opened (" + av_error(rc) + ")");
  if (int rc = avformat_find_stream_info(state_->in, nullptr); rc < 0)
    throw bad("cannot be read (" + av_error(rc) + ")");
  if (source.stream < 0 || source.stream >= static_cast<int>(state_->in->nb_streams) ||
      state_->in->streams[source.stream]->codecpar->codec_type != AVMEDIA_TYPE_AUDIO)
    throw bad("stream " + std::to_string(source.stream) + " is gone");
  state_->packet = av_packet_alloc();
  if (!state_->packet) throw std::bad_alloc();
  const AVRational base = state_->in->streams[source.stream]->time_base;
  state_->start = std::llround(source.start_seconds / av_q2d(base));
}

AudioCopy::~AudioCopy() = default;

bool AudioCopy::storable(const std::string& codec, const AVOutputFormat* container) {
  const AVCodecDescriptor* descriptor = avcodec_descriptor_get_by_name(codec.c_str());
  return descriptor && container && avformat_query_codec(container, descriptor->id, FF_COMPLIANCE_NORMAL) == 1;
}

void AudioCopy::add_stream(AVFormatContext* out) {
  State& s = *state_;
  const AVStream* in = s.in->streams[source_.stream];
  s.out = out;
  s.out_stream = avformat_new_stream(out, nullptr);
  if (!s.out_stream) throw std::bad_alloc();
  if (avcodec_parameters_copy(s.out_stream->codecpar, in->codecpar) < 0) throw std::bad_alloc();
  s.out_stream->codecpar->codec_tag = 0;  // the output container picks its own tag
  s.out_stream->time_base = in->time_base;
}

void AudioCopy::write_until(double seconds, const std::string& target) {
  State& s = *state_;
  const AVStream* in = s.in->streams[source_.stream];
  const std::int64_t limit = s.start + std::llround(seconds / av_q2d(in->time_base));
  AVPacket* p = s.packet;
  for (;;) {
    if (!s.pending) {
      if (s.ended) return;
      int rc = av_read_frame(s.in, p);
      if (rc == AVERROR_EOF) {
        s.ended = true;
        return;
      }
      if (rc < 0) throw BadInputError(source_.path + ": reading its audio failed (" + av_error(rc) + ")");
      if (p->stream_index != source_.stream) {
        av_packet_unref(p);
        continue;
      }
      if (p->pts == AV_NOPTS_VALUE) p->pts = p->dts;
      s.pending = true;
    }
    // Packets from before the first frame are left out, so the sound stays in step with the
    // pictures (a packet straddling the cut would be shifted to time 0 by the muxer). The one
    // exception is the stream's first packet when the clip starts inside it: codec priming (AAC
    // starts a packet early, at a negative time), which a decoder needs.
    if (p->pts == AV_NOPTS_VALUE) {  // cannot be placed
      av_packet_unref(p);
      s.pending = false;
      continue;
    }
    const bool first = !s.seen_first;
    s.seen_first = true;
    const bool priming = first && p->pts < s.start && p->pts + p->duration >= s.start;
    if (p->pts < s.start && !priming) {
      av_packet_unref(p);
      s.pending = false;
      continue;
    }
    if (p->pts >= limit) return;  // after the video written so far: kept for the next call
    p->pts -= s.start;
    if (p->dts != AV_NOPTS_VALUE) p->dts -= s.start;
    p->stream_index = s.out_stream->index;
    p->pos = -1;
    av_packet_rescale_ts(p, in->time_base, s.out_stream->time_base);
    s.pending = false;
    if (int rc = av_interleaved_write_frame(s.out, p); rc < 0)  // takes the packet's data
      throw IoError(target, "could not write the audio of " + target + ": " + av_error(rc));
  }
}

}  // namespace reel::ffmpeg
