#pragma once
// Whether two neighbouring frames belong to one shot: interpolating across a scene cut smears two
// unrelated pictures into each other, and identical frames need no model.
#include <ATen/core/Tensor.h>

namespace reel::interp {

enum class PairKind { moving, identical, cut };

// The scene difference of two CHW uint8 RGB frames of one size, from 0 (same) to 1 (black vs
// white): the mean absolute difference of their luma (BT.601 weights, 0..1) after each is
// averaged down to a 64 x 64 thumbnail (area averaging; frames smaller than that are used as they
// are). Thumbnails make it blind to noise and small motion and cheap at any resolution.
double scene_difference(const at::Tensor& a, const at::Tensor& b);

// identical when every byte is equal; cut when scene_difference > threshold; else moving.
PairKind classify(const at::Tensor& a, const at::Tensor& b, double threshold);

}  // namespace reel::interp
