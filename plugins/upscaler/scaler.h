#pragma once
// Resampling of packed 8-bit images with libswscale, shared by upscaler.resize and the
// super-resolution node's `outscale` and alpha paths.
#include <ATen/core/Tensor.h>

struct SwsContext;

namespace reel::sr {

class Scaler {
 public:
  explicit Scaler(int flags) : flags_(flags) {}
  ~Scaler();
  Scaler(const Scaler&) = delete;
  Scaler& operator=(const Scaler&) = delete;

  // `image` is H x W x C uint8 on the CPU, C = 3 (RGB) or 1 (grey); returns height x width x C.
  // The context is kept while the sizes stay the same.
  at::Tensor resize(const at::Tensor& image, int width, int height);
  // `image` is C x H x W uint8 on the CPU, C = 3 (RGB) or 1; returns C x height x width. The
  // planes go to libswscale as they are (planar GBRP), so no channel reordering copy is made.
  at::Tensor resize_planar(const at::Tensor& image, int width, int height);
  void release() noexcept;

 private:
  int flags_;
  SwsContext* context_ = nullptr;
};

// libswscale flags for a filter name: nearest, bilinear, area, lanczos, bicubic.
int filter_flags(const std::string& filter);

}  // namespace reel::sr
