#pragma once
// The super-resolution networks of Real-ESRGAN as native libtorch modules, named and keyed as
// their published checkpoints (RealESRGAN_x4plus.pth, realesr-general-x4v3.pth...), so those files
// load unchanged.
//   RRDBNet          conv_first, body.N.rdb{1,2,3}.conv{1..5}, conv_body, conv_up1, conv_up2,
//                    conv_hr, conv_last; x2 and x1 variants take pixel-unshuffled input.
//   SRVGGNetCompact  body.0 (conv), body.1 (PReLU), ..., body.2n+2 (conv to 3*s*s channels),
//                    pixel shuffle, plus a nearest upsample of the input.
#include <reel/weights.h>

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>

namespace reel::sr {

struct Architecture {
  enum class Kind { rrdbnet, srvgg, torchscript } kind = Kind::rrdbnet;
  int in_channels = 3, out_channels = 3, features = 64;
  int blocks = 23;  // RRDBNet: RRDB blocks; SRVGGNetCompact: body convolutions
  int grow = 32;    // RRDBNet only
  int scale = 4;

  std::string name() const;      // "RRDBNet" / "SRVGGNetCompact" / "TorchScript module"
  std::string describe() const;  // "RRDBNet x4, 23 blocks, 64 features, 32 growth"
  // Input pixels beyond a tile's border that change its output: the receptive radius at input
  // resolution. Exact for SRVGGNetCompact; for RRDBNet an upper bound far above what matters.
  int receptive_radius() const;
  // How many pixels the input must be a multiple of (pixel unshuffle of the x2 and x1 RRDBNet).
  int input_multiple() const { return kind == Kind::rrdbnet ? 4 / scale : 1; }
  // Peak working bytes per input pixel of one fp32 forward pass (from measured peaks).
  double working_bytes_per_pixel() const;
};

// Recognises an architecture from names and shapes (keyed checkpoints) or from the order and
// shapes of the tensors (ncnn). Empty when the checkpoint is none of these networks.
std::optional<Architecture> detect(const weights::Checkpoint& checkpoint);

class Network {
 public:
  virtual ~Network() = default;
  // x: N x 3 x H x W in [0, 1]; returns N x 3 x sH x sW (unclamped).
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  // Parameter names and shapes in registration order (what a checkpoint must provide).
  virtual weights::Expected expected() const = 0;
  // Copies matched tensors into the parameters (any dtype; widened or narrowed on copy).
  virtual void assign(const std::vector<std::pair<std::string, at::Tensor>>& tensors) = 0;
  virtual void to(const std::string& device, at::ScalarType dtype) = 0;
};

// RRDBNet and SRVGGNetCompact; not TorchScript (see load_torchscript).
std::unique_ptr<Network> build(const Architecture& architecture);

// A user's TorchScript super-resolution module (N x 3 x H x W in [0, 1] -> N x 3 x sH x sW).
std::unique_ptr<Network> load_torchscript(const std::filesystem::path& path);
// Its scale, found by running it once on a 16 x 16 black image on the CPU (the module is loaded
// and released again: TorchScript records no output size). Throws BadInputError.
Architecture probe_torchscript(const std::filesystem::path& path);

}  // namespace reel::sr
