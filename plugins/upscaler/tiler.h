#pragma once
// Runs a super-resolution network over an image tile by tile, as Real-ESRGAN's own tiler does:
// each tile is computed with `pad` pixels of real context around it (clamped at the image
// border, where the network's own zero padding applies as it does for the whole image) and only
// its own area of the output is kept. With `pad` at least the network's receptive radius the
// result equals the untiled one.
#include <ATen/core/Tensor.h>

#include <functional>

namespace reel::sr {

struct Tiling {
  int tile = 0;      // tile side in input pixels; 0: the whole image at once
  int pad = 10;      // context around each tile, input pixels
  int multiple = 1;  // tile origins and sizes stay multiples of this (pixel-unshuffle networks)
};

// x: 1 x C x H x W (H, W multiples of tiling.multiple). `forward` maps a tile to its upscaled
// output (scale s). `before_tile(i)` runs before tile i (cancellation checks, tests).
at::Tensor run_tiled(const at::Tensor& x, int scale, const Tiling& tiling,
                     const std::function<at::Tensor(const at::Tensor&)>& forward,
                     const std::function<void(int)>& before_tile = {});

}  // namespace reel::sr
