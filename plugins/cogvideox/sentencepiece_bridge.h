#pragma once
// The C interface of libreel_sentencepiece.so, a small module around libsentencepiece.
//
// Why a separate module: Debian's libsentencepiece carries its own copy of protobuf-lite and
// exports its symbols, while libtorch loads the system libprotobuf. Linked into one process the
// two copies bind to each other's functions and the process crashes before main (in protobuf's
// static initialisers). tokenizer.cpp therefore loads this module with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND): libsentencepiece then resolves to its own protobuf, and nothing of it is
// visible to the rest of the process. Only plain C types cross this boundary.
#include <cstddef>

extern "C" {

// Loads a SentencePiece model; null on failure with the reason in `error`.
typedef void* (*reel_sp_load_fn)(const char* path, char* error, std::size_t error_size);
// The id of a piece (the unknown id when absent).
typedef int (*reel_sp_piece_to_id_fn)(void* model, const char* piece);
// Encodes UTF-8 text to ids into a buffer it allocates (free with reel_sp_free); false on failure.
typedef bool (*reel_sp_encode_fn)(void* model, const char* text, std::size_t length, int** ids, std::size_t* count,
                                  char* error, std::size_t error_size);
typedef void (*reel_sp_free_fn)(int* ids);
typedef void (*reel_sp_unload_fn)(void* model);

}
