// encoder.ffmpeg: encodes frames in process with libavcodec/libavformat (no ffmpeg subprocess).
// The file is written under a temporary name and renamed only after the trailer is written; a
// failed or cancelled run leaves nothing behind.
#include "audio_copy.h"
#include "ffmpeg_util.h"
#include "nodes.h"

#include <reel/reel.h>

#include <ATen/ATen.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <cerrno>
#include <filesystem>
#include <memory>
#include <regex>

namespace reel::ffmpeg {
namespace {

struct Codec {
  const char* name;        // the param value
  const char* encoder;     // libavcodec encoder name
  AVPixelFormat pix_fmt;   // default pixel format
  const char* crf_option;  // private option for quality, or nullptr
};

const Codec kCodecs[] = {
    {"h264", "libx264", AV_PIX_FMT_YUV420P, "crf"},
    {"h265", "libx265", AV_PIX_FMT_YUV420P, "crf"},
    {"vp9", "libvpx-vp9", AV_PIX_FMT_YUV420P, "crf"},
    {"av1", "libsvtav1", AV_PIX_FMT_YUV420P, "crf"},
    {"prores", "prores_ks", AV_PIX_FMT_YUV422P10LE, nullptr},
    {"ffv1", "ffv1", AV_PIX_FMT_0RGB32, nullptr},  // packed RGB (bgr0): lossless and bit-exact
    {"png", "png", AV_PIX_FMT_RGB24, nullptr},     // one file per frame, no container
};

// "frames/%05d.png": exactly one integer conversion, so the user's text is a safe format.
bool is_sequence_pattern(const std::string& path) {
  static const std::regex pattern(R"([^%]*%0?[0-9]*d[^%]*)");
  return std::regex_match(path, pattern);
}

bool supports(const AVCodec* encoder, AVPixelFormat format) {
  if (!encoder->pix_fmts) return true;  // the encoder does not say
  for (const AVPixelFormat* f = encoder->pix_fmts; *f != AV_PIX_FMT_NONE; ++f)
    if (*f == format) return true;
  return false;
}

// Subsampled chroma needs even dimensions.
bool needs_even_size(AVPixelFormat format) {
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(format);
  return d && (d->log2_chroma_w > 0 || d->log2_chroma_h > 0);
}

class Encoder : public reel::Node {
 public:
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig& config) override {
    const reel::Params& p = config.params;
    in_ = config.inputs.at(0);
    if (in_.channels != 3) throw reel::BadInputError("encoder.ffmpeg takes RGB frames (3 channels)");
    if (in_.fps.num <= 0) throw reel::BadInputError("the input stream has no frame rate");
    for (const Codec& c : kCodecs)
      if (p.string("codec") == c.name) codec_ = &c;
    pix_fmt_ = codec_->pix_fmt;
    if (!p.string("pix_fmt").empty()) {
      pix_fmt_ = av_get_pix_fmt(p.string("pix_fmt").c_str());
      if (pix_fmt_ == AV_PIX_FMT_NONE)
        throw reel::InvalidParamError("pix_fmt", "'" + p.string("pix_fmt") + "' is not a pixel format FFmpeg knows",
                                      "Try yuv420p, yuv444p or leave it empty for the codec's default.");
    }
    width_ = in_.width, height_ = in_.height;
    if (needs_even_size(pix_fmt_) && (width_ % 2 || height_ % 2)) {
      if (p.string("odd_size") == "error")
        throw reel::InvalidParamError("odd_size",
                                      "the frames are " + std::to_string(width_) + "x" + std::to_string(height_) +
                                          ", but " + av_get_pix_fmt_name(pix_fmt_) + " needs even dimensions",
                                      "Set odd_size to pad or crop, or resize to an even size.");
      bool pad = p.string("odd_size") == "pad";
      width_ += pad ? width_ % 2 : -(width_ % 2);
      height_ += pad ? height_ % 2 : -(height_ % 2);
    }
    crf_ = p.integer("crf");
    bitrate_ = p.string("bitrate");
    preset_ = p.string("preset");
    threads_ = p.integer("threads");
    overwrite_ = config.overwrite_outputs || p.boolean("overwrite");
    frames_limit_ = p.integer("frames");
    const AVCodec* encoder = avcodec_find_encoder_by_name(codec_->encoder);
    if (!encoder)
      throw reel::Error(reel::ErrorKind::plugin, std::string("this FFmpeg has no ") + codec_->encoder + " encoder");
    if (!supports(encoder, pix_fmt_)) {
      std::string names;
      for (const AVPixelFormat* f = encoder->pix_fmts; f && *f != AV_PIX_FMT_NONE; ++f)
        names += std::string(names.empty() ? "" : ", ") + av_get_pix_fmt_name(*f);
      throw reel::InvalidParamError("pix_fmt",
                                    std::string(codec_->encoder) + " cannot encode " + av_get_pix_fmt_name(pix_fmt_),
                                    "It takes: " + names + ".");
    }
    const std::string path = p.string("path");
    audio_mode_ = p.string("audio");
    if (audio_mode_ == "copy" && !in_.audio)
      throw reel::InvalidParamError("audio", "the frames arriving here carry no audio to copy",
                                    "Audio comes from source.video and is kept by nodes whose frames span the same "
                                    "time (upscalers, interpolators); set audio to auto or none.");
    if (std::string(codec_->name) == "png") {
      configure_images(path, config.dry_run);
      if (in_.audio && audio_mode_ != "none") refuse_audio("PNG images carry no sound");
      return {};
    }
    const AVOutputFormat* format = av_guess_format(nullptr, path.c_str(), nullptr);
    if (!format || (format->flags & AVFMT_NOFILE))
      throw reel::InvalidParamError("path", "cannot tell the container from '" + path + "'",
                                    "End the path with .mp4, .mov, .mkv or .webm (or use codec png for images).");
    if (avformat_query_codec(format, encoder->id, FF_COMPLIANCE_NORMAL) != 1)
      throw reel::InvalidParamError(
          "codec",
          std::string(codec_->name) + " cannot be stored in a " + std::filesystem::path(path).extension().string() +
              " file",
          "Use .mkv, which takes every codec here, or another codec.");
    if (in_.audio && audio_mode_ != "none") {
      if (AudioCopy::storable(in_.audio->codec, format))
        audio_ = in_.audio;
      else
        refuse_audio("a " + std::filesystem::path(path).extension().string() + " file cannot store " +
                     in_.audio->codec + " audio as it is; .mkv takes every codec");
    }
    // Fails now, before anything loads, on a missing folder, a folder in the way or an existing
    // file. A plan only describes the run: its folder may be made later.
    if (!config.dry_run) output_ = std::make_unique<reel::OutputFile>(path, overwrite_);
    return {};
  }

  std::vector<reel::MemoryEstimate> estimate() const override {
    return {{"cpu", 0, static_cast<std::uint64_t>(width_) * height_ * 3 * 8}};  // frame copies + encoder lookahead
  }

  void load() override {
    const AVCodec* encoder = avcodec_find_encoder_by_name(codec_->encoder);
    codec_context_ = avcodec_alloc_context3(encoder);
    if (!codec_context_) throw std::bad_alloc();
    if (!images_) {
      // The muxer re-opens its own path for +faststart, so it must know the temporary name.
      check(avformat_alloc_output_context2(&format_, nullptr, nullptr, output_->temporary().c_str()),
            "choose the container");
      stream_ = avformat_new_stream(format_, nullptr);
      if (!stream_) throw std::bad_alloc();
    }
    codec_context_->width = width_;
    codec_context_->height = height_;
    codec_context_->pix_fmt = pix_fmt_;
    codec_context_->time_base = AVRational{static_cast<int>(in_.fps.den), static_cast<int>(in_.fps.num)};
    codec_context_->framerate = AVRational{static_cast<int>(in_.fps.num), static_cast<int>(in_.fps.den)};
    // reel's frames have square pixels: said in the bitstream (H.264's VUI) and the container, as
    // the ffmpeg tool does for a square-pixel input.
    codec_context_->sample_aspect_ratio = AVRational{1, 1};
    set_colour_tags();
    if (format_ && (format_->oformat->flags & AVFMT_GLOBALHEADER)) codec_context_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (!bitrate_.empty()) {
      std::int64_t bits = 0;
      if (av_opt_set(codec_context_, "b", bitrate_.c_str(), 0) < 0 || av_opt_get_int(codec_context_, "b", 0, &bits) < 0)
        throw reel::InvalidParamError("bitrate", "'" + bitrate_ + "' is not a bitrate", "For example 4M or 2500k.");
    } else if (crf_ >= 0 && codec_->crf_option) {
      av_opt_set_int(codec_context_->priv_data, codec_->crf_option, crf_, 0);
      if (std::string(codec_->name) == "vp9") codec_context_->bit_rate = 0;  // constant quality
    }
    if (!preset_.empty() && av_opt_set(codec_context_->priv_data, "preset", preset_.c_str(), 0) < 0)
      throw reel::InvalidParamError("preset",
                                    "the " + std::string(codec_->encoder) + " encoder has no preset '" + preset_ + "'");
    // 0 is "auto", what the ffmpeg tool passes unless told otherwise (libavcodec's own default is
    // one thread); each codec then threads as it does under ffmpeg (x264: 1.5 per core).
    codec_context_->thread_count = static_cast<int>(threads_);
    check(avcodec_open2(codec_context_, encoder, nullptr), "open the encoder");
    if (!images_) open_container();
    set_up_conversion();
  }

  void open_container() {
    const std::string path = output_->temporary().string();
    check(avcodec_parameters_from_context(stream_->codecpar, codec_context_), "set up the stream");
    stream_->time_base = codec_context_->time_base;
    stream_->avg_frame_rate = codec_context_->framerate;
    stream_->sample_aspect_ratio = codec_context_->sample_aspect_ratio;
    // The stream's encoder tag, as the ffmpeg tool writes it ("Lavc59.37.100 libx264").
    av_dict_set(&stream_->metadata, "encoder", (std::string(LIBAVCODEC_IDENT " ") + codec_context_->codec->name).c_str(), 0);
    if (audio_) {
      audio_copy_ = std::make_unique<AudioCopy>(*audio_);
      audio_copy_->add_stream(format_);
    }
    if (int rc = avio_open(&format_->pb, path.c_str(), AVIO_FLAG_WRITE); rc < 0)
      throw reel::IoError(path, "cannot create " + path + ": " + av_error(rc));
    AVDictionary* options = muxer_options(format_);
    int rc = avformat_write_header(format_, &options);
    av_dict_free(&options);
    check_io(rc, "write the header");
  }

  void set_up_conversion() {
    // Planar RGB in: libswscale reads the CHW tensor's planes as they are, no reordering copy.
    scaler_ = sws_getContext(width_, height_, AV_PIX_FMT_GBRP, width_, height_, pix_fmt_,
                             SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr);
    frame_ = av_frame_alloc();
    packet_ = av_packet_alloc();
    if (!scaler_ || !frame_ || !packet_) throw std::bad_alloc();
    // RGB in is full range; YUV out uses the matrix and range the stream is tagged with.
    const int* matrix = sws_getCoefficients(hd() ? SWS_CS_ITU709 : SWS_CS_ITU601);
    sws_setColorspaceDetails(scaler_, matrix, 1, matrix, codec_context_->color_range == AVCOL_RANGE_JPEG ? 1 : 0, 0,
                             1 << 16, 1 << 16);
    frame_->format = pix_fmt_;
    frame_->width = width_;
    frame_->height = height_;
    check(av_frame_get_buffer(frame_, 0), "allocate a frame");
  }

  void process(const reel::Frame& frame, int, reel::Emitter&) override {
    // libswscale reads width x height x 3 bytes: checked here too, not only by the executor.
    if (std::string wrong = reel::frame_mismatch(frame.image, in_); !wrong.empty())
      throw reel::BadInputError("frame " + std::to_string(frame.index) + " is " + wrong);
    if (frames_limit_ >= 0 && frame.index >= frames_limit_) return;
    at::Tensor chw = frame.image.to(at::kCPU).contiguous();  // no copy for the usual contiguous CPU frame
    if (width_ != in_.width || height_ != in_.height) {
      // odd_size pad repeats the last row/column, crop drops it: index with clamped positions
      // (a copy, unavoidable: the frame changes size).
      auto rows = at::arange(height_, at::kLong).clamp_max(in_.height - 1);
      auto columns = at::arange(width_, at::kLong).clamp_max(in_.width - 1);
      chw = chw.index_select(1, rows).index_select(2, columns).contiguous();
    }
    check(av_frame_make_writable(frame_), "reuse a frame");
    const std::uint8_t* r = chw.data_ptr<std::uint8_t>();
    const std::size_t plane = static_cast<std::size_t>(width_) * height_;
    const std::uint8_t* src[3] = {r + plane, r + 2 * plane, r};  // GBRP: green, blue, red planes
    int src_stride[3] = {width_, width_, width_};
    sws_scale(scaler_, src, src_stride, 0, height_, frame_->data, frame_->linesize);
    frame_->pts = frame.index;
    encode(frame_);
    ++frames_encoded_;
    // The sound up to the end of this frame, so the muxer interleaves as it goes (its buffer stays
    // a few frames long however long the video).
    if (audio_copy_) audio_copy_->write_until(video_seconds(), output_->target().string());
  }

  // Where the video written so far ends, in seconds from its first frame.
  double video_seconds() const { return static_cast<double>(frames_encoded_) * in_.fps.den / in_.fps.num; }

  // The frames' audio cannot go into this output: an error when the graph asked for it, else a
  // warning, never silence.
  void refuse_audio(const std::string& why) {
    if (audio_mode_ == "copy") throw reel::InvalidParamError("audio", "the audio cannot be copied: " + why);
    audio_note_ = "dropped (" + why + ")";
    reel::log(reel::LogLevel::warning, "encoder.ffmpeg: the " + in_.audio->codec + " audio of " + in_.audio->path +
                                           " is not copied: " + why + "; set audio to none to silence this");
  }

  void finish(reel::Emitter&) override {
    encode(nullptr);
    if (images_) {
      // All or nothing: if one image cannot be put in place, take back those already moved.
      try {
        for (auto& image : images_written_) image->commit();
      } catch (...) {
        for (auto& image : images_written_) image->withdraw();
        throw;
      }
      committed_ = true;
      return;
    }
    if (audio_copy_) {
      audio_copy_->write_until(video_seconds(), output_->target().string());
      audio_note_ = in_.audio->codec + " copied from " + in_.audio->path;
    }
    check_io(av_write_trailer(format_), "write the trailer");
    check_io(avio_closep(&format_->pb), "close the file");
    output_->commit();
    committed_ = true;
  }

  std::vector<std::pair<std::string, std::string>> facts() const override {
    if (audio_note_.empty()) return {};
    return {{"audio", audio_note_}};
  }

  std::vector<std::string> written_files() const override {
    std::vector<std::string> files;
    if (!committed_) return files;
    if (output_) files.push_back(output_->target().string());
    for (const auto& image : images_written_) files.push_back(image->target().string());
    return files;
  }

  void discard_outputs() override {
    if (format_ && format_->pb) avio_closep(&format_->pb);
    if (output_) output_->discard();
    for (auto& image : images_written_) image->discard();
  }

  void unload() override {
    if (format_ && format_->pb) avio_closep(&format_->pb);
    avformat_free_context(format_);
    format_ = nullptr;
    avcodec_free_context(&codec_context_);
    sws_freeContext(scaler_);
    scaler_ = nullptr;
    av_frame_free(&frame_);
    av_packet_free(&packet_);
    audio_copy_.reset();
  }

  ~Encoder() override {
    unload();
    if (output_) output_->discard();
  }

 private:
  bool hd() const { return height_ >= 720; }

  void set_colour_tags() {
    const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(pix_fmt_);
    bool rgb = d && (d->flags & AV_PIX_FMT_FLAG_RGB);
    codec_context_->color_primaries = hd() ? AVCOL_PRI_BT709 : AVCOL_PRI_SMPTE170M;
    codec_context_->color_trc = hd() ? AVCOL_TRC_BT709 : AVCOL_TRC_SMPTE170M;
    codec_context_->colorspace = rgb ? AVCOL_SPC_RGB : (hd() ? AVCOL_SPC_BT709 : AVCOL_SPC_SMPTE170M);
    codec_context_->color_range = rgb ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
  }

  void encode(AVFrame* frame) {
    check(avcodec_send_frame(codec_context_, frame), "encode a frame");
    for (;;) {
      int rc = avcodec_receive_packet(codec_context_, packet_);
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check(rc, "encode a frame");
      if (images_) {
        write_image(packet_);
        av_packet_unref(packet_);
        continue;
      }
      av_packet_rescale_ts(packet_, codec_context_->time_base, stream_->time_base);
      packet_->stream_index = stream_->index;
      check_io(av_interleaved_write_frame(format_, packet_), "write a packet");
    }
  }

  // PNG: a single file for a one-frame stream, else a numbered sequence (0-based frame index).
  void configure_images(const std::string& path, bool dry_run) {
    images_ = true;
    pattern_ = path;
    single_path_ = path;
    if (!is_sequence_pattern(path)) {
      if (in_.frame_count != 1)
        throw reel::InvalidParamError("path", "a PNG sequence needs a numbered path such as frames/%05d.png",
                                      "Put one %d (or %05d) in the file name.");
      pattern_.clear();
    }
    // Fails now, before anything loads, on a missing folder or an existing first file.
    if (!dry_run) reel::OutputFile probe(image_path(0), overwrite_);
  }

  std::string image_path(std::int64_t index) const {
    if (pattern_.empty()) return single_path_;
    char name[4096];
    std::snprintf(name, sizeof name, pattern_.c_str(), static_cast<int>(index));
    return name;
  }

  void write_image(const AVPacket* packet) {
    auto file =
        std::make_unique<reel::OutputFile>(image_path(static_cast<std::int64_t>(images_written_.size())), overwrite_);
    std::FILE* out = std::fopen(file->temporary().c_str(), "wb");
    bool ok = out && std::fwrite(packet->data, 1, packet->size, out) == static_cast<std::size_t>(packet->size);
    if (out && std::fclose(out) != 0) ok = false;
    images_written_.push_back(std::move(file));
    if (!ok)
      throw reel::IoError(images_written_.back()->temporary().string(),
                          "could not write " + images_written_.back()->target().string());
  }

  void check(int rc, const char* what) const {
    if (rc == AVERROR(ENOMEM)) throw reel::OutOfMemoryError(std::string("FFmpeg ran out of memory trying to ") + what);
    if (rc < 0)
      throw reel::Error(reel::ErrorKind::internal, std::string("FFmpeg could not ") + what + ": " + av_error(rc));
  }

  void check_io(int rc, const char* what) const {
    if (rc < 0)
      throw reel::IoError(output_->target().string(),
                          std::string("could not ") + what + " of " + output_->target().string() + ": " + av_error(rc));
  }

  reel::StreamDesc in_;
  const Codec* codec_ = &kCodecs[0];
  AVPixelFormat pix_fmt_ = AV_PIX_FMT_YUV420P;
  int width_ = 0, height_ = 0;
  std::int64_t crf_ = -1;
  std::int64_t threads_ = 0;
  std::string bitrate_, preset_;
  std::unique_ptr<reel::OutputFile> output_;
  bool overwrite_ = false;
  bool committed_ = false;  // finish put every output in place
  std::string audio_mode_ = "auto";    // the audio param: auto, copy, none
  std::optional<reel::AudioSource> audio_;  // what will be copied
  std::string audio_note_;             // for facts(): copied or why dropped
  std::unique_ptr<AudioCopy> audio_copy_;
  std::int64_t frames_encoded_ = 0;
  std::int64_t frames_limit_ = -1;  // the `frames` param: frames with a higher index are dropped
  bool images_ = false;
  std::string pattern_, single_path_;
  std::vector<std::unique_ptr<reel::OutputFile>> images_written_;

  AVFormatContext* format_ = nullptr;
  AVCodecContext* codec_context_ = nullptr;
  AVStream* stream_ = nullptr;
  SwsContext* scaler_ = nullptr;
  AVFrame* frame_ = nullptr;
  AVPacket* packet_ = nullptr;
};

}  // namespace

void register_encoder(reel::Registry& registry) {
  using reel::ParamSpec;
  registry.add({
      .name = "encoder.ffmpeg",
      .description = "Encode frames to a video file with FFmpeg (H.264 MP4 by default)",
      .params =
          {ParamSpec::string(
               "path", "",
               "Output file; the extension picks the container (.mp4 .mov .mkv .webm); png: a file or frames/%05d.png")
               .make_required(),
           ParamSpec::choice("codec", "h264", {"h264", "h265", "vp9", "av1", "prores", "ffv1", "png"},
                             "Video codec (png: images)"),
           ParamSpec::integer("crf", -1, "Constant quality (lower is better); -1: the codec's default").range(-1, 63),
           ParamSpec::string("bitrate", "", "Target bitrate such as 4M; overrides crf when set"),
           ParamSpec::string("preset", "", "Encoder speed preset (e.g. medium, veryfast for h264)"),
           ParamSpec::integer("threads", 0, "Encoder threads; 0: automatic, as the ffmpeg tool chooses")
               .range(0, 256),
           ParamSpec::string("pix_fmt", "",
                             "Pixel format; empty: yuv420p (prores: yuv422p10le, ffv1: bgr0, png: rgb24)"),
           ParamSpec::choice("odd_size", "error", {"error", "pad", "crop"},
                             "What to do with odd dimensions when the pixel format needs even ones"),
           ParamSpec::boolean("overwrite", false, "Replace an existing output file"),
           ParamSpec::integer("frames", -1, "Write only the first N frames (those after arrive and are dropped); "
                                            "-1: all")
               .range(-1, std::nullopt),
           ParamSpec::choice("audio", "auto", {"auto", "copy", "none"},
                             "The source's audio, when the frames still span its time: auto copies it when the "
                             "container can store it (else warns), copy requires it, none drops it")},
      .inputs = {{"in", reel::PortKind::video, "RGB frames"}},
      .frame_dependence = reel::FrameDependence::same_frame,
      .example_params = {{"path", "conformance.mp4"}, {"overwrite", true}},
      .create = [] { return std::make_unique<Encoder>(); },
  });
}

}  // namespace reel::ffmpeg
