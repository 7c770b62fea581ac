#pragma once
// T5's tokenizer as CogVideoX uses it: the SentencePiece model (`spiece.model`, read by
// libsentencepiece through libreel_sentencepiece.so, see sentencepiece_bridge.h), `</s>` appended,
// cut to `max_length` tokens (the `</s>` kept), padded with `<pad>` to exactly `max_length`.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace reel::cogvideox {

struct SentencePieceBridge;  // the functions of libreel_sentencepiece.so

struct Tokens {
  std::vector<std::int64_t> ids;  // exactly max_length
  std::int64_t length = 0;        // tokens before the padding, </s> included
  std::int64_t cut = 0;           // tokens of the text that did not fit
};

class T5Tokenizer {
 public:
  // `model`: a spiece.model file. Throws IoError / BadInputError, or a plugin error when
  // libreel_sentencepiece.so cannot be loaded.
  explicit T5Tokenizer(const std::filesystem::path& model);
  ~T5Tokenizer();
  T5Tokenizer(const T5Tokenizer&) = delete;
  T5Tokenizer& operator=(const T5Tokenizer&) = delete;

  Tokens encode(const std::string& text, std::int64_t max_length) const;

 private:
  const SentencePieceBridge* bridge_;
  void* model_ = nullptr;
  std::filesystem::path file_;
};

}  // namespace reel::cogvideox
