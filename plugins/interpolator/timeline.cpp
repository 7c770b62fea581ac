#include "timeline.h"

#include <numeric>

namespace reel::interp {

namespace {

using wide = __int128;  // products of two 64-bit numbers

// floor(a / b) for b > 0 and any a.
std::int64_t floor_div(wide a, wide b) {
  wide q = a / b;
  if (a % b != 0 && a < 0) --q;
  return static_cast<std::int64_t>(q);
}

}  // namespace

Timeline::Timeline(Rational in_fps, Rational out_fps) {
  in_fps = in_fps.reduced(), out_fps = out_fps.reduced();
  wide num = static_cast<wide>(in_fps.num) * out_fps.den, den = static_cast<wide>(in_fps.den) * out_fps.num;
  wide a = num, b = den;  // gcd, in 128 bits: the products of two 64-bit rates may not fit 64
  while (b != 0) {
    wide r = a % b;
    a = b, b = r;
  }
  const wide g = a;
  per_output_num_ = static_cast<std::int64_t>(num / g);
  per_output_den_ = static_cast<std::int64_t>(den / g);
}

std::vector<Placement> Timeline::at_input(std::int64_t k) const {
  std::vector<Placement> out;
  if (k < 0) return out;
  // Outputs j with (k - 1) < j * n / d <= k, i.e. floor((k - 1) d / n) < j <= floor(k d / n).
  const std::int64_t first = k == 0 ? 0 : floor_div(static_cast<wide>(k - 1) * per_output_den_, per_output_num_) + 1;
  const std::int64_t last = floor_div(static_cast<wide>(k) * per_output_den_, per_output_num_);
  for (std::int64_t j = first; j <= last; ++j) {
    const wide position = static_cast<wide>(j) * per_output_num_;
    Placement p;
    p.output = j;
    p.before = static_cast<std::int64_t>(position / per_output_den_);
    std::int64_t rest = static_cast<std::int64_t>(position % per_output_den_);
    if (rest != 0) {
      const std::int64_t g = std::gcd(rest, per_output_den_);
      p.num = rest / g, p.den = per_output_den_ / g;
    }
    out.push_back(p);
  }
  return out;
}

std::int64_t Timeline::output_count(std::int64_t inputs) const {
  if (inputs <= 0) return 0;
  return floor_div(static_cast<wide>(inputs - 1) * per_output_den_, per_output_num_) + 1;
}

}  // namespace reel::interp
