// ncnn models: a `.param` text graph and a `.bin` with the weight-bearing layers' blobs in layer
// order. ncnn names no tensors, so they are listed in file order as "<layer>.weight" and
// "<layer>.bias"; `match` assigns them to a network's keys by position and checks every shape.
#include "source.h"

#include <ATen/ATen.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace reel::weights {

namespace fs = std::filesystem;

namespace {

// Layers that hold no weights: their blobs are not in the .bin.
const std::set<std::string>& weightless_layers() {
  static const std::set<std::string> types{"Input",   "Split",   "Concat",  "Eltwise", "BinaryOp", "Interp",
                                           "PixelShuffle", "ReLU", "Sigmoid", "Crop",  "Slice",    "Reshape",
                                           "Permute", "Noop",    "Clip",    "UnaryOp", "Padding",  "Pooling",
                                           "Softmax", "TanH",    "Flatten", "Dropout", "Swish",    "HardSigmoid"};
  return types;
}

struct Layer {
  std::string type, name;
  std::map<int, std::string> params;  // ncnn param id -> text value (arrays as "n,v1,v2,...")
  int line = 0;

  long integer(int id, long fallback) const {
    auto it = params.find(id);
    return it == params.end() ? fallback : std::stol(it->second);
  }
};

std::vector<Layer> parse_param(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw IoError(path.string(), "cannot open the file");
  auto bad = [&](int line, const std::string& why) { refuse(path, "line " + std::to_string(line) + ": " + why); };
  std::string text;
  std::getline(in, text);
  if (text.rfind("7767517", 0) != 0) bad(1, "does not start with ncnn's magic number 7767517");
  long layer_count = 0, blob_count = 0;
  if (!std::getline(in, text) || !(std::istringstream(text) >> layer_count >> blob_count) || layer_count <= 0 ||
      layer_count > 1'000'000)
    bad(2, "expected the layer and blob counts");
  std::vector<Layer> layers;
  int line = 2;
  while (std::getline(in, text)) {
    ++line;
    std::istringstream fields(text);
    Layer layer;
    layer.line = line;
    long inputs = 0, outputs = 0;
    if (!(fields >> layer.type)) continue;
    if (!(fields >> layer.name >> inputs >> outputs) || inputs < 0 || outputs < 0 || inputs > 4096 || outputs > 4096)
      bad(line, "a layer line needs type, name and blob counts");
    std::string blob;
    for (long i = 0; i < inputs + outputs; ++i)
      if (!(fields >> blob)) bad(line, "layer '" + layer.name + "' lists fewer blobs than it declares");
    std::string param;
    while (fields >> param) {
      auto eq = param.find('=');
      if (eq == std::string::npos) bad(line, "parameter '" + param + "' of layer '" + layer.name + "' is not id=value");
      int id = 0;
      try {
        id = std::stoi(param.substr(0, eq));
      } catch (const std::exception&) {
        bad(line, "parameter '" + param + "' of layer '" + layer.name + "' has no numeric id");
      }
      if (id <= -23300) id = -id - 23300;  // an array parameter
      layer.params[id] = param.substr(eq + 1);
    }
    layers.push_back(std::move(layer));
  }
  if (static_cast<long>(layers.size()) != layer_count)
    refuse(path, "declares " + std::to_string(layer_count) + " layers but lists " + std::to_string(layers.size()));
  return layers;
}

class NcnnSource : public Checkpoint::Source {
 public:
  std::shared_ptr<MappedFile> file;
  struct Blob {
    const std::uint8_t* bytes;
    bool half;
  };
  std::vector<Blob> blobs;

  at::Tensor read(std::size_t i) const override {
    const auto& r = records[i];
    const auto& b = blobs[i];
    if (!b.half) return view_bytes(file, b.bytes, r.shape, at::kFloat);
    return view_bytes(file, b.bytes, r.shape, at::kHalf).to(at::kFloat);  // every fp16 value is exact in fp32
  }
};

constexpr std::uint32_t fp16_tag = 0x01306B47;
constexpr std::uint32_t int8_tag = 0x000D4B38;

}  // namespace

std::shared_ptr<const Checkpoint::Source> open_ncnn(const fs::path& param, const fs::path& bin) {
  auto layers = parse_param(param);
  auto source = std::make_shared<NcnnSource>();
  source->path = param;
  source->format = "ncnn";
  source->keyed = false;
  source->file = MappedFile::open(bin);
  const std::uint64_t size = source->file->size();
  const std::uint8_t* data = source->file->data();
  std::uint64_t at = 0;

  for (std::size_t index = 0; index < layers.size(); ++index) {
    const Layer& layer = layers[index];
    const std::string origin = "layer " + std::to_string(index) + " '" + layer.name + "' (" + layer.type + ")";
    auto need = [&](std::uint64_t bytes) {
      if (at > size || bytes > size - at)
        refuse(bin, origin + " needs " + std::to_string(bytes) + " bytes at offset " + std::to_string(at) +
                        " but the file has " + std::to_string(size) + " (truncated, or not this .param's .bin)");
    };
    // A raw fp32 blob of `count` values.
    auto raw = [&](const std::string& suffix, std::vector<std::int64_t> shape) {
      std::uint64_t count = static_cast<std::uint64_t>(checked_numel(shape));
      need(count * 4);
      source->records.push_back({layer.name + suffix, at::kFloat, shape, origin});
      source->blobs.push_back({data + at, false});
      at += count * 4;
    };
    try {
      if (layer.type == "Convolution") {
        long out = layer.integer(0, 0), kw = layer.integer(1, 0), kh = layer.integer(11, kw);
        long weights = layer.integer(6, 0);
        constexpr long limit = 1L << 30;  // far beyond any real layer; keeps the products below in range
        if (out <= 0 || kw <= 0 || kh <= 0 || weights <= 0 || out > limit || kw > 64 || kh > 64 || weights > limit ||
            weights % (out * kw * kh) != 0)
          refuse(param, origin + " has inconsistent sizes (0=" + std::to_string(out) + " 1=" + std::to_string(kw) +
                            " 6=" + std::to_string(weights) + ")");
        std::vector<std::int64_t> shape{out, weights / (out * kw * kh), kh, kw};
        need(4);
        std::uint32_t tag;
        std::memcpy(&tag, data + at, 4);
        if (tag == fp16_tag) {
          at += 4;
          need((static_cast<std::uint64_t>(weights) * 2 + 3) / 4 * 4);  // blobs are 4-byte aligned
          source->records.push_back({layer.name + ".weight", at::kFloat, shape, origin});
          source->blobs.push_back({data + at, true});
          at += (static_cast<std::uint64_t>(weights) * 2 + 3) / 4 * 4;
        } else if (tag == 0) {
          at += 4;
          raw(".weight", shape);
        } else {
          refuse(bin, origin + " stores its weights " + std::string(tag == int8_tag ? "as int8" : "quantised") +
                          "; reel reads fp16 and fp32 ncnn weights");
        }
        if (layer.integer(5, 0)) raw(".bias", {out});
      } else if (layer.type == "PReLU") {
        long slopes = layer.integer(0, 0);
        if (slopes <= 0 || slopes > (1L << 30)) refuse(param, origin + " has an invalid slope count");
        raw(".weight", {slopes});
      } else if (!weightless_layers().count(layer.type)) {
        refuse(param, origin + " is a layer type reel does not map to its networks",
               "reel reads ncnn files of the architectures it implements (Real-ESRGAN's RRDBNet and SRVGGNetCompact)");
      }
    } catch (const std::invalid_argument&) {
      refuse(param, origin + " has a parameter that is not a number");
    } catch (const std::out_of_range&) {
      refuse(param, origin + " has a parameter out of range");
    }
  }
  if (at != size)
    refuse(bin, "has " + std::to_string(size - at) + " bytes left after the last layer of " + param.filename().string() +
                    " (a .bin of another model?)");
  return source;
}

}  // namespace reel::weights
