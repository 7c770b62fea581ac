#include <reel/stream.h>

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

std::string Rational::str() const { return std::to_string(num) + "/" + std::to_string(den); }

std::string StreamDesc::str() const {
  std::string s = std::to_string(width) + "x" + std::to_string(height) + "x" + std::to_string(channels) +
                  " @ " + fps.str() + " fps, ";
  s += frame_count ? std::to_string(*frame_count) + (*frame_count == 1 ? " frame" : " frames")
                   : std::string("unknown length");
  return s;
}

}  // namespace reel
