#pragma once
// One picture in a stream. The image tensor is CHW RGB, uint8 unless a node documents otherwise,
// on whatever device the producing node left it. Frames are shared between consumers of a
// fan-out: treat a received image as read-only and emit a new tensor instead of editing it.

#include <reel/stream.h>

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

// What is wrong with `image` as a frame of `stream`, in words ("a float32 tensor", "1 channel
// where the stream has 3"), or empty when it fits: defined, uint8, CHW with the stream's channels,
// height and width, in memory a node can read (CPU or CUDA). The executor checks every emitted
// frame with it; nodes that hand frame memory to a C library check again before they do.
std::string frame_mismatch(const at::Tensor& image, const StreamDesc& stream);

}  // namespace reel
