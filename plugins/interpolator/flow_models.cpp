#include "flow_models.h"

#include <reel/error.h>

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace reel::interp {

namespace {

at::Tensor lrelu(at::Tensor x) { return at::leaky_relu_(x, 0.2); }

// Bilinear resize by `factor` (align_corners false), sized and sampled as PyTorch's
// F.interpolate(scale_factor=factor) does: floor(size * factor) pixels, source positions from the
// factor itself rather than from the size ratio.
at::Tensor resize(const at::Tensor& x, double factor) {
  if (factor == 1.0) return x;
  const std::vector<std::int64_t> size{static_cast<std::int64_t>(std::floor(x.size(2) * factor)),
                                       static_cast<std::int64_t>(std::floor(x.size(3) * factor))};
  return at::upsample_bilinear2d(x, size, false, factor, factor);
}

// Backward warp: samples `image` at (x + fx, y + fy) with bilinear interpolation, border padding
// and corner-aligned normalised coordinates, as RIFE's warp does. Always in fp32: half-precision
// coordinates are off by more than half a pixel across a 1280-pixel frame, and libtorch has no
// bf16 grid_sample on the CPU. No grid is cached: the two coordinate ramps cost little next to the
// network, and a cache per frame size grows without bound in a process that sees many sizes.
at::Tensor warp(const at::Tensor& image, const at::Tensor& flow) {
  const std::int64_t h = image.size(2), w = image.size(3);
  auto options = flow.options().dtype(at::kFloat);
  at::Tensor gx = at::linspace(-1.0, 1.0, w, options).view({1, 1, w}).expand({1, h, w});
  at::Tensor gy = at::linspace(-1.0, 1.0, h, options).view({1, h, 1}).expand({1, h, w});
  at::Tensor x = flow.select(1, 0).to(at::kFloat).div(std::max<double>((w - 1.0) / 2.0, 1e-12)).add_(gx);
  at::Tensor y = flow.select(1, 1).to(at::kFloat).div(std::max<double>((h - 1.0) / 2.0, 1e-12)).add_(gy);
  at::Tensor grid = at::stack({x, y}, 3);
  // interpolation 0 = bilinear, padding 1 = border, align_corners = true
  return at::grid_sampler(image.to(at::kFloat), grid, 0, 1, true).to(image.scalar_type());
}

struct ResConvImpl : torch::nn::Module {
  explicit ResConvImpl(int c)
      : conv(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, c, 3).padding(1)))),
        beta(register_parameter("beta", torch::ones({1, c, 1, 1}))) {}
  at::Tensor forward(const at::Tensor& x) { return lrelu(conv->forward(x).mul_(beta).add_(x)); }
  torch::nn::Conv2d conv;
  at::Tensor beta;
};
TORCH_MODULE(ResConv);

// The published block: conv0 = Sequential(conv(in, c/2, 3, 2, 1), conv(c/2, c, 3, 2, 1)) where
// conv = Sequential(Conv2d, LeakyReLU(0.2)); convblock = 8 x ResConv; lastconv =
// Sequential(ConvTranspose2d(c, 24, 4, 2, 1), PixelShuffle(2)). ModuleLists give the same keys
// (conv0.0.0.weight, convblock.3.beta, lastconv.0.weight) without Sequential's type erasure.
struct IFBlockImpl : torch::nn::Module {
  IFBlockImpl(int in_planes, int c, int last_channels) {
    auto conv0 = register_module("conv0", torch::nn::ModuleList());
    for (auto [in, out] : {std::pair{in_planes, c / 2}, std::pair{c / 2, c}}) {
      strided.emplace_back(torch::nn::Conv2dOptions(in, out, 3).stride(2).padding(1));
      conv0->push_back(torch::nn::ModuleList(strided.back()));
    }
    auto convblock = register_module("convblock", torch::nn::ModuleList());
    for (int i = 0; i < 8; ++i) {
      residual.emplace_back(c);
      convblock->push_back(residual.back());
    }
    up = torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(c, last_channels, 4).stride(2).padding(1));
    register_module("lastconv", torch::nn::ModuleList(up));
  }

  // input at full (padded) size; flow the running estimate, undefined for block 0. Returns the
  // flow (4 channels) and mask (1 channel) updates at full size.
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& input, const at::Tensor& flow, double s) {
    at::Tensor x = resize(input, 1.0 / s);
    if (flow.defined()) x = at::cat({x, resize(flow, 1.0 / s).mul(1.0 / s)}, 1);
    for (auto& conv : strided) x = lrelu(conv->forward(x));
    for (auto& block : residual) x = block->forward(x);
    x = resize(at::pixel_shuffle(transposed(x), 2), s);
    return {x.narrow(1, 0, 4).mul(s), x.narrow(1, 4, 1)};
  }

  // libtorch 1.13's oneDNN path rejects a bf16 transposed convolution on the CPU (it checks the
  // weight as if it were a plain convolution's); that one layer then runs in fp32.
  at::Tensor transposed(const at::Tensor& x) {
    if (x.scalar_type() != at::kBFloat16 || !x.is_cpu()) return up->forward(x);
    return at::conv_transpose2d(x.to(at::kFloat), up->weight.to(at::kFloat), up->bias.to(at::kFloat), 2, 1)
        .to(at::kBFloat16);
  }

  std::vector<torch::nn::Conv2d> strided;
  std::vector<ResConv> residual;
  torch::nn::ConvTranspose2d up{nullptr};
};
TORCH_MODULE(IFBlock);

constexpr int kBlockInputs[4] = {7, 12, 12, 12};
constexpr int kBlockWidths[4] = {192, 128, 96, 64};

class IFNet : public FlowModel, public torch::nn::Module {
 public:
  // last_channels: 24 for v4.6 (flow, mask and one unused channel after the pixel shuffle), 20
  // for v4.5 (flow and mask only); the computation is otherwise the same.
  explicit IFNet(int last_channels) {
    for (int i = 0; i < 4; ++i)
      blocks_.push_back(
          register_module("block" + std::to_string(i), IFBlock(kBlockInputs[i], kBlockWidths[i], last_channels)));
  }

  at::Tensor interpolate(const at::Tensor& img0, const at::Tensor& img1, const at::Tensor& t, double scale) override {
    at::Tensor flow, mask, warped0 = img0, warped1 = img1;
    for (int i = 0; i < 4; ++i) {
      const double s = (8 >> i) / scale;  // 8/scale, 4/scale, 2/scale, 1/scale
      if (i == 0) {
        std::tie(flow, mask) = blocks_[i]->forward(at::cat({img0, img1, t}, 1), at::Tensor(), s);
      } else {
        auto [f, m] = blocks_[i]->forward(at::cat({warped0, warped1, t, mask}, 1), flow, s);
        flow = flow + f, mask = mask + m;
      }
      warped0 = warp(img0, flow.narrow(1, 0, 2));
      warped1 = warp(img1, flow.narrow(1, 2, 2));
    }
    at::Tensor weight = at::sigmoid(mask);
    return warped0 * weight + warped1 * (1 - weight);
  }

  void to(const std::string& device, at::ScalarType dtype) override { torch::nn::Module::to(torch::Device(device), dtype); }

 private:
  std::vector<IFBlock> blocks_;
};

class TorchScriptModel : public FlowModel {
 public:
  explicit TorchScriptModel(torch::jit::Module module) : module_(std::move(module)) { module_.eval(); }
  at::Tensor interpolate(const at::Tensor& img0, const at::Tensor& img1, const at::Tensor& t, double) override {
    return module_.forward({img0, img1, t}).toTensor();
  }
  void to(const std::string& device, at::ScalarType dtype) override { module_.to(torch::Device(device), dtype); }

 private:
  torch::jit::Module module_;
};

}  // namespace

int padding_multiple(double scale) { return std::max(32, static_cast<int>(32 / scale)); }

at::Tensor model_input(const at::Tensor& image, int multiple, const std::string& device, at::ScalarType dtype) {
  at::Tensor x = image.to(device).unsqueeze(0).to(dtype).div_(255);
  const std::int64_t right = (multiple - x.size(3) % multiple) % multiple;
  const std::int64_t bottom = (multiple - x.size(2) % multiple) % multiple;
  return right || bottom ? at::constant_pad_nd(x, {0, right, 0, bottom}, 0) : x;
}

at::Tensor interpolate_cropped(FlowModel& model, const at::Tensor& img0, const at::Tensor& img1, double t,
                               double scale, std::int64_t height, std::int64_t width) {
  at::Tensor plane = at::full({1, 1, img0.size(2), img0.size(3)}, t, img0.options());
  at::Tensor y = model.interpolate(img0, img1, plane, scale);
  if (y.dim() != 4 || y.size(0) != 1 || y.size(1) != 3 || y.size(2) != img0.size(2) || y.size(3) != img0.size(3))
    throw BadInputError("the model returned a " + c10::str(y.sizes()) + " tensor for a " + c10::str(img0.sizes()) +
                        " pair; a frame must have the pair's shape");
  return y.squeeze(0).narrow(1, 0, height).narrow(2, 0, width).to(at::kFloat);
}

Recognition recognise(const weights::Checkpoint& checkpoint) {
  if (!checkpoint.keyed())
    return {false, "an ncnn model (rife-ncnn-vulkan's flownet.param); its PyTorch checkpoint (flownet.pkl) loads"};
  std::map<std::string, std::vector<std::int64_t>> shapes;
  const auto names = weights::normalized_names(checkpoint);
  for (std::size_t i = 0; i < names.size(); ++i)
    if (!names[i].empty()) shapes[names[i]] = checkpoint.tensors()[i].shape;
  auto shape = [&](const std::string& name) {
    auto it = shapes.find(name);
    return it == shapes.end() ? std::vector<std::int64_t>{} : it->second;
  };
  auto has_prefix = [&](const std::string& prefix) {
    auto it = shapes.lower_bound(prefix);
    return it != shapes.end() && it->first.rfind(prefix, 0) == 0;
  };
  if (!has_prefix("block0.")) return {false, "not a RIFE IFNet checkpoint (it has no block0.* tensors)"};
  const auto first = shape("block0.conv0.0.0.weight");
  if (has_prefix("encode.") || (first.size() == 4 && first[1] > 7))
    return {false, "a RIFE IFNet 4.7 or later (its flow blocks also take features from an 'encode' network)"};
  if (has_prefix("block0.convblock.0.0.") || has_prefix("block0.lastconv.weight"))
    return {false, "a RIFE IFNet 4.0-4.4 (plain convolution blocks without 'beta', a 5-channel lastconv)"};
  if (has_prefix("block4.") || !has_prefix("block3."))
    return {false, "a RIFE IFNet with another number of flow blocks than v4.5/v4.6's four"};
  const auto last = shape("block3.lastconv.0.weight");
  if (first != std::vector<std::int64_t>{96, 7, 3, 3} || shape("block1.conv0.0.0.weight").size() != 4 ||
      shape("block1.conv0.0.0.weight")[1] != 12 || last.size() != 4 || (last[1] != 24 && last[1] != 20))
    return {false, "a RIFE IFNet with other layer sizes than v4.5/v4.6's (block0 takes 7 channels at width 192, "
                   "lastconv gives 20 or 24)"};
  Recognition r{true, last[1] == 24 ? "RIFE IFNet v4.6" : "RIFE IFNet v4.5"};
  r.last_channels = static_cast<int>(last[1]);
  return r;
}

weights::Expected ifnet_expected(int last_channels) {
  IFNet network(last_channels);
  weights::Expected out;
  for (const auto& p : network.named_parameters()) out.emplace_back(p.key(), p.value().sizes().vec());
  return out;
}

std::unique_ptr<FlowModel> load_ifnet(const weights::Checkpoint& checkpoint) {
  Recognition r = recognise(checkpoint);
  if (!r.loadable) throw BadInputError("checkpoint " + checkpoint.path().string() + " is " + r.what);
  auto network = std::make_unique<IFNet>(r.last_channels);
  network->eval();
  auto tensors = weights::match(checkpoint, ifnet_expected(r.last_channels), r.what);
  torch::NoGradGuard no_grad;
  auto params = network->named_parameters();
  for (const auto& [name, tensor] : tensors) params[name].copy_(tensor);
  return network;
}

std::unique_ptr<FlowModel> load_torchscript(const std::filesystem::path& path) {
  try {
    return std::make_unique<TorchScriptModel>(torch::jit::load(path.string(), torch::kCPU));
  } catch (const c10::Error& e) {
    throw BadInputError("TorchScript module " + path.string() + " cannot be loaded: " +
                        std::string(e.what_without_backtrace()).substr(0, 300));
  }
}

void check_torchscript(const std::filesystem::path& path) {
  auto model = load_torchscript(path);
  c10::InferenceMode inference;
  at::Tensor out;
  try {
    out = model->interpolate(torch::zeros({1, 3, 32, 32}), torch::ones({1, 3, 32, 32}), torch::full({1, 1, 32, 32}, 0.5), 1.0);
  } catch (const std::exception& e) {
    throw BadInputError("TorchScript module " + path.string() +
                        " does not take (img0, img1, t) as 1x3xHxW, 1x3xHxW, 1x1xHxW tensors: " +
                        std::string(e.what()).substr(0, 300));
  }
  if (out.sizes() != at::IntArrayRef{1, 3, 32, 32})
    throw BadInputError("TorchScript module " + path.string() + " turned a 1x3x32x32 pair into " +
                        c10::str(out.sizes()) + ", not one 1x3x32x32 frame");
}

}  // namespace reel::interp
