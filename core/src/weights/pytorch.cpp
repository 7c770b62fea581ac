// PyTorch checkpoints (torch.save since 1.6): a zip archive, stored uncompressed, holding
// `<name>/data.pkl` (a pickle) and one `<name>/data/<key>` entry per storage.
//
// The pickle is read by a restricted unpickler: a stack machine that knows the opcodes torch.save
// emits and the handful of globals it names (tensor rebuild functions, storage types,
// OrderedDict). Any other global or opcode is refused by name. Nothing from the file is ever
// executed, imported or called.
#include "source.h"

#include <ATen/ATen.h>

#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <variant>

namespace reel::weights {

namespace fs = std::filesystem;

namespace {

// ---- zip ----

struct ZipEntry {
  std::string name;
  const std::uint8_t* data = nullptr;
  std::uint64_t size = 0;
  bool compressed = false;  // torch.save stores every entry; a compressed one is refused when read
};

class Zip {
 public:
  explicit Zip(std::shared_ptr<MappedFile> file) : file_(std::move(file)) { read_directory(); }
  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const {
    if (auto it = index_.find(name); it != index_.end()) {
      const ZipEntry& e = entries_[it->second];
      if (e.compressed)
        refuse(file_->path(), "zip entry '" + name + "' is compressed; torch.save stores entries uncompressed",
               "re-save it with torch.save");
      return &e;
    }
    return nullptr;
  }
  const std::shared_ptr<MappedFile>& file() const { return file_; }

 private:
  std::uint64_t u(std::uint64_t at, int bytes) const {
    if (at > file_->size() || static_cast<std::uint64_t>(bytes) > file_->size() - at)
      bad("a zip record lies past the end of the file");
    std::uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | file_->data()[at + i];
    return v;
  }
  [[noreturn]] void bad(const std::string& why) const {
    refuse(file_->path(), "is not a readable PyTorch zip archive: " + why + " (truncated or damaged?)");
  }

  void read_directory() {
    const std::uint64_t size = file_->size();
    if (size < 22) bad("too short");
    std::uint64_t eocd = size - 22;
    const std::uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
    while (u(eocd, 4) != 0x06054b50) {
      if (eocd == lowest) bad("no end-of-directory record");
      --eocd;
    }
    std::uint64_t count = u(eocd + 10, 2), dir_size = u(eocd + 12, 4), dir_offset = u(eocd + 16, 4);
    if (eocd >= 20 && u(eocd - 20, 4) == 0x07064b50) {  // zip64
      std::uint64_t record = u(eocd - 20 + 8, 8);
      if (u(record, 4) != 0x06064b50) bad("broken zip64 record");
      count = u(record + 32, 8), dir_size = u(record + 40, 8), dir_offset = u(record + 48, 8);
    }
    if (dir_offset > size || dir_size > size - dir_offset || count > dir_size / 46 + 1) bad("directory out of range");
    std::uint64_t at = dir_offset;
    for (std::uint64_t i = 0; i < count; ++i) {
      if (u(at, 4) != 0x02014b50) bad("broken directory entry");
      std::uint64_t method = u(at + 10, 2), compressed = u(at + 20, 4), plain = u(at + 24, 4);
      std::uint64_t name_len = u(at + 28, 2), extra_len = u(at + 30, 2), comment_len = u(at + 32, 2);
      std::uint64_t local = u(at + 42, 4);
      if (at + 46 + name_len > size) bad("directory entry past the end");
      std::string name(reinterpret_cast<const char*>(file_->data() + at + 46), name_len);
      // zip64 extra field: 64-bit values for the fields saturated above, in this order.
      for (std::uint64_t e = at + 46 + name_len; e + 4 <= at + 46 + name_len + extra_len;) {
        std::uint64_t id = u(e, 2), len = u(e + 2, 2), p = e + 4;
        if (id == 1) {
          if (plain == 0xFFFFFFFF) plain = u(p, 8), p += 8;
          if (compressed == 0xFFFFFFFF) compressed = u(p, 8), p += 8;
          if (local == 0xFFFFFFFF) local = u(p, 8), p += 8;
        }
        e += 4 + len;
      }
      if (u(local, 4) != 0x04034b50) bad("broken local header of '" + name + "'");
      std::uint64_t data = local + 30 + u(local + 26, 2) + u(local + 28, 2);
      if (data > size || compressed > size - data) bad("entry '" + name + "' lies past the end");
      index_.emplace(name, entries_.size());
      entries_.push_back({name, file_->data() + data, compressed, method != 0});
      at += 46 + name_len + extra_len + comment_len;
    }
  }

  std::shared_ptr<MappedFile> file_;
  std::vector<ZipEntry> entries_;
  std::map<std::string, std::size_t> index_;
};

// ---- values of the restricted unpickler ----

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct StorageRef {
  at::ScalarType dtype;
  std::string key;
  std::int64_t numel;
};
struct TensorRef {
  StorageRef storage;
  std::int64_t offset;
  std::vector<std::int64_t> size, stride;
};
struct Global {
  std::string name;  // "module.name"
};
struct Mark {};
using List = std::vector<ValuePtr>;
struct Tuple {
  std::vector<ValuePtr> items;
};
using Dict = std::vector<std::pair<ValuePtr, ValuePtr>>;
struct Bytes {
  std::string data;
};

struct Value {
  std::variant<std::monostate, bool, std::int64_t, double, std::string, Bytes, Tuple, List, Dict, Global, StorageRef,
               TensorRef, Mark>
      v;
  // Iterative: a hostile pickle can nest a million lists, whose recursive destruction would
  // overflow the stack.
  ~Value();
};

void take_children(Value& value, std::vector<ValuePtr>& into) {
  if (auto* list = std::get_if<List>(&value.v)) {
    for (auto& item : *list) into.push_back(std::move(item));
    list->clear();
  } else if (auto* tuple = std::get_if<Tuple>(&value.v)) {
    for (auto& item : tuple->items) into.push_back(std::move(item));
    tuple->items.clear();
  } else if (auto* dict = std::get_if<Dict>(&value.v)) {
    for (auto& [key, item] : *dict) into.push_back(std::move(key)), into.push_back(std::move(item));
    dict->clear();
  }
}

Value::~Value() {
  std::vector<ValuePtr> pending;
  take_children(*this, pending);
  while (!pending.empty()) {
    ValuePtr next = std::move(pending.back());
    pending.pop_back();
    if (next && next.use_count() == 1) take_children(*next, pending);
  }
}

template <typename T>
ValuePtr make(T x) { return std::make_shared<Value>(Value{std::move(x)}); }

const std::map<std::string, at::ScalarType>& storage_types() {
  static const std::map<std::string, at::ScalarType> types{
      {"torch.FloatStorage", at::kFloat},   {"torch.HalfStorage", at::kHalf},   {"torch.BFloat16Storage", at::kBFloat16},
      {"torch.DoubleStorage", at::kDouble}, {"torch.LongStorage", at::kLong},   {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},   {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool},     {"torch.UntypedStorage", at::kByte},
  };
  return types;
}

const std::vector<std::string>& allowed_functions() {
  static const std::vector<std::string> functions{"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                                  "torch._utils._rebuild_parameter",
                                                  "torch._utils._rebuild_parameter_with_state"};
  return functions;
}

std::string opcode_name(std::uint8_t op) {
  static const std::map<std::uint8_t, const char*> names{
      {'i', "INST"},    {'o', "OBJ"},       {0x81, "NEWOBJ"},      {0x92, "NEWOBJ_EX"}, {'P', "PERSID"},
      {'I', "INT"},     {'L', "LONG"},      {'S', "STRING"},       {'V', "UNICODE"},    {'F', "FLOAT"},
      {'p', "PUT"},     {'g', "GET"},       {0x82, "EXT1"},        {0x83, "EXT2"},      {0x84, "EXT4"},
      {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"},
      {0x98, "READONLY_BUFFER"}, {'2', "DUP"}, {'U', "SHORT_BINSTRING"}, {'T', "BINSTRING"}};
  auto it = names.find(op);
  char code[8];
  std::snprintf(code, sizeof code, "0x%02x", op);
  return it != names.end() ? std::string(it->second) + " (" + code + ")" : std::string(code);
}

class Unpickler {
 public:
  Unpickler(const fs::path& path, const std::uint8_t* data, std::uint64_t size) : path_(path), p_(data), end_(data + size) {}
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;
  // Through the memo a pickle can APPEND a list to itself (torch.save writes exactly that for a
  // list that holds itself): a cycle of shared pointers that nothing would free. Every list and
  // dict still alive when the unpickler goes is emptied, which breaks any cycle; so the unpickler
  // must outlive every use of what run() returned.
  ~Unpickler() {
    std::vector<ValuePtr> children;
    for (const auto& weak : containers_)
      if (ValuePtr container = weak.lock()) take_children(*container, children);
  }

  ValuePtr run() {
    while (true) {
      std::uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;        // PROTO
        case 0x95: take(8); break;       // FRAME
        case '.': return pop();          // STOP
        case '(': push(make(Mark{})); break;
        case '}': push(make(Dict{})); break;
        case ']': push(make(List{})); break;
        case ')': push(make(Tuple{})); break;
        case 'N': push(make(std::monostate{})); break;
        case 0x88: push(make(true)); break;
        case 0x89: push(make(false)); break;
        case 'J': push(make(static_cast<std::int64_t>(static_cast<std::int32_t>(le(4))))); break;
        case 'K': push(make(static_cast<std::int64_t>(le(1)))); break;
        case 'M': push(make(static_cast<std::int64_t>(le(2)))); break;
        case 0x8a: push(make(long_int(le(1)))); break;
        case 0x8b: push(make(long_int(le(4)))); break;
        case 'G': {
          std::uint64_t bits = 0;
          for (auto b : take(8)) bits = (bits << 8) | static_cast<std::uint8_t>(b);  // big-endian
          double d;
          std::memcpy(&d, &bits, 8);
          push(make(d));
          break;
        }
        case 0x8c: push(make(std::string(take(le(1))))); break;
        case 'X': push(make(std::string(take(le(4))))); break;
        case 0x8d: push(make(std::string(take(le(8))))); break;
        case 'C': push(make(Bytes{std::string(take(le(1)))})); break;
        case 'B': push(make(Bytes{std::string(take(le(4)))})); break;
        case 0x8e: push(make(Bytes{std::string(take(le(8)))})); break;
        case 'q': memo(le(1), top()); break;
        case 'r': memo(le(4), top()); break;
        case 0x94: memo(memo_.size(), top()); break;
        case 'h': push(recall(le(1))); break;
        case 'j': push(recall(le(4))); break;
        case '0': pop(); break;
        case '1': pop_mark(); break;
        case 't': push(make(Tuple{pop_mark()})); break;
        case 0x85: push(make(Tuple{pop_n(1)})); break;
        case 0x86: push(make(Tuple{pop_n(2)})); break;
        case 0x87: push(make(Tuple{pop_n(3)})); break;
        case 'c': {
          std::string module = line(), name = line();
          push(global(module + "." + name));
          break;
        }
        case 0x93: {
          auto name = pop(), module = pop();
          push(global(as<std::string>(module, "STACK_GLOBAL module") + "." + as<std::string>(name, "STACK_GLOBAL name")));
          break;
        }
        case 'a': {
          auto item = pop();
          as<List>(top(), "APPEND target").push_back(item);
          break;
        }
        case 'e': {
          auto items = pop_mark();
          auto& list = as<List>(top(), "APPENDS target");
          list.insert(list.end(), items.begin(), items.end());
          break;
        }
        case 's': {
          auto value = pop(), key = pop();
          as<Dict>(top(), "SETITEM target").emplace_back(key, value);
          break;
        }
        case 'u': {
          auto items = pop_mark();
          if (items.size() % 2) fail("SETITEMS with an odd number of items");
          auto& dict = as<Dict>(top(), "SETITEMS target");
          for (std::size_t i = 0; i < items.size(); i += 2) dict.emplace_back(items[i], items[i + 1]);
          break;
        }
        case 'Q': push(persistent(pop())); break;
        case 'R': {
          auto args = pop(), callable = pop();
          push(reduce(as<Global>(callable, "REDUCE callable").name, as<Tuple>(args, "REDUCE arguments").items));
          break;
        }
        case 'b': {
          pop();  // the state: only OrderedDict's attributes (_metadata), which hold no tensors
          if (!std::holds_alternative<Dict>(top()->v)) fail("BUILD on something other than a dict");
          break;
        }
        default:
          refuse(path_, "its pickle uses opcode " + opcode_name(op) +
                            ", which torch.save does not write for weights; reel refuses it and runs nothing",
                 "load it in Python and save only the state_dict() with torch.save or safetensors");
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { refuse(path_, "its pickle is malformed: " + why); }

  std::uint8_t byte() {
    if (p_ >= end_) fail("it ends before STOP");
    return *p_++;
  }
  std::string_view take(std::uint64_t n) {
    if (n > static_cast<std::uint64_t>(end_ - p_)) fail("a value runs past its end");
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  std::uint64_t le(int n) {
    auto s = take(n);
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
    return v;
  }
  std::int64_t long_int(std::uint64_t n) {
    if (n > 8) fail("an integer wider than 64 bits");
    auto s = take(n);
    std::uint64_t v = 0;
    for (int i = static_cast<int>(n) - 1; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
    if (n > 0 && n < 8 && (static_cast<std::uint8_t>(s[n - 1]) & 0x80)) v |= ~std::uint64_t{0} << (8 * n);
    return static_cast<std::int64_t>(v);
  }
  std::string line() {
    const std::uint8_t* nl = static_cast<const std::uint8_t*>(std::memchr(p_, '\n', end_ - p_));
    if (!nl || nl - p_ > 256) fail("a GLOBAL name without an end");
    std::string s(reinterpret_cast<const char*>(p_), nl - p_);
    p_ = nl + 1;
    return s;
  }

  void push(ValuePtr v) {
    if (stack_.size() > 1'000'000) fail("its stack grows beyond a million values");
    if (std::holds_alternative<List>(v->v) || std::holds_alternative<Dict>(v->v)) containers_.push_back(v);
    stack_.push_back(std::move(v));
  }
  ValuePtr pop() {
    if (stack_.empty() || std::holds_alternative<Mark>(stack_.back()->v)) fail("it pops an empty stack");
    auto v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  const ValuePtr& top() {
    if (stack_.empty()) fail("it reads an empty stack");
    return stack_.back();
  }
  std::vector<ValuePtr> pop_n(std::size_t n) {
    std::vector<ValuePtr> items(n);
    for (std::size_t i = n; i-- > 0;) items[i] = pop();
    return items;
  }
  std::vector<ValuePtr> pop_mark() {
    std::size_t i = stack_.size();
    while (i > 0 && !std::holds_alternative<Mark>(stack_[i - 1]->v)) --i;
    if (i == 0) fail("a MARK is missing");
    std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(i), stack_.end());
    stack_.resize(i - 1);
    return items;
  }
  void memo(std::uint64_t key, const ValuePtr& v) {
    if (memo_.size() > 10'000'000) fail("its memo grows beyond ten million values");
    memo_[key] = v;
  }
  ValuePtr recall(std::uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("it reads memo " + std::to_string(key) + ", which was never written");
    return it->second;
  }

  template <typename T>
  T& as(const ValuePtr& v, const char* what) {
    if (auto* x = std::get_if<T>(&v->v)) return *x;
    fail(std::string(what) + " has an unexpected type");
  }
  std::vector<std::int64_t> ints(const ValuePtr& v, const char* what) {
    std::vector<std::int64_t> out;
    for (const auto& item : as<Tuple>(v, what).items) out.push_back(as<std::int64_t>(item, what));
    return out;
  }

  ValuePtr global(const std::string& name) {
    bool known = storage_types().count(name) > 0;
    for (const auto& f : allowed_functions()) known = known || f == name;
    if (!known)
      refuse(path_,
             "its pickle names the global '" + name +
                 "', which is not part of a torch.save checkpoint; reel refuses it and runs nothing",
             "if the file is yours, load it in Python and save only the state_dict(), e.g. with safetensors");
    return make(Global{name});
  }

  // ('storage', storage_type, key, location, numel)
  ValuePtr persistent(const ValuePtr& id) {
    auto& t = as<Tuple>(id, "persistent id").items;
    if (t.size() != 5 || as<std::string>(t[0], "persistent id tag") != "storage")
      fail("a persistent id that is not a storage");
    const std::string& type = as<Global>(t[1], "storage type").name;
    auto dtype = storage_types().find(type);
    if (dtype == storage_types().end()) fail("'" + type + "' is not a storage type");
    return make(StorageRef{dtype->second, as<std::string>(t[2], "storage key"), as<std::int64_t>(t[4], "storage size")});
  }

  ValuePtr reduce(const std::string& function, const std::vector<ValuePtr>& args) {
    if (function == "collections.OrderedDict") {
      if (!args.empty()) fail("OrderedDict built from arguments");
      return make(Dict{});
    }
    if (function == "torch._utils._rebuild_tensor_v2") {
      if (args.size() < 4) fail("_rebuild_tensor_v2 with too few arguments");
      return make(TensorRef{as<StorageRef>(args[0], "tensor storage"), as<std::int64_t>(args[1], "storage offset"),
                            ints(args[2], "tensor size"), ints(args[3], "tensor stride")});
    }
    if (function == "torch._utils._rebuild_parameter" || function == "torch._utils._rebuild_parameter_with_state") {
      if (args.empty() || !std::holds_alternative<TensorRef>(args[0]->v)) fail("a parameter without a tensor");
      return args[0];
    }
    refuse(path_, "its pickle calls '" + function + "', which reel does not allow");
  }

  fs::path path_;
  const std::uint8_t* p_;
  const std::uint8_t* end_;
  std::vector<ValuePtr> stack_;
  std::map<std::uint64_t, ValuePtr> memo_;
  std::vector<std::weak_ptr<Value>> containers_;  // every list and dict made, for ~Unpickler
};

// ---- the checkpoint ----

class PyTorchSource : public Checkpoint::Source {
 public:
  std::shared_ptr<MappedFile> file;
  struct Placed {
    const std::uint8_t* storage;
    std::int64_t offset;
    std::vector<std::int64_t> stride;
  };
  std::vector<Placed> placed;

  at::Tensor read(std::size_t i) const override {
    const auto& r = records[i];
    const auto& p = placed[i];
    if (checked_numel(r.shape) == 0) return at::empty(r.shape, at::TensorOptions().dtype(r.dtype));
    std::int64_t extent = p.offset;
    for (std::size_t d = 0; d < r.shape.size(); ++d) extent += (r.shape[d] - 1) * p.stride[d];
    at::Tensor storage = view_bytes(file, p.storage, {extent + 1}, r.dtype);
    return storage.as_strided(r.shape, p.stride, p.offset);
  }
};

struct FlattenState {
  std::set<const Value*> visited;  // a container reached twice (through the memo) is refused
  std::set<std::string> names;
};

constexpr std::size_t max_tensors = 1'000'000;

void flatten(const Zip& zip, const std::string& prefix, PyTorchSource& source, const ValuePtr& value,
             const std::string& name, int depth, FlattenState& state) {
  if (depth > 32) refuse(source.path, "nests dictionaries deeper than 32 levels");
  const bool container = std::holds_alternative<Dict>(value->v) || std::holds_alternative<List>(value->v);
  if (container && !state.visited.insert(value.get()).second)
    refuse(source.path, "'" + name + "' is a container that appears twice in the file; torch.save writes a tree");
  if (auto* dict = std::get_if<Dict>(&value->v)) {
    for (const auto& [key, item] : *dict) {
      std::string k;
      if (auto* s = std::get_if<std::string>(&key->v))
        k = *s;
      else if (auto* i = std::get_if<std::int64_t>(&key->v))
        k = std::to_string(*i);
      else
        continue;
      flatten(zip, prefix, source, item, name.empty() ? k : name + "." + k, depth + 1, state);
    }
    return;
  }
  if (auto* list = std::get_if<List>(&value->v)) {
    for (std::size_t i = 0; i < list->size(); ++i)
      flatten(zip, prefix, source, (*list)[i], name + "." + std::to_string(i), depth + 1, state);
    return;
  }
  auto* t = std::get_if<TensorRef>(&value->v);
  if (!t) return;  // numbers, strings, None: training state, not weights
  const std::string entry_name = prefix + "data/" + t->storage.key;
  const ZipEntry* entry = zip.find(entry_name);
  if (!entry) refuse(source.path, "tensor '" + name + "' refers to storage '" + entry_name + "', which the archive lacks");
  const auto element = static_cast<std::int64_t>(c10::elementSize(t->storage.dtype));
  const std::int64_t available = static_cast<std::int64_t>(entry->size) / element;
  if (t->size.size() != t->stride.size() || checked_numel(t->size) < 0 || t->offset < 0)
    refuse(source.path, "tensor '" + name + "' has an invalid size or stride");
  std::int64_t last = t->offset;
  bool empty = checked_numel(t->size) == 0;
  for (std::size_t d = 0; d < t->size.size() && !empty; ++d) {
    std::int64_t step = 0;
    if (t->stride[d] < 0 || __builtin_mul_overflow(t->size[d] - 1, t->stride[d], &step) ||
        __builtin_add_overflow(last, step, &last))
      refuse(source.path, "tensor '" + name + "' has a stride that reaches outside any storage");
  }
  if (!empty && last >= available)
    refuse(source.path, "tensor '" + name + "' " + shape_text(t->size) + " reaches element " + std::to_string(last) +
                            " of a storage with " + std::to_string(available) + " (truncated?)");
  if (!state.names.insert(name).second) refuse(source.path, "holds two tensors named '" + name + "'");
  if (source.records.size() >= max_tensors) refuse(source.path, "holds more than a million tensors");
  source.records.push_back({name, t->storage.dtype, t->size, "tensor '" + name + "'"});
  source.placed.push_back({entry->data, t->offset, t->stride});
}

std::optional<std::string> archive_prefix(const Zip& zip, const std::string& member) {
  for (const auto& e : zip.entries()) {
    auto slash = e.name.find('/');
    if (slash != std::string::npos && e.name.substr(slash + 1) == member) return e.name.substr(0, slash + 1);
  }
  return std::nullopt;
}

}  // namespace

bool is_torchscript(const fs::path& path) {
  try {
    Zip zip(MappedFile::open(path));
    return archive_prefix(zip, "constants.pkl").has_value();
  } catch (const Error&) {
    return false;
  }
}

std::shared_ptr<const Checkpoint::Source> open_pytorch(const fs::path& path) {
  auto source = std::make_shared<PyTorchSource>();
  source->path = path;
  source->format = "pytorch";
  source->file = MappedFile::open(path);
  Zip zip(source->file);
  auto prefix = archive_prefix(zip, "data.pkl");
  if (!prefix) refuse(path, "is a zip archive without a data.pkl: not a torch.save checkpoint");
  if (const ZipEntry* order = zip.find(*prefix + "byteorder"))
    if (std::string(reinterpret_cast<const char*>(order->data), order->size) != "little")
      refuse(path, "stores its tensors big-endian, which reel does not read", "re-save it on a little-endian machine");
  const ZipEntry* pickle = zip.find(*prefix + "data.pkl");
  Unpickler unpickler(path, pickle->data, pickle->size);
  const ValuePtr root = unpickler.run();
  FlattenState state;
  flatten(zip, *prefix, *source, root, "", 0, state);
  if (source->records.empty()) refuse(path, "holds no tensors");
  return source;
}

}  // namespace reel::weights
