#include "join.h"

#include "audio_copy.h"
#include "ffmpeg_util.h"

#include <reel/error.h>
#include <reel/log.h>
#include <reel/output_file.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/mathematics.h>
}

#include <cstring>
#include <memory>

namespace reel::ffmpeg {

namespace {

struct Input {
  AVFormatContext* format = nullptr;
  ~Input() { avformat_close_input(&format); }
};

struct Output {
  AVFormatContext* format = nullptr;
  ~Output() {
    if (format && format->pb) avio_closep(&format->pb);
    avformat_free_context(format);
  }
};

struct Packet {
  AVPacket* packet = av_packet_alloc();
  ~Packet() { av_packet_free(&packet); }
};

// Opens a part and returns its one video stream.
AVStream* open_part(Input& in, const std::string& path) {
  auto bad = [&](const std::string& why) { return BadInputError("part " + path + ": " + why, "Run its shard again."); };
  if (int rc = avformat_open_input(&in.format, path.c_str(), nullptr, nullptr); rc < 0)
    throw bad("cannot be opened (" + av_error(rc) + ")");
  if (int rc = avformat_find_stream_info(in.format, nullptr); rc < 0) throw bad("cannot be read (" + av_error(rc) + ")");
  if (in.format->nb_streams != 1 || in.format->streams[0]->codecpar->codec_type != AVMEDIA_TYPE_VIDEO)
    throw bad("is not one video stream");
  return in.format->streams[0];
}

// What must be the same in every part for a stream copy to make one valid stream.
std::string difference(const AVStream* a, const AVStream* b) {
  const AVCodecParameters *x = a->codecpar, *y = b->codecpar;
  if (x->codec_id != y->codec_id) return "another codec";
  if (x->width != y->width || x->height != y->height) return "another frame size";
  if (x->format != y->format) return "another pixel format";
  if (av_cmp_q(a->avg_frame_rate, b->avg_frame_rate) != 0) return "another frame rate";
  if (x->extradata_size != y->extradata_size ||
      (x->extradata_size > 0 && std::memcmp(x->extradata, y->extradata, x->extradata_size) != 0))
    return "other encoder headers (another encoder setting)";
  return {};
}

}  // namespace

std::optional<AudioSource> audio_from_frame(const std::string& source, std::int64_t start_frame) {
  Input in;
  if (int rc = avformat_open_input(&in.format, source.c_str(), nullptr, nullptr); rc < 0)
    throw BadInputError(source + ": cannot be opened (" + av_error(rc) + ")");
  if (int rc = avformat_find_stream_info(in.format, nullptr); rc < 0)
    throw BadInputError(source + ": cannot be read (" + av_error(rc) + ")");
  const int video = av_find_best_stream(in.format, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (video < 0) throw BadInputError(source + ": has no video stream");
  const int audio = av_find_best_stream(in.format, AVMEDIA_TYPE_AUDIO, -1, video, nullptr, 0);
  if (audio < 0) return std::nullopt;
  const AVStream* v = in.format->streams[video];
  const AVRational rate = v->avg_frame_rate.num > 0 ? v->avg_frame_rate : v->r_frame_rate;
  const double first = v->start_time == AV_NOPTS_VALUE ? 0 : static_cast<double>(v->start_time) * av_q2d(v->time_base);
  return AudioSource{source, audio, avcodec_get_name(in.format->streams[audio]->codecpar->codec_id),
                     first + static_cast<double>(start_frame) / av_q2d(rate)};
}

std::int64_t join_parts(const std::vector<JoinPart>& parts, const std::string& output,
                        const std::optional<AudioSource>& audio, bool audio_required, bool overwrite) {
  if (parts.empty()) throw BadInputError("there are no parts to join");
  OutputFile file(output, overwrite);
  const std::string temporary = file.temporary().string();
  auto io = [&](int rc, const std::string& what) {
    if (rc < 0) throw IoError(output, "cannot " + what + " " + output + " (" + av_error(rc) + ")");
  };

  Input first;
  const AVStream* model = open_part(first, parts[0].path);
  Output out;
  io(avformat_alloc_output_context2(&out.format, nullptr, nullptr, temporary.c_str()), "choose the container of");
  AVStream* video = avformat_new_stream(out.format, nullptr);
  if (!video) throw std::bad_alloc();
  io(avcodec_parameters_copy(video->codecpar, model->codecpar), "set up the stream of");
  video->codecpar->codec_tag = 0;
  video->time_base = model->time_base;
  video->avg_frame_rate = model->avg_frame_rate;
  video->sample_aspect_ratio = model->sample_aspect_ratio;
  av_dict_copy(&video->metadata, model->metadata, 0);
  const AVRational rate = model->avg_frame_rate;
  if (rate.num <= 0 || rate.den <= 0) throw BadInputError("part " + parts[0].path + ": has no frame rate");
  std::unique_ptr<AudioCopy> sound;
  if (audio && !AudioCopy::storable(audio->codec, out.format->oformat)) {
    const std::string why = output + " cannot store the source's " + audio->codec + " audio as it is";
    if (audio_required) throw BadInputError(why, "Join into .mkv, which takes every codec.");
    reel::log(LogLevel::warning, why + "; the video is joined without it (.mkv takes every codec)");
  } else if (audio) {
    sound = std::make_unique<AudioCopy>(*audio);
    sound->add_stream(out.format);
  }
  io(avio_open(&out.format->pb, temporary.c_str(), AVIO_FLAG_WRITE), "create");
  AVDictionary* options = muxer_options(out.format);
  const int header = avformat_write_header(out.format, &options);
  av_dict_free(&options);
  io(header, "write the header of");

  // Part i's timestamps move by the frames before it, at the common rate.
  const AVRational frame_period{rate.den, rate.num};
  std::int64_t written = 0;
  Packet packet;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    Input in;
    const AVStream* stream = i == 0 ? model : open_part(in, parts[i].path);
    AVFormatContext* format = i == 0 ? first.format : in.format;
    if (std::string why = difference(model, stream); !why.empty())
      throw BadInputError("part " + parts[i].path + " was made with " + why + " than " + parts[0].path,
                          "Every part must come from the same plan; run its shard again.");
    const std::int64_t origin = stream->start_time == AV_NOPTS_VALUE ? 0 : stream->start_time;
    const std::int64_t shift = av_rescale_q(written, frame_period, video->time_base);
    std::int64_t frames = 0;
    for (int rc; (rc = av_read_frame(format, packet.packet)) != AVERROR_EOF;) {
      if (rc < 0) throw BadInputError("part " + parts[i].path + ": reading failed (" + av_error(rc) + ")");
      AVPacket* p = packet.packet;
      if (frames == 0 && !(p->flags & AV_PKT_FLAG_KEY))
        throw BadInputError("part " + parts[i].path + " does not start with a keyframe", "Run its shard again.");
      auto move = [&](std::int64_t t) {
        return t == AV_NOPTS_VALUE ? t : av_rescale_q(t - origin, stream->time_base, video->time_base) + shift;
      };
      p->pts = move(p->pts);
      p->dts = move(p->dts);
      p->duration = av_rescale_q(p->duration, stream->time_base, video->time_base);
      p->stream_index = video->index;
      p->pos = -1;
      ++frames;
      io(av_interleaved_write_frame(out.format, p), "write a packet to");
      if (sound)
        sound->write_until(static_cast<double>(written + frames) * av_q2d(frame_period), output);
    }
    if (frames != parts[i].frames)
      throw BadInputError("part " + parts[i].path + " holds " + std::to_string(frames) + " frames where " +
                              std::to_string(parts[i].frames) + " are expected",
                          "Run its shard again.");
    written += frames;
  }
  if (sound) sound->write_until(static_cast<double>(written) * av_q2d(frame_period), output);
  io(av_write_trailer(out.format), "finish");
  io(avio_closep(&out.format->pb), "close");
  file.commit();
  return written;
}

}  // namespace reel::ffmpeg
