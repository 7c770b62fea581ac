#pragma once
// What flows on an edge, described before anything runs (stream negotiation at configure time).

#include <cstdint>
#include <optional>
#include <string>

namespace reel {

// Frame rates are exact: 30000/1001 stays 30000/1001, and doubling it stays exact.
struct Rational {
  std::int64_t num = 0;
  std::int64_t den = 1;

  double value() const noexcept { return den == 0 ? 0.0 : static_cast<double>(num) / den; }
  Rational reduced() const noexcept;
  Rational operator*(std::int64_t k) const noexcept { return Rational{num * k, den}.reduced(); }
  bool operator==(const Rational& o) const noexcept { return num * o.den == o.num * den; }
  std::string str() const;  // "24/1", "30000/1001"
  // "24", "30000/1001", "29.97" (NTSC rates become n*1000/1001). Empty if not a positive rate.
  static std::optional<Rational> parse(const std::string& text);
};

// Sound that belongs with a stream's frames: an audio stream of a file, which a sink copies beside
// the video. A source whose file has audio sets it; a node that returns its input's StreamDesc
// (with new size or rate: its frames still span the same time) keeps it; a node that builds a new
// StreamDesc drops it, and the executor warns that the output will be silent.
struct AudioSource {
  std::string path;          // the file
  int stream = -1;           // its audio stream's index in the file
  std::string codec;         // "aac", "opus": for messages and container checks
  double start_seconds = 0;  // where the first frame sits on the file's timeline
};

struct StreamDesc {
  int width = 0;
  int height = 0;
  int channels = 3;  // RGB
  Rational fps{0, 1};
  std::optional<std::int64_t> frame_count;  // unknown for live or unprobed sources
  std::optional<AudioSource> audio;         // sound to keep with these frames, if any

  std::string str() const;  // "1280x720x3 @ 24/1 fps, 49 frames"
};

}  // namespace reel
