// Opening a checkpoint by its content, matching its tensors to a network, model folders.
#include "source.h"

#include <reel/error.h>

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

namespace reel::weights {

namespace fs = std::filesystem;

// ---- shared helpers ----

std::shared_ptr<MappedFile> MappedFile::open(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(path.string(), std::string("cannot open the file: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(path.string(), "not a regular file");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<std::uint64_t>(st.st_size);
  if (file->size_ > 0) {
#ifdef REEL_WEIGHTS_HEAP_FILES
    // Fuzzing builds: the file is read into a heap block of exactly its size, so that
    // AddressSanitizer reports any read past its end (a mapping rounds up to whole pages of zeros,
    // which would hide a reader that trusts a length it should have checked).
    file->data_ = static_cast<std::uint8_t*>(std::malloc(file->size_));
    std::uint64_t done = 0;
    while (file->data_ && done < file->size_) {
      ssize_t n = ::read(fd, file->data_ + done, file->size_ - done);
      if (n <= 0) break;
      done += static_cast<std::uint64_t>(n);
    }
    if (done != file->size_) {
      ::close(fd);
      throw IoError(path.string(), "cannot read the file");
    }
#else
    void* p = ::mmap(nullptr, file->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw IoError(path.string(), std::string("cannot map the file: ") + std::strerror(err));
    }
    file->data_ = static_cast<std::uint8_t*>(p);
#endif
  }
  ::close(fd);
  return file;
}

MappedFile::~MappedFile() {
#ifdef REEL_WEIGHTS_HEAP_FILES
  std::free(data_);
#else
  if (data_) ::munmap(data_, size_);
#endif
}

at::Tensor view_bytes(const std::shared_ptr<MappedFile>& file, const std::uint8_t* bytes,
                      const std::vector<std::int64_t>& shape, at::ScalarType dtype) {
  auto options = at::TensorOptions().dtype(dtype).device(at::kCPU);
  auto element = static_cast<std::uintptr_t>(c10::elementSize(dtype));
  void* data = const_cast<std::uint8_t*>(bytes);
  if (reinterpret_cast<std::uintptr_t>(bytes) % element != 0) {
    at::Tensor copy = at::empty(shape, options);
    std::memcpy(copy.data_ptr(), bytes, copy.nbytes());
    return copy;
  }
  std::shared_ptr<MappedFile> keep = file;
  return at::from_blob(data, shape, [keep](void*) mutable { keep.reset(); }, options);
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

std::int64_t checked_numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > (std::int64_t{1} << 62) / d) return -1;
    n *= d;
  }
  return n;
}

void refuse(const fs::path& path, const std::string& why, const std::string& hint) {
  throw BadInputError("checkpoint " + path.string() + ": " + why, hint);
}

// ---- Checkpoint ----

Checkpoint::Checkpoint(std::shared_ptr<const Source> source) : source_(std::move(source)) {}
const fs::path& Checkpoint::path() const noexcept { return source_->path; }
const std::string& Checkpoint::format() const noexcept { return source_->format; }
bool Checkpoint::keyed() const noexcept { return source_->keyed; }
const std::vector<TensorRecord>& Checkpoint::tensors() const noexcept { return source_->records; }
at::Tensor Checkpoint::read(std::size_t i) const {
  if (i >= source_->records.size()) throw std::out_of_range("Checkpoint::read: no tensor " + std::to_string(i));
  return source_->read(i);
}
std::uint64_t Checkpoint::parameter_count() const noexcept {
  std::uint64_t n = 0;
  for (const auto& r : source_->records) n += static_cast<std::uint64_t>(checked_numel(r.shape));
  return n;
}

namespace {

std::string read_head(const fs::path& path, std::size_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path.string(), std::string("cannot open the file: ") + std::strerror(errno));
  std::string head(n, '\0');
  in.read(head.data(), static_cast<std::streamsize>(n));
  head.resize(static_cast<std::size_t>(in.gcount()));
  return head;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

Checkpoint open_checkpoint(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw IoError(path.string(), "no such file");
  if (fs::is_directory(path, ec)) throw IoError(path.string(), "is a folder, not a checkpoint file");
  const std::string name = path.filename().string();
  if (ends_with(name, ".index.json")) return Checkpoint(open_safetensors_index(path));

  const std::string head = read_head(path, 16);
  if (head.rfind("PK\x03\x04", 0) == 0) {
    if (is_torchscript(path))
      refuse(path, "is a TorchScript program (torch.jit.save), not a checkpoint of weights",
             "use it where a TorchScript module is accepted, or save the model's state_dict() instead");
    return Checkpoint(open_pytorch(path));
  }
  if (head.rfind("7767517", 0) == 0) return Checkpoint(open_ncnn(path, fs::path(path).replace_extension(".bin")));
  if (path.extension() == ".bin") {
    fs::path param = fs::path(path).replace_extension(".param");
    if (fs::exists(param, ec)) return Checkpoint(open_ncnn(param, path));
  }
  // safetensors first: its 8-byte little-endian header length may well start with 0x80 (a
  // header of 49,280 bytes does), which is also how a pickle starts.
  if (head.size() >= 9 && head[8] == '{') return Checkpoint(open_safetensors(path));
  // A pre-1.6 torch.save file is a bare pickle: PROTO (0x80) and a protocol number.
  if (head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x80 && head[1] >= 1 && head[1] <= 5)
    refuse(path, "is in the legacy format of PyTorch before 1.6, which reel does not read",
           "re-save it with a current PyTorch: torch.save(torch.load('old.pth'), 'new.pth')");
  refuse(path, "is not a checkpoint reel reads (safetensors, a PyTorch zip checkpoint, or ncnn .param/.bin)");
}

// ---- matching ----

std::vector<std::string> normalized_names(const Checkpoint& checkpoint) {
  std::vector<std::string> names;
  for (const auto& r : checkpoint.tensors()) names.push_back(r.name);
  if (!checkpoint.keyed()) return names;
  for (const std::string wrapper : {"params_ema.", "params.", "state_dict."}) {
    bool found = std::any_of(names.begin(), names.end(), [&](const auto& n) { return n.rfind(wrapper, 0) == 0; });
    if (!found) continue;
    for (auto& n : names) n = n.rfind(wrapper, 0) == 0 ? n.substr(wrapper.size()) : std::string();
    break;
  }
  for (auto& n : names)
    if (n.rfind("module.", 0) == 0) n = n.substr(7);
  return names;
}

namespace {

std::string list_text(const std::vector<std::string>& items, std::size_t limit = 8) {
  std::string text;
  for (std::size_t i = 0; i < items.size() && i < limit; ++i) text += (i ? ", " : "") + items[i];
  if (items.size() > limit) text += " and " + std::to_string(items.size() - limit) + " more";
  return text;
}

std::vector<std::pair<std::string, at::Tensor>> match_by_position(const Checkpoint& checkpoint,
                                                                  const Expected& expected, const std::string& what) {
  const auto& records = checkpoint.tensors();
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& [key, shape] = expected[i];
    if (i >= records.size())
      refuse(checkpoint.path(), "ends after " + std::to_string(records.size()) + " tensors, but " + what + " has " +
                                    std::to_string(expected.size()) + "; the first one missing is " + key + " " +
                                    shape_text(shape),
             "this file holds a different network");
    if (records[i].shape != shape)
      refuse(checkpoint.path(), records[i].origin + " does not match " + what + ": it holds " + records[i].name + " " +
                                    shape_text(records[i].shape) + " where " + key + " " + shape_text(shape) +
                                    " is expected",
             "this file holds a different network or size");
    out.emplace_back(key, checkpoint.read(i));
  }
  if (records.size() > expected.size())
    refuse(checkpoint.path(), "has " + std::to_string(records.size()) + " tensors but " + what + " has only " +
                                  std::to_string(expected.size()) + "; the first extra one is " +
                                  records[expected.size()].origin,
           "this file holds a different network or size");
  return out;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> match(const Checkpoint& checkpoint, const Expected& expected,
                                                      const std::string& what) {
  if (!checkpoint.keyed()) return match_by_position(checkpoint, expected, what);
  const auto names = normalized_names(checkpoint);
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (!names[i].empty() && !index.emplace(names[i], i).second)
      refuse(checkpoint.path(), "has two tensors that both mean '" + names[i] + "' (" +
                                    checkpoint.tensors()[index[names[i]]].name + " and " + checkpoint.tensors()[i].name +
                                    ")");

  std::vector<std::string> missing, wrong_shape, unexpected;
  std::set<std::string> wanted;
  for (const auto& [key, shape] : expected) {
    wanted.insert(key);
    auto it = index.find(key);
    if (it == index.end())
      missing.push_back(key);
    else if (checkpoint.tensors()[it->second].shape != shape)
      wrong_shape.push_back(key + " is " + shape_text(checkpoint.tensors()[it->second].shape) + ", expected " +
                            shape_text(shape));
  }
  for (const auto& [key, i] : index)
    if (!wanted.count(key)) unexpected.push_back(key);
  if (!missing.empty() || !wrong_shape.empty() || !unexpected.empty()) {
    std::string why = "does not match " + what + ":";
    if (!missing.empty()) why += " missing " + std::to_string(missing.size()) + " (" + list_text(missing) + ");";
    if (!unexpected.empty())
      why += " unexpected " + std::to_string(unexpected.size()) + " (" + list_text(unexpected) + ");";
    if (!wrong_shape.empty())
      why += " wrong shape " + std::to_string(wrong_shape.size()) + " (" + list_text(wrong_shape, 4) + ");";
    why.pop_back();
    refuse(checkpoint.path(), why, "this file holds a different network, size or variant");
  }
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.reserve(expected.size());
  for (const auto& [key, shape] : expected) out.emplace_back(key, checkpoint.read(index.at(key)));
  return out;
}

// ---- model folders ----

namespace {
std::mutex dirs_mutex;
std::vector<fs::path> host_dirs;
}  // namespace

void set_model_dirs(std::vector<fs::path> dirs) {
  std::lock_guard lock(dirs_mutex);
  host_dirs = std::move(dirs);
}

std::vector<fs::path> model_dirs() {
  std::vector<fs::path> dirs;
  {
    std::lock_guard lock(dirs_mutex);
    dirs = host_dirs;
  }
  if (const char* env = std::getenv("REEL_MODELS_PATH")) {
    std::stringstream list(env);
    std::string dir;
    while (std::getline(list, dir, ':'))
      if (!dir.empty()) dirs.emplace_back(dir);
  }
  return dirs;
}

const std::vector<std::string>& checkpoint_extensions() {
  static const std::vector<std::string> extensions{".safetensors", ".pth", ".pt", ".ckpt", ".pkl", ".bin", ".param"};
  return extensions;
}

fs::path resolve_model(const std::string& name, const std::string& param) {
  std::error_code ec;
  if (name.empty()) throw InvalidParamError(param, "no model given", "set it to a checkpoint path or a model name");
  if (fs::is_regular_file(name, ec)) return fs::path(name);
  std::vector<std::string> looked{fs::absolute(name, ec).string()};
  const auto dirs = model_dirs();
  bool has_slash = name.find('/') != std::string::npos;
  if (!has_slash) {
    for (const auto& dir : dirs) {
      fs::path base = dir / name;
      if (fs::is_regular_file(base, ec)) return base;
      std::string tried = base.string() + "{";
      for (const auto& ext : checkpoint_extensions()) {
        fs::path candidate = dir / (name + ext);
        if (fs::is_regular_file(candidate, ec)) return candidate;
        tried += ext + (&ext == &checkpoint_extensions().back() ? "}" : ",");
      }
      looked.push_back(tried);
    }
  }
  std::string where;
  for (const auto& l : looked) where += "\n  " + l;
  throw InvalidParamError(param, "model '" + name + "' was not found; looked in:" + where,
                          dirs.empty() ? "give a path, or a model folder with --models-dir or REEL_MODELS_PATH"
                                       : "give a path, or put the file in one of the model folders");
}

}  // namespace reel::weights
