#include "scene.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace reel::interp {

namespace {

at::Tensor luma_thumbnail(const at::Tensor& image) {
  at::Tensor x = image.to(at::kFloat).div(255);
  at::Tensor luma = (x[0] * 0.299 + x[1] * 0.587 + x[2] * 0.114).unsqueeze(0).unsqueeze(0);
  const std::int64_t h = std::min<std::int64_t>(64, luma.size(2)), w = std::min<std::int64_t>(64, luma.size(3));
  return at::adaptive_avg_pool2d(luma, {h, w});
}

}  // namespace

double scene_difference(const at::Tensor& a, const at::Tensor& b) {
  return (luma_thumbnail(a) - luma_thumbnail(b)).abs().mean().item<double>();
}

PairKind classify(const at::Tensor& a, const at::Tensor& b, double threshold) {
  if (a.is_same(b) || at::equal(a, b)) return PairKind::identical;
  return scene_difference(a, b) > threshold ? PairKind::cut : PairKind::moving;
}

}  // namespace reel::interp
