#pragma once
// What each checkpoint format's reader implements, and the read-only file mapping they share.
#include <reel/error.h>
#include <reel/weights.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace reel::weights {

// A whole file mapped read-only (copy-on-write, so a stray write never reaches the file).
// Tensors that view it keep it alive through a shared_ptr.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);  // throws IoError
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const noexcept { return data_; }
  std::uint64_t size() const noexcept { return size_; }
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  std::uint8_t* data_ = nullptr;
  std::uint64_t size_ = 0;
};

class Checkpoint::Source {
 public:
  virtual ~Source() = default;
  std::filesystem::path path;
  std::string format;
  bool keyed = true;
  std::vector<TensorRecord> records;
  virtual at::Tensor read(std::size_t i) const = 0;
};

// A CPU tensor over `bytes` of `file` (kept alive by the tensor). Copies when the bytes are not
// aligned for the dtype.
at::Tensor view_bytes(const std::shared_ptr<MappedFile>& file, const std::uint8_t* bytes,
                      const std::vector<std::int64_t>& shape, at::ScalarType dtype);

// "[3, 64, 3, 3]"
std::string shape_text(const std::vector<std::int64_t>& shape);

// Element count of `shape`, or -1 when a dimension is negative or the count overflows 2^62.
std::int64_t checked_numel(const std::vector<std::int64_t>& shape);

[[noreturn]] void refuse(const std::filesystem::path& path, const std::string& why, const std::string& hint = {});

std::shared_ptr<const Checkpoint::Source> open_safetensors(const std::filesystem::path& path);
std::shared_ptr<const Checkpoint::Source> open_safetensors_index(const std::filesystem::path& path);
std::shared_ptr<const Checkpoint::Source> open_pytorch(const std::filesystem::path& path);
std::shared_ptr<const Checkpoint::Source> open_ncnn(const std::filesystem::path& param, const std::filesystem::path& bin);

}  // namespace reel::weights
