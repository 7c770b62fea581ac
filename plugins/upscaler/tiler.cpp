#include "tiler.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace reel::sr {

at::Tensor run_tiled(const at::Tensor& x, int scale, const Tiling& tiling,
                     const std::function<at::Tensor(const at::Tensor&)>& forward,
                     const std::function<void(int)>& before_tile) {
  const std::int64_t height = x.size(2), width = x.size(3);
  const std::int64_t m = std::max(1, tiling.multiple);
  const std::int64_t tile = tiling.tile <= 0 ? std::max(height, width) : (tiling.tile + m - 1) / m * m;
  const std::int64_t pad = (tiling.pad + m - 1) / m * m;
  if (tile >= height && tile >= width) {
    if (before_tile) before_tile(0);
    return forward(x);
  }
  at::Tensor out;
  int index = 0;
  for (std::int64_t y0 = 0; y0 < height; y0 += tile) {
    for (std::int64_t x0 = 0; x0 < width; x0 += tile, ++index) {
      if (before_tile) before_tile(index);
      const std::int64_t y1 = std::min(y0 + tile, height), x1 = std::min(x0 + tile, width);
      const std::int64_t py0 = std::max<std::int64_t>(y0 - pad, 0), px0 = std::max<std::int64_t>(x0 - pad, 0);
      const std::int64_t py1 = std::min(y1 + pad, height), px1 = std::min(x1 + pad, width);
      at::Tensor result = forward(x.slice(2, py0, py1).slice(3, px0, px1));
      if (!out.defined()) out = at::empty({x.size(0), result.size(1), height * scale, width * scale}, result.options());
      out.slice(2, y0 * scale, y1 * scale)
          .slice(3, x0 * scale, x1 * scale)
          .copy_(result.slice(2, (y0 - py0) * scale, (y1 - py0) * scale).slice(3, (x0 - px0) * scale, (x1 - px0) * scale));
    }
  }
  return out;
}

}  // namespace reel::sr
