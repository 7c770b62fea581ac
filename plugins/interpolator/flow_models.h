#pragma once
// The frame interpolation networks interpolator.rife runs.
//
//   IFNet v4.6   RIFE's flow network as published (Practical-RIFE 4.6, and 4.5 whose last layer
//                lacks one unused channel): four IFBlocks that each
//                estimate the two flows to time t and a blend mask at 1/8, 1/4, 1/2 and 1/1 of
//                the (scaled) frame, refining the previous block's estimate; the frame is both
//                inputs warped backwards (bilinear, border) and blended by sigmoid(mask). Keys as
//                in its checkpoints: block0.conv0.0.0.weight ... block3.lastconv.0.bias.
//   TorchScript  a user's module with the contract (img0, img1, t) -> frame (docs/nodes.md).
#include <reel/weights.h>

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace reel::interp {

class FlowModel {
 public:
  virtual ~FlowModel() = default;
  // img0, img1: 1 x 3 x H x W, RGB in [0, 1], H and W multiples of padding_multiple(scale); t: a
  // 1 x 1 x H x W plane filled with the timestep. Returns 1 x 3 x H x W (unclamped).
  virtual at::Tensor interpolate(const at::Tensor& img0, const at::Tensor& img1, const at::Tensor& t, double scale) = 0;
  virtual void to(const std::string& device, at::ScalarType dtype) = 0;
};

// The multiple IFNet needs at a flow scale: block0 works at 1/(8/scale) and halves twice more,
// so 32 at scale 1, 64 at 0.5, 128 at 0.25.
int padding_multiple(double scale);

// One CHW uint8 RGB frame as a model input: on `device` in `dtype`, 0..1, 1 x 3 x H' x W' with
// zeros added at the right and bottom up to multiples of `multiple` (never resized, so nothing is
// squeezed or shifted).
at::Tensor model_input(const at::Tensor& image, int multiple, const std::string& device, at::ScalarType dtype);

// The frame at t between two model inputs, cropped back to height x width: 3 x H x W float32,
// unclamped. Throws BadInputError when the model returns another shape.
at::Tensor interpolate_cropped(FlowModel& model, const at::Tensor& img0, const at::Tensor& img1, double t,
                               double scale, std::int64_t height, std::int64_t width);

// What a checkpoint is, as far as interpolation goes: `loadable` for IFNet v4.6's layout (or
// v4.5's, the same but for lastconv's 20 channels instead of 24); otherwise `what` names what was
// recognised instead (another RIFE version, not RIFE at all).
struct Recognition {
  bool loadable = false;
  std::string what;
  int last_channels = 24;  // lastconv's output channels: 24 (v4.6) or 20 (v4.5)
};
Recognition recognise(const weights::Checkpoint& checkpoint);

// IFNet's parameter names and shapes, and one built from a checkpoint (which must be recognised
// as loadable; mismatches are named by weights::match).
weights::Expected ifnet_expected(int last_channels = 24);
std::unique_ptr<FlowModel> load_ifnet(const weights::Checkpoint& checkpoint);

// A TorchScript module (torch.jit.save) with the (img0, img1, t) -> frame contract, on the CPU.
// Throws BadInputError when it cannot be loaded. `check` runs it once on a 32 x 32 pair and
// refuses one that does not return 1 x 3 x 32 x 32.
std::unique_ptr<FlowModel> load_torchscript(const std::filesystem::path& path);
void check_torchscript(const std::filesystem::path& path);

}  // namespace reel::interp
