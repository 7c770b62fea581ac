#include "scaler.h"

#include <reel/error.h>

#include <ATen/ATen.h>

extern "C" {
#include <libswscale/swscale.h>
}

namespace reel::sr {

int filter_flags(const std::string& filter) {
  int base = filter == "nearest"    ? SWS_POINT
             : filter == "bilinear" ? SWS_BILINEAR
             : filter == "area"     ? SWS_AREA
             : filter == "lanczos"  ? SWS_LANCZOS
                                    : SWS_BICUBIC;
  return base | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT;
}

Scaler::~Scaler() { release(); }

void Scaler::release() noexcept {
  sws_freeContext(context_);
  context_ = nullptr;
}

at::Tensor Scaler::resize(const at::Tensor& image, int width, int height) {
  at::Tensor src = image.contiguous();
  const int in_h = static_cast<int>(src.size(0)), in_w = static_cast<int>(src.size(1));
  const int channels = static_cast<int>(src.size(2));
  const AVPixelFormat format = channels == 1 ? AV_PIX_FMT_GRAY8 : AV_PIX_FMT_RGB24;
  context_ = sws_getCachedContext(context_, in_w, in_h, format, width, height, format, flags_, nullptr, nullptr, nullptr);
  if (!context_) throw Error(ErrorKind::internal, "libswscale could not set up this resize");
  at::Tensor dst = at::empty({height, width, channels}, at::kByte);
  const std::uint8_t* src_planes[1] = {src.data_ptr<std::uint8_t>()};
  int src_stride[1] = {in_w * channels};
  std::uint8_t* dst_planes[1] = {dst.data_ptr<std::uint8_t>()};
  int dst_stride[1] = {width * channels};
  sws_scale(context_, src_planes, src_stride, 0, in_h, dst_planes, dst_stride);
  return dst;
}

at::Tensor Scaler::resize_planar(const at::Tensor& image, int width, int height) {
  at::Tensor src = image.contiguous();
  const int channels = static_cast<int>(src.size(0));
  const int in_h = static_cast<int>(src.size(1)), in_w = static_cast<int>(src.size(2));
  const AVPixelFormat format = channels == 1 ? AV_PIX_FMT_GRAY8 : AV_PIX_FMT_GBRP;
  context_ = sws_getCachedContext(context_, in_w, in_h, format, width, height, format, flags_, nullptr, nullptr, nullptr);
  if (!context_) throw Error(ErrorKind::internal, "libswscale could not set up this resize");
  at::Tensor dst = at::empty({channels, height, width}, at::kByte);
  const std::uint8_t* s = src.data_ptr<std::uint8_t>();
  std::uint8_t* d = dst.data_ptr<std::uint8_t>();
  const std::size_t in_plane = static_cast<std::size_t>(in_w) * in_h, out_plane = static_cast<std::size_t>(width) * height;
  // GBRP plane order: green, blue, red. Grey has one plane.
  const std::uint8_t* src_planes[3] = {s, nullptr, nullptr};
  std::uint8_t* dst_planes[3] = {d, nullptr, nullptr};
  if (channels == 3) {
    src_planes[0] = s + in_plane, src_planes[1] = s + 2 * in_plane, src_planes[2] = s;
    dst_planes[0] = d + out_plane, dst_planes[1] = d + 2 * out_plane, dst_planes[2] = d;
  }
  int src_stride[3] = {in_w, in_w, in_w};
  int dst_stride[3] = {width, width, width};
  sws_scale(context_, src_planes, src_stride, 0, in_h, dst_planes, dst_stride);
  return dst;
}

}  // namespace reel::sr
