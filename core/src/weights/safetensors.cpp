// safetensors: an 8-byte little-endian header length, a JSON header, then the raw tensor bytes.
// Every header field is checked against the file before a byte of tensor data is touched.
#include "source.h"

#include <reel/output_file.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>

namespace reel::weights {

namespace fs = std::filesystem;

namespace {

// A stored dtype: its width, the dtype a read gives, and how the bytes become that dtype.
enum class Widen { none, u16, u32, u64, f8_e4m3, f8_e5m2 };
struct StoredType {
  int bytes;
  at::ScalarType read_as;
  Widen widen = Widen::none;
};

std::optional<StoredType> stored_type(const std::string& name) {
  static const std::map<std::string, StoredType> types{
      {"BOOL", {1, at::kBool}},          {"U8", {1, at::kByte}},
      {"I8", {1, at::kChar}},            {"I16", {2, at::kShort}},
      {"U16", {2, at::kInt, Widen::u16}}, {"I32", {4, at::kInt}},
      {"U32", {4, at::kLong, Widen::u32}}, {"I64", {8, at::kLong}},
      {"U64", {8, at::kLong, Widen::u64}}, {"F16", {2, at::kHalf}},
      {"BF16", {2, at::kBFloat16}},       {"F32", {4, at::kFloat}},
      {"F64", {8, at::kDouble}},          {"F8_E4M3", {1, at::kFloat, Widen::f8_e4m3}},
      {"F8_E5M2", {1, at::kFloat, Widen::f8_e5m2}},
  };
  auto it = types.find(name);
  if (it == types.end()) return std::nullopt;
  return it->second;
}

const char* stored_name(at::ScalarType type) {
  switch (type) {
    case at::kBool: return "BOOL";
    case at::kByte: return "U8";
    case at::kChar: return "I8";
    case at::kShort: return "I16";
    case at::kInt: return "I32";
    case at::kLong: return "I64";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kFloat: return "F32";
    case at::kDouble: return "F64";
    default: return nullptr;
  }
}

float f8_e4m3_value(std::uint8_t b) {
  int sign = b >> 7, exponent = (b >> 3) & 0xF, mantissa = b & 7;
  float v;
  if (exponent == 0xF && mantissa == 7)
    v = NAN;
  else if (exponent == 0)
    v = std::ldexp(static_cast<float>(mantissa) / 8.0f, -6);
  else
    v = std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
  return sign ? -v : v;
}

float f8_e5m2_value(std::uint8_t b) {
  // E5M2 is the upper byte of an IEEE half.
  std::uint16_t half = static_cast<std::uint16_t>(b) << 8;
  return static_cast<float>(c10::Half(half, c10::Half::from_bits()));
}

template <typename From, typename To>
void widen_copy(const std::uint8_t* src, To* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    From v;
    std::memcpy(&v, src + i * sizeof(From), sizeof(From));
    dst[i] = static_cast<To>(v);
  }
}

struct Entry {
  const std::uint8_t* bytes;
  StoredType type;
  std::string stored;
};

class SafetensorsSource : public Checkpoint::Source {
 public:
  std::shared_ptr<MappedFile> file;
  std::vector<Entry> entries;

  at::Tensor read(std::size_t i) const override {
    const auto& record = records[i];
    const auto& entry = entries[i];
    if (entry.type.widen == Widen::none) return view_bytes(file, entry.bytes, record.shape, record.dtype);
    at::Tensor out = at::empty(record.shape, at::TensorOptions().dtype(record.dtype));
    std::int64_t n = out.numel();
    switch (entry.type.widen) {
      case Widen::u16: widen_copy<std::uint16_t>(entry.bytes, out.data_ptr<std::int32_t>(), n); break;
      case Widen::u32: widen_copy<std::uint32_t>(entry.bytes, out.data_ptr<std::int64_t>(), n); break;
      case Widen::u64: {
        auto* dst = out.data_ptr<std::int64_t>();
        for (std::int64_t k = 0; k < n; ++k) {
          std::uint64_t v;
          std::memcpy(&v, entry.bytes + k * 8, 8);
          if (v > static_cast<std::uint64_t>(INT64_MAX))
            refuse(path, "tensor '" + record.name + "' (U64) holds " + std::to_string(v) +
                             ", beyond the signed 64-bit range libtorch stores U64 in");
          dst[k] = static_cast<std::int64_t>(v);
        }
        break;
      }
      case Widen::f8_e4m3:
      case Widen::f8_e5m2: {
        auto* dst = out.data_ptr<float>();
        for (std::int64_t k = 0; k < n; ++k)
          dst[k] = entry.type.widen == Widen::f8_e4m3 ? f8_e4m3_value(entry.bytes[k]) : f8_e5m2_value(entry.bytes[k]);
        break;
      }
      case Widen::none: break;
    }
    return out;
  }
};

constexpr std::uint64_t max_header_bytes = 100ull << 20;

}  // namespace

std::shared_ptr<const Checkpoint::Source> open_safetensors(const fs::path& path) {
  auto source = std::make_shared<SafetensorsSource>();
  source->path = path;
  source->format = "safetensors";
  source->file = MappedFile::open(path);
  const auto& file = *source->file;
  if (file.size() < 8) refuse(path, "is too short to be a safetensors file (" + std::to_string(file.size()) + " bytes)");
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | file.data()[i];
  if (header_size > max_header_bytes)
    refuse(path, "safetensors header claims " + std::to_string(header_size) + " bytes, more than the 100 MiB reel accepts");
  if (header_size > file.size() - 8)
    refuse(path, "safetensors header claims " + std::to_string(header_size) + " bytes but the file has " +
                     std::to_string(file.size()) + " bytes (truncated or not safetensors)");
  const char* text = reinterpret_cast<const char*>(file.data() + 8);
  nlohmann::json header = nlohmann::json::parse(text, text + header_size, nullptr, false);
  if (header.is_discarded() || !header.is_object()) refuse(path, "safetensors header is not a JSON object");

  const std::uint8_t* data = file.data() + 8 + header_size;
  const std::uint64_t data_size = file.size() - 8 - header_size;
  struct Placed {
    std::uint64_t begin, end;
    std::string name;
  };
  std::vector<Placed> placed;
  std::map<std::string, std::pair<TensorRecord, Entry>> parsed;
  for (const auto& item : header.items()) {
    const std::string& name = item.key();
    const nlohmann::json& info = item.value();
    if (name == "__metadata__") continue;
    auto bad = [&](const std::string& why) { refuse(path, "tensor '" + name + "': " + why); };
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      bad("entry must have dtype, shape and data_offsets");
    if (!info["dtype"].is_string()) bad("dtype is not a string");
    auto type = stored_type(info["dtype"].get<std::string>());
    if (!type) bad("dtype '" + info["dtype"].get<std::string>() + "' is not one reel reads");
    std::vector<std::int64_t> shape;
    if (!info["shape"].is_array()) bad("shape is not a list");
    for (const auto& d : info["shape"]) {
      if (!d.is_number_integer() || d.get<std::int64_t>() < 0) bad("shape must be a list of non-negative integers");
      shape.push_back(d.get<std::int64_t>());
    }
    const auto& offsets = info["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      bad("data_offsets must be two non-negative integers");
    std::uint64_t begin = offsets[0], end = offsets[1];
    if (begin > end || end > data_size)
      bad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] lie outside the " +
          std::to_string(data_size) + " data bytes");
    std::int64_t numel = checked_numel(shape);
    // Compared by division: numel * bytes could wrap around 2^64.
    if (numel < 0 || (end - begin) % type->bytes != 0 || static_cast<std::uint64_t>(numel) != (end - begin) / type->bytes)
      bad("shape " + shape_text(shape) + " of " + info["dtype"].get<std::string>() + " needs a different size than its " +
          std::to_string(end - begin) + " bytes");
    placed.push_back({begin, end, name});
    parsed.emplace(name, std::make_pair(TensorRecord{name, type->read_as, shape, "tensor '" + name + "'"},
                                        Entry{data + begin, *type, info["dtype"].get<std::string>()}));
  }
  std::sort(placed.begin(), placed.end(), [](const Placed& a, const Placed& b) { return a.begin < b.begin; });
  const Placed* furthest = nullptr;  // the tensor reaching furthest so far
  for (const auto& p : placed) {
    if (p.end == p.begin) continue;
    if (furthest && p.begin < furthest->end)
      refuse(path, "tensors '" + furthest->name + "' and '" + p.name + "' overlap in the file");
    if (!furthest || p.end > furthest->end) furthest = &p;
  }
  for (const auto& p : placed) {
    auto& [record, entry] = parsed.at(p.name);
    source->records.push_back(std::move(record));
    source->entries.push_back(entry);
  }
  return source;
}

namespace {

// A sharded model: every tensor read from the shard the index names.
class ShardedSource : public Checkpoint::Source {
 public:
  std::vector<Checkpoint> shards;
  std::vector<std::pair<std::size_t, std::size_t>> where;  // shard, tensor within it
  at::Tensor read(std::size_t i) const override { return shards[where[i].first].read(where[i].second); }
};

}  // namespace

std::shared_ptr<const Checkpoint::Source> open_safetensors_index(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw IoError(path.string(), "cannot open the file");
  nlohmann::json index = nlohmann::json::parse(in, nullptr, false);
  if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    refuse(path, "is not a safetensors index (a JSON object with a \"weight_map\")");
  auto source = std::make_shared<ShardedSource>();
  source->path = path;
  source->format = "safetensors";
  std::map<std::string, std::size_t> shard_of_file;
  std::map<std::string, std::string> wanted;  // tensor -> shard file
  for (const auto& [tensor, file] : index["weight_map"].items()) {
    if (!file.is_string()) refuse(path, "weight_map entry '" + tensor + "' does not name a file");
    std::string name = file.get<std::string>();
    if (name.find('/') != std::string::npos || name == "..")
      refuse(path, "shard '" + name + "' is not a file name beside the index");
    wanted[tensor] = name;
    if (!shard_of_file.count(name)) {
      shard_of_file[name] = source->shards.size();
      source->shards.push_back(Checkpoint(open_safetensors(path.parent_path() / name)));
    }
  }
  for (const auto& [file, s] : shard_of_file) {
    const auto& shard = source->shards[s];
    for (std::size_t t = 0; t < shard.tensors().size(); ++t) {
      const auto& record = shard.tensors()[t];
      auto it = wanted.find(record.name);
      if (it == wanted.end() || it->second != file) continue;
      source->records.push_back(record);
      source->where.emplace_back(s, t);
      wanted.erase(it);
    }
  }
  if (!wanted.empty())
    refuse(path, "tensor '" + wanted.begin()->first + "' is listed in shard '" + wanted.begin()->second +
                     "', which does not contain it");
  return source;
}

void save_safetensors(const fs::path& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      bool overwrite) {
  OutputFile output(path, overwrite);
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::vector<at::Tensor> contiguous;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    try {
      (void)nlohmann::json(name).dump();  // throws on invalid UTF-8
    } catch (const nlohmann::json::type_error&) {
      throw BadInputError("tensor name '" + name + "' is not valid UTF-8, which safetensors requires");
    }
    const char* stored = stored_name(tensor.scalar_type());
    if (!stored) throw Error(ErrorKind::internal, "tensor '" + name + "' has a dtype safetensors cannot hold");
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    header[name] = {{"dtype", stored},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + static_cast<std::uint64_t>(t.nbytes())}}};
    offset += t.nbytes();
    contiguous.push_back(std::move(t));
  }
  std::string text = header.dump();
  text.append((8 - (text.size() % 8)) % 8, ' ');  // tensor data starts 8-byte aligned
  std::ofstream out(output.temporary(), std::ios::binary);
  std::uint64_t size = text.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((size >> (8 * i)) & 0xFF));
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : contiguous) out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  out.close();
  if (!out) throw IoError(output.temporary().string(), "writing failed (disk full?)");
  output.commit();
}

}  // namespace reel::weights
