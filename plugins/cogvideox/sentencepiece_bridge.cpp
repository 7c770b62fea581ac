// libreel_sentencepiece.so: libsentencepiece behind a C interface (see sentencepiece_bridge.h).
#include "sentencepiece_bridge.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace {

void copy_error(const std::string& text, char* error, std::size_t size) {
  if (!error || size == 0) return;
  std::strncpy(error, text.c_str(), size - 1);
  error[size - 1] = '\0';
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* reel_sp_load(const char* path, char* error, std::size_t error_size) {
  auto* model = new (std::nothrow) sentencepiece::SentencePieceProcessor();
  if (!model) return nullptr;
  const auto status = model->Load(path);
  if (!status.ok()) {
    copy_error(status.ToString(), error, error_size);
    delete model;
    return nullptr;
  }
  return model;
}

__attribute__((visibility("default"))) int reel_sp_piece_to_id(void* model, const char* piece) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(model)->PieceToId(piece);
}

__attribute__((visibility("default"))) bool reel_sp_encode(void* model, const char* text, std::size_t length, int** ids,
                                                            std::size_t* count, char* error, std::size_t error_size) {
  std::vector<int> pieces;
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(model)->Encode(std::string(text, length), &pieces);
  if (!status.ok()) {
    copy_error(status.ToString(), error, error_size);
    return false;
  }
  *count = pieces.size();
  *ids = static_cast<int*>(std::malloc(sizeof(int) * (pieces.empty() ? 1 : pieces.size())));
  if (!*ids) {
    copy_error("out of memory", error, error_size);
    return false;
  }
  std::copy(pieces.begin(), pieces.end(), *ids);
  return true;
}

__attribute__((visibility("default"))) void reel_sp_free(int* ids) { std::free(ids); }

__attribute__((visibility("default"))) void reel_sp_unload(void* model) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(model);
}

}
