#include "networks.h"

#include <reel/error.h>

#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <map>

namespace reel::sr {

namespace F = torch::nn::functional;

std::string Architecture::name() const {
  return kind == Kind::rrdbnet ? "RRDBNet" : kind == Kind::srvgg ? "SRVGGNetCompact" : "TorchScript module";
}

std::string Architecture::describe() const {
  std::string text = name() + " x" + std::to_string(scale) + ", ";
  if (kind == Kind::torchscript) return name() + " x" + std::to_string(scale);
  if (kind == Kind::rrdbnet)
    return text + std::to_string(blocks) + " blocks, " + std::to_string(features) + " features, " +
           std::to_string(grow) + " growth";
  return text + std::to_string(blocks) + " convs, " + std::to_string(features) + " features, PReLU";
}

int Architecture::receptive_radius() const {
  // Every 3x3 convolution at input resolution widens the radius by one pixel.
  if (kind == Kind::srvgg) return blocks + 2;
  if (kind == Kind::torchscript) return 0;  // unknown
  int unshuffle = input_multiple();
  return (1 + blocks * 15 + 1) * unshuffle + 4;  // body at (unshuffled) input resolution, then three convs at 2x, 4x
}

double Architecture::working_bytes_per_pixel() const {
  // The live tensors at the peak of one fp32 forward pass, per input pixel, with a 25% margin.
  // Measured peaks (bench/esrgan_bench, channels-last, peak RSS above the loaded model):
  // SRVGGNetCompact x4 ~515 B (720x480), RRDBNet x4 ~9.2 KB (320x180).
  double s2 = static_cast<double>(scale) * scale;
  if (kind == Kind::srvgg) return 1.25 * 4.0 * (features + 2.0 * out_channels * s2);  // 800 B
  if (kind == Kind::torchscript) return 1.25 * 4.0 * 2.0 * 64 * s2;  // unknown: assume RRDBNet-like
  return 1.25 * 4.0 * (2.0 * features * s2 + 6.0 * features);  // two maps at full size: 12.2 KB
}

namespace {

torch::nn::Conv2d conv3x3(int in, int out) { return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)); }

at::Tensor lrelu(const at::Tensor& x) { return F::leaky_relu(x, F::LeakyReLUFuncOptions().negative_slope(0.2).inplace(true)); }

struct ResidualDenseBlockImpl : torch::nn::Module {
  ResidualDenseBlockImpl(int features, int grow) {
    for (int i = 0; i < 5; ++i)
      convs.push_back(register_module("conv" + std::to_string(i + 1),
                                      conv3x3(features + i * grow, i < 4 ? grow : features)));
  }
  at::Tensor forward(const at::Tensor& x) {
    std::vector<at::Tensor> dense{x};
    for (int i = 0; i < 4; ++i) dense.push_back(lrelu(convs[i]->forward(dense.size() == 1 ? x : torch::cat(dense, 1))));
    at::Tensor x5 = convs[4]->forward(torch::cat(dense, 1));
    return x5.mul_(0.2).add_(x);
  }
  std::vector<torch::nn::Conv2d> convs;
};
TORCH_MODULE(ResidualDenseBlock);

struct RRDBImpl : torch::nn::Module {
  RRDBImpl(int features, int grow)
      : rdb1(register_module("rdb1", ResidualDenseBlock(features, grow))),
        rdb2(register_module("rdb2", ResidualDenseBlock(features, grow))),
        rdb3(register_module("rdb3", ResidualDenseBlock(features, grow))) {}
  at::Tensor forward(const at::Tensor& x) { return rdb3->forward(rdb2->forward(rdb1->forward(x))).mul_(0.2).add_(x); }
  ResidualDenseBlock rdb1, rdb2, rdb3;
};
TORCH_MODULE(RRDB);

// A module that is also a Network: parameters, placement and weight assignment done once.
class ModuleNetwork : public Network, public torch::nn::Module {
 public:
  weights::Expected expected() const override {
    weights::Expected out;
    for (const auto& p : named_parameters()) out.emplace_back(p.key(), p.value().sizes().vec());
    return out;
  }
  void assign(const std::vector<std::pair<std::string, at::Tensor>>& tensors) override {
    torch::NoGradGuard no_grad;
    auto params = named_parameters();
    for (const auto& [name, tensor] : tensors) params[name].copy_(tensor);
  }
  void to(const std::string& device, at::ScalarType dtype) override {
    torch::nn::Module::to(torch::Device(device), dtype);
  }
};

class RRDBNet : public ModuleNetwork {
 public:
  explicit RRDBNet(const Architecture& a) : unshuffle_(a.input_multiple()) {
    const int in = a.in_channels * unshuffle_ * unshuffle_;
    conv_first = register_module("conv_first", conv3x3(in, a.features));
    body = register_module("body", torch::nn::Sequential());
    for (int i = 0; i < a.blocks; ++i) body->push_back(RRDB(a.features, a.grow));
    conv_body = register_module("conv_body", conv3x3(a.features, a.features));
    conv_up1 = register_module("conv_up1", conv3x3(a.features, a.features));
    conv_up2 = register_module("conv_up2", conv3x3(a.features, a.features));
    conv_hr = register_module("conv_hr", conv3x3(a.features, a.features));
    conv_last = register_module("conv_last", conv3x3(a.features, a.out_channels));
  }

  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor feat = conv_first->forward(unshuffle_ > 1 ? F::pixel_unshuffle(x, unshuffle_) : x);
    feat = feat + conv_body->forward(body->forward(feat));
    auto up = [](const at::Tensor& t) {
      return F::interpolate(t, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kNearest));
    };
    feat = lrelu(conv_up1->forward(up(feat)));
    feat = lrelu(conv_up2->forward(up(feat)));
    return conv_last->forward(lrelu(conv_hr->forward(feat)));
  }

 private:
  int unshuffle_;
  torch::nn::Conv2d conv_first{nullptr}, conv_body{nullptr}, conv_up1{nullptr}, conv_up2{nullptr}, conv_hr{nullptr},
      conv_last{nullptr};
  torch::nn::Sequential body{nullptr};
};

class SRVGGNetCompact : public ModuleNetwork {
 public:
  explicit SRVGGNetCompact(const Architecture& a) : scale_(a.scale) {
    body = register_module("body", torch::nn::Sequential());
    body->push_back(conv3x3(a.in_channels, a.features));
    body->push_back(torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(a.features)));
    for (int i = 0; i < a.blocks; ++i) {
      body->push_back(conv3x3(a.features, a.features));
      body->push_back(torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(a.features)));
    }
    body->push_back(conv3x3(a.features, a.out_channels * scale_ * scale_));
  }

  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor out = F::pixel_shuffle(body->forward(x), scale_);
    return out.add_(F::interpolate(
        x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{double(scale_), double(scale_)}).mode(torch::kNearest)));
  }

 private:
  int scale_;
  torch::nn::Sequential body{nullptr};
};

int square_root(std::int64_t n) {
  int r = static_cast<int>(std::lround(std::sqrt(static_cast<double>(n))));
  return r * r == n ? r : 0;
}

// Real checkpoints use 64 features, 32 growth, up to 23 blocks and 32 convolutions; the bounds
// keep a crafted file from making `build` allocate an absurd network.
std::optional<Architecture> plausible(const Architecture& a) {
  const bool rgb = a.in_channels == 3 && a.out_channels == 3;
  const bool sized = a.features > 0 && a.features <= 256 && a.blocks >= 0 && a.blocks <= 64 &&
                     (a.kind != Architecture::Kind::rrdbnet || (a.grow > 0 && a.grow <= 128 && a.blocks >= 1)) &&
                     a.scale >= 1 && a.scale <= 8;
  if (rgb && sized) return a;
  return std::nullopt;
}

std::optional<Architecture> detect_keyed(const weights::Checkpoint& checkpoint) {
  std::map<std::string, std::vector<std::int64_t>> shapes;
  auto names = weights::normalized_names(checkpoint);
  for (std::size_t i = 0; i < names.size(); ++i)
    if (!names[i].empty()) shapes[names[i]] = checkpoint.tensors()[i].shape;
  auto shape = [&](const std::string& key) { return shapes.count(key) ? shapes[key] : std::vector<std::int64_t>{}; };
  Architecture a;
  if (shape("conv_first.weight").size() == 4 && shape("conv_last.weight").size() == 4 &&
      shape("body.0.rdb1.conv1.weight").size() == 4) {
    a.kind = Architecture::Kind::rrdbnet;
    a.features = static_cast<int>(shape("conv_first.weight")[0]);
    a.out_channels = static_cast<int>(shape("conv_last.weight")[0]);
    a.grow = static_cast<int>(shape("body.0.rdb1.conv1.weight")[0]);
    std::int64_t in = shape("conv_first.weight")[1];
    a.in_channels = a.out_channels;
    a.scale = a.in_channels <= 0                ? 0
              : in == a.in_channels           ? 4
              : in == a.in_channels * 4       ? 2
              : in == a.in_channels * 16      ? 1
                                              : 0;
    if (a.scale == 0) return std::nullopt;
    a.blocks = 0;
    while (a.blocks < 1000 && shapes.count("body." + std::to_string(a.blocks) + ".rdb1.conv1.weight")) ++a.blocks;
    return plausible(a);
  }
  if (shape("body.0.weight").size() == 4 && shape("body.1.weight").size() == 1) {
    a.kind = Architecture::Kind::srvgg;
    a.in_channels = a.out_channels = static_cast<int>(shape("body.0.weight")[1]);
    a.features = static_cast<int>(shape("body.0.weight")[0]);
    int last = 0;
    while (last < 1000 && shapes.count("body." + std::to_string(last + 2) + ".weight")) last += 2;
    a.blocks = last / 2 - 1;
    const auto last_shape = shape("body." + std::to_string(last) + ".weight");
    if (a.blocks < 0 || a.in_channels <= 0 || last_shape.size() != 4) return std::nullopt;
    a.scale = square_root(last_shape[0] / a.out_channels);
    return plausible(a);
  }
  return std::nullopt;
}

// ncnn: only the order and shapes are known.
std::optional<Architecture> detect_positional(const weights::Checkpoint& checkpoint) {
  const auto& t = checkpoint.tensors();
  if (t.size() < 4 || t[0].shape.size() != 4 || t[1].shape.size() != 1) return std::nullopt;
  std::vector<std::vector<std::int64_t>> convs;
  for (const auto& r : t)
    if (r.shape.size() == 4) convs.push_back(r.shape);
  Architecture a;
  a.features = static_cast<int>(t[0].shape[0]);
  if (t[2].shape.size() == 1) {  // conv weight, bias, PReLU slopes: SRVGGNetCompact
    a.kind = Architecture::Kind::srvgg;
    a.in_channels = a.out_channels = static_cast<int>(t[0].shape[1]);
    a.blocks = static_cast<int>(convs.size()) - 2;
    if (a.blocks < 0 || a.in_channels <= 0) return std::nullopt;
    a.scale = square_root(convs.back()[0] / a.out_channels);
    return plausible(a);
  }
  if (convs.size() < 21 || (convs.size() - 6) % 15 != 0) return std::nullopt;
  a.kind = Architecture::Kind::rrdbnet;
  a.blocks = static_cast<int>((convs.size() - 6) / 15);
  a.grow = static_cast<int>(convs[1][0]);
  a.out_channels = static_cast<int>(convs.back()[0]);
  a.in_channels = a.out_channels;
  std::int64_t in = convs[0][1];
  a.scale = in == a.in_channels ? 4 : in == a.in_channels * 4 ? 2 : in == a.in_channels * 16 ? 1 : 0;
  if (a.scale == 0) return std::nullopt;
  return plausible(a);
}

}  // namespace

std::optional<Architecture> detect(const weights::Checkpoint& checkpoint) {
  return checkpoint.keyed() ? detect_keyed(checkpoint) : detect_positional(checkpoint);
}

namespace {

class TorchScriptNetwork : public Network {
 public:
  explicit TorchScriptNetwork(torch::jit::Module module) : module_(std::move(module)) { module_.eval(); }
  at::Tensor forward(const at::Tensor& x) override { return module_.forward({x}).toTensor(); }
  weights::Expected expected() const override { return {}; }
  void assign(const std::vector<std::pair<std::string, at::Tensor>>&) override {}
  void to(const std::string& device, at::ScalarType dtype) override { module_.to(torch::Device(device), dtype); }

 private:
  torch::jit::Module module_;
};

}  // namespace

std::unique_ptr<Network> load_torchscript(const std::filesystem::path& path) {
  try {
    return std::make_unique<TorchScriptNetwork>(torch::jit::load(path.string(), torch::kCPU));
  } catch (const c10::Error& e) {
    throw BadInputError("TorchScript module " + path.string() + " cannot be loaded: " +
                        std::string(e.what_without_backtrace()).substr(0, 300));
  }
}

Architecture probe_torchscript(const std::filesystem::path& path) {
  auto network = load_torchscript(path);
  c10::InferenceMode inference;
  at::Tensor out;
  try {
    out = network->forward(torch::zeros({1, 3, 16, 16}));
  } catch (const std::exception& e) {
    throw BadInputError("TorchScript module " + path.string() + " does not take a 1x3xHxW image: " +
                        std::string(e.what()).substr(0, 300));
  }
  if (out.dim() != 4 || out.size(1) != 3 || out.size(2) % 16 != 0 || out.size(2) != out.size(3) || out.size(2) < 16)
    throw BadInputError("TorchScript module " + path.string() + " turned a 1x3x16x16 image into " +
                        c10::str(out.sizes()) + ", not 1x3x(16s)x(16s)");
  Architecture a;
  a.kind = Architecture::Kind::torchscript;
  a.scale = static_cast<int>(out.size(2) / 16);
  return a;
}

std::unique_ptr<Network> build(const Architecture& architecture) {
  std::unique_ptr<ModuleNetwork> network;
  if (architecture.kind == Architecture::Kind::rrdbnet)
    network = std::make_unique<RRDBNet>(architecture);
  else
    network = std::make_unique<SRVGGNetCompact>(architecture);
  network->eval();
  return network;
}

}  // namespace reel::sr
