#pragma once
// The weights library: checkpoint files to named tensors, for every model plugin.
//
// Formats, recognised by their content (never by extension alone):
//   safetensors   memory-mapped; a tensor is read on first use; sharded models through their
//                 `*.safetensors.index.json`. A header that lies is refused, never read past.
//   PyTorch       the zip format of torch.save (.pth, .pt, .ckpt, .pkl, pytorch_model.bin), read by a
//                 restricted unpickler that knows exactly what torch.save emits and refuses any other
//                 global or opcode by name. It never executes anything from the file.
//   ncnn          a `.param` text graph and its `.bin` (the -ncnn-vulkan model collections). ncnn
//                 names no tensors: they come in file order, and `match` assigns them to a network's
//                 keys by position and shape.
// Every error is a BadInputError (IoError for unreadable files) whose text names the file and,
// where there is one, the tensor or layer.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace reel::weights {

struct TensorRecord {
  std::string name;  // safetensors / PyTorch: the key; ncnn: "<layer>.weight", "<layer>.bias"
  at::ScalarType dtype = at::kFloat;  // the dtype a read gives (stored dtype, or its exact widening)
  std::vector<std::int64_t> shape;
  std::string origin;  // for messages: "tensor 'x'" or "layer 12 'Conv_4' (Convolution)"
};

// One opened checkpoint. Cheap to copy (shares the mapping); thread-safe to read.
class Checkpoint {
 public:
  class Source;  // a format's reader
  explicit Checkpoint(std::shared_ptr<const Source> source);

  const std::filesystem::path& path() const noexcept;
  const std::string& format() const noexcept;  // "safetensors", "pytorch", "ncnn"
  // True when tensors have names; false for ncnn (file order only).
  bool keyed() const noexcept;
  // Every tensor, in file order.
  const std::vector<TensorRecord>& tensors() const noexcept;
  // Reads tensor `i` of tensors() (CPU). For safetensors and PyTorch it may share the file's
  // mapping: treat it as read-only and copy it where it must live.
  at::Tensor read(std::size_t i) const;
  std::uint64_t parameter_count() const noexcept;

 private:
  std::shared_ptr<const Source> source_;
};

// Opens any supported checkpoint. `path` may be a safetensors file, a sharded model's
// `.safetensors.index.json`, a PyTorch zip checkpoint, or an ncnn `.param` / `.bin` (the other half
// is found beside it). Throws IoError (missing, unreadable) or BadInputError (not a checkpoint, a
// legacy PyTorch file, a lying header, a forbidden pickle global...).
Checkpoint open_checkpoint(const std::filesystem::path& path);

// True for a TorchScript archive (torch.jit.save), which is a program, not a checkpoint.
bool is_torchscript(const std::filesystem::path& path);

// What a network expects: its parameter and buffer names and shapes, in registration order.
using Expected = std::vector<std::pair<std::string, std::vector<std::int64_t>>>;

// Assigns the checkpoint's tensors to `expected`, in `expected`'s order, or throws one
// BadInputError that lists every problem (`what` names the network in it).
// Keyed checkpoints: the wrappers `params_ema.`, `params.`, `state_dict.` (first found wins) and a
// `module.` prefix are removed, then names must match exactly: missing, unexpected and wrong-shape
// keys are all reported. ncnn: tensors are matched in order and the first layer whose shape
// differs is named.
std::vector<std::pair<std::string, at::Tensor>> match(const Checkpoint& checkpoint, const Expected& expected,
                                                      const std::string& what);

// The names a keyed checkpoint's tensors have once the wrappers above are removed; entries that
// belong to none of them when a wrapper exists are left out (an empty string).
std::vector<std::string> normalized_names(const Checkpoint& checkpoint);

// Writes tensors as one safetensors file (contiguous, little-endian, in the given order) through a
// temporary file renamed on success. Throws IoError.
void save_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      bool overwrite);

// ---- model names ----

// Folders where model names are looked up: those set by the host (--models-dir), then
// REEL_MODELS_PATH (colon-separated).
void set_model_dirs(std::vector<std::filesystem::path> dirs);
std::vector<std::filesystem::path> model_dirs();

// A `model` parameter: an existing path is taken as it is; otherwise the name is looked up in
// model_dirs() as given and with each known extension (.safetensors, .pth, .pt, .ckpt, .param...).
// Throws InvalidParamError(param) listing every place it looked.
std::filesystem::path resolve_model(const std::string& name, const std::string& param = "model");

// The file extensions checkpoints have (".safetensors", ".pth", ".param", ...).
const std::vector<std::string>& checkpoint_extensions();

}  // namespace reel::weights
