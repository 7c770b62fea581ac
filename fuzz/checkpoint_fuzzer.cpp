// libFuzzer target: checkpoint files, as untrusted input. Everything the weights library does
// with a file a user downloaded runs: recognising the format, the safetensors header and index,
// the PyTorch zip directory and its restricted unpickler, the ncnn .param text and .bin layout,
// reading every tensor (each byte is copied, so a view past the data is caught), and matching
// against a network. The files are read into exact-size heap blocks in this build
// (REEL_WEIGHTS_HEAP_FILES), so AddressSanitizer sees a read one byte past the end.
//
// The first byte chooses the files written from the rest of the input:
//   0  one file, `model.ckpt` (the format is recognised from its content)
//   1  ncnn: `model.param` (the text up to the first NUL) and `model.bin` (the bytes after it)
//   2  a sharded safetensors model: `model.safetensors.index.json` (up to the first NUL) and
//      `shard.safetensors` (the bytes after it)
// A reel::Error is the expected answer to a bad file; anything else (a crash, a leak, undefined
// behaviour, another exception type such as std::stol's) is a bug.
#include <reel/error.h>
#include <reel/weights.h>

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const fs::path& scratch() {
  static const fs::path dir = [] {
    std::string pattern = (fs::temp_directory_path() / "reel-checkpoint-fuzz-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) std::abort();
    return fs::path(pattern);
  }();
  return dir;
}

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) std::abort();
}

// Every byte of every tensor goes through an instrumented copy.
void read_all(const reel::weights::Checkpoint& checkpoint) {
  std::vector<std::uint8_t> sink;
  for (std::size_t i = 0; i < checkpoint.tensors().size(); ++i) {
    at::Tensor t = checkpoint.read(i).contiguous();
    if (t.scalar_type() != checkpoint.tensors()[i].dtype || t.sizes().vec() != checkpoint.tensors()[i].shape) {
      std::fprintf(stderr, "tensor %zu read differs from its record\n", i);
      std::abort();
    }
    sink.resize(t.nbytes());
    if (t.nbytes()) std::memcpy(sink.data(), t.data_ptr(), t.nbytes());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t split = rest.find('\0');
  const std::string first = rest.substr(0, split);
  const std::string second = split == std::string::npos ? std::string() : rest.substr(split + 1);

  // The files of one input live only while it runs (libFuzzer ends the process with _Exit, so
  // the empty folder stays; scripts/fuzz points TMPDIR into build-fuzz/).
  struct Cleanup {
    ~Cleanup() {
      for (const auto& entry : fs::directory_iterator(scratch())) fs::remove(entry.path());
    }
  } cleanup;
  fs::path open_path;
  if (mode == 0) {
    open_path = scratch() / "model.ckpt";
    write(open_path, rest);
  } else if (mode == 1) {
    open_path = scratch() / "model.param";
    write(open_path, first);
    write(scratch() / "model.bin", second);
  } else {
    open_path = scratch() / "model.safetensors.index.json";
    write(open_path, first);
    write(scratch() / "shard.safetensors", second);
  }
  try {
    const reel::weights::Checkpoint checkpoint = reel::weights::open_checkpoint(open_path);
    (void)checkpoint.parameter_count();
    (void)reel::weights::normalized_names(checkpoint);
    read_all(checkpoint);
    // A network with two tensors: matching reports every difference or hands out the tensors.
    const reel::weights::Expected expected{{"conv.weight", {4, 3, 3, 3}}, {"conv.bias", {4}}};
    for (const auto& [key, tensor] : reel::weights::match(checkpoint, expected, "the fuzz network"))
      (void)tensor.sum();
  } catch (const reel::Error&) {
  }
  return 0;
}
