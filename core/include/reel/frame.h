#pragma once
// One picture in a stream. The image tensor is CHW RGB, uint8 unless a node documents otherwise,
// on whatever device the producing node left it. Frames are shared between consumers of a
// fan-out: treat a received image as read-only and emit a new tensor instead of editing it.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

namespace reel {

struct Frame {
  at::Tensor image;
  std::int64_t index = 0;  // position in its stream, assigned by the executor on emit
  std::map<std::string, std::string> metadata;
};

}  // namespace reel
