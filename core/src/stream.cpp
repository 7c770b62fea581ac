#include <reel/stream.h>

#include <cmath>
#include <numeric>

namespace reel {

Rational Rational::reduced() const noexcept {
  if (den == 0) return *this;
  std::int64_t g = std::gcd(num, den);
  if (g == 0) return *this;
  Rational r{num / g, den / g};
  if (r.den < 0) r = {-r.num, -r.den};
  return r;
}

std::optional<Rational> Rational::parse(const std::string& text) {
  std::size_t used = 0;
  try {
    if (auto slash = text.find('/'); slash != std::string::npos) {
      Rational r{std::stoll(text.substr(0, slash), &used), std::stoll(text.substr(slash + 1))};
      if (used != slash || r.num <= 0 || r.den <= 0) return std::nullopt;
      return r.reduced();
    }
    double v = std::stod(text, &used);
    if (used != text.size() || !(v > 0) || v > 1e6) return std::nullopt;
    if (std::abs(v - std::round(v)) < 1e-9) return Rational{std::llround(v), 1};
    double ntsc = v * 1.001;  // 23.976 -> 24000/1001, 29.97 -> 30000/1001
    if (std::abs(ntsc - std::round(ntsc)) < 2e-3) return Rational{std::llround(ntsc) * 1000, 1001};
    return Rational{std::llround(v * 1000), 1000}.reduced();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string Rational::str() const { return std::to_string(num) + "/" + std::to_string(den); }

std::string StreamDesc::str() const {
  std::string s = std::to_string(width) + "x" + std::to_string(height) + "x" + std::to_string(channels) + " @ " +
                  fps.str() + " fps, ";
  s += frame_count ? std::to_string(*frame_count) + (*frame_count == 1 ? " frame" : " frames")
                   : std::string("unknown length");
  if (audio) s += ", with " + audio->codec + " audio";
  return s;
}

}  // namespace reel
