#include "tokenizer.h"

#include "sentencepiece_bridge.h"

#include <reel/error.h>

#include <dlfcn.h>

#include <algorithm>
#include <mutex>

namespace reel::cogvideox {

struct SentencePieceBridge {
  reel_sp_load_fn load = nullptr;
  reel_sp_piece_to_id_fn piece_to_id = nullptr;
  reel_sp_encode_fn encode = nullptr;
  reel_sp_free_fn free = nullptr;
  reel_sp_unload_fn unload = nullptr;
};

namespace {

// libreel_sentencepiece.so lives in reel/ beside libreel.so (build tree and install alike).
std::filesystem::path bridge_path() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&reel::to_string), &info) && info.dli_fname)
    return std::filesystem::path(info.dli_fname).parent_path() / "reel" / "libreel_sentencepiece.so";
  return "libreel_sentencepiece.so";
}

// Loaded once per process and never unloaded (libsentencepiece keeps static state).
const SentencePieceBridge& bridge() {
  static std::once_flag once;
  static SentencePieceBridge loaded;
  static std::string failure;
  std::call_once(once, [] {
    const std::filesystem::path path = bridge_path();
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!handle) {
      failure = dlerror();
      return;
    }
    loaded.load = reinterpret_cast<reel_sp_load_fn>(dlsym(handle, "reel_sp_load"));
    loaded.piece_to_id = reinterpret_cast<reel_sp_piece_to_id_fn>(dlsym(handle, "reel_sp_piece_to_id"));
    loaded.encode = reinterpret_cast<reel_sp_encode_fn>(dlsym(handle, "reel_sp_encode"));
    loaded.free = reinterpret_cast<reel_sp_free_fn>(dlsym(handle, "reel_sp_free"));
    loaded.unload = reinterpret_cast<reel_sp_unload_fn>(dlsym(handle, "reel_sp_unload"));
    if (!loaded.load || !loaded.piece_to_id || !loaded.encode || !loaded.free || !loaded.unload) {
      failure = path.string() + " lacks the reel_sp_* functions";
      loaded = {};
    }
  });
  if (!loaded.load)
    throw Error(ErrorKind::plugin, "the T5 tokenizer cannot be used: " + failure,
                "rebuild reel with libsentencepiece-dev installed (scripts/setup-deps)");
  return loaded;
}

}  // namespace

T5Tokenizer::T5Tokenizer(const std::filesystem::path& model) : bridge_(&bridge()), file_(model) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model, ec))
    throw IoError(model.string(), "tokenizer model " + model.string() + " does not exist");
  char error[512] = {0};
  model_ = bridge_->load(model.c_str(), error, sizeof error);
  if (!model_)
    throw BadInputError("tokenizer model " + model.string() + " is not a SentencePiece model: " + error);
  // T5's vocabulary: <pad> 0, </s> 1. A model without them is not T5's.
  if (bridge_->piece_to_id(model_, "</s>") != 1 || bridge_->piece_to_id(model_, "<pad>") != 0) {
    bridge_->unload(model_);
    throw BadInputError("tokenizer model " + model.string() + " is not T5's: it has no </s> at 1 and <pad> at 0");
  }
}

T5Tokenizer::~T5Tokenizer() {
  if (model_) bridge_->unload(model_);
}

Tokens T5Tokenizer::encode(const std::string& text, std::int64_t max_length) const {
  int* pieces = nullptr;
  std::size_t count = 0;
  char error[512] = {0};
  if (!bridge_->encode(model_, text.data(), text.size(), &pieces, &count, error, sizeof error))
    throw BadInputError("the prompt cannot be tokenized with " + file_.string() + ": " + error);
  std::unique_ptr<int, reel_sp_free_fn> owned(pieces, bridge_->free);
  constexpr std::int64_t eos = 1, pad = 0;
  Tokens t;
  const std::int64_t room = std::max<std::int64_t>(max_length - 1, 0);  // </s> always fits
  const std::int64_t kept = std::min<std::int64_t>(static_cast<std::int64_t>(count), room);
  t.cut = static_cast<std::int64_t>(count) - kept;
  t.ids.assign(pieces, pieces + kept);
  if (max_length > 0) t.ids.push_back(eos);
  t.length = static_cast<std::int64_t>(t.ids.size());
  t.ids.resize(static_cast<std::size_t>(std::max<std::int64_t>(max_length, 0)), pad);
  return t;
}

}  // namespace reel::cogvideox
