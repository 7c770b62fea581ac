#pragma once
// Where the frames of a new frame rate fall among the input frames, in exact rational time.
//
// Output frame j is shown at time j / out_fps, which is input position p = j * in_fps / out_fps
// (in input frames). When p is a whole number the output is that input frame, unchanged;
// otherwise it is made from input frames floor(p) and floor(p) + 1 at t = p - floor(p). Output
// frames run from time 0 to the last input frame's time and no further: N inputs give
// floor((N - 1) * out_fps / in_fps) + 1 outputs, which is (N - 1) * m + 1 for out_fps = m * in_fps.
#include <reel/stream.h>

#include <cstdint>
#include <vector>

namespace reel::interp {

struct Placement {
  std::int64_t output = 0;  // output frame index
  std::int64_t before = 0;  // the input frame at or before its time
  // How far it is towards input frame before + 1, as the exact fraction num / den in [0, 1);
  // 0 means the output is input frame `before` itself.
  std::int64_t num = 0, den = 1;

  bool on_input() const noexcept { return num == 0; }
  double t() const noexcept { return static_cast<double>(num) / static_cast<double>(den); }
};

class Timeline {
 public:
  // Both rates positive (Rational::parse guarantees it).
  Timeline(Rational in_fps, Rational out_fps);

  // The output frames that input frame k completes: those after input k-1's time and at or
  // before input k's (for k = 0, the output at time 0). Streaming: call it when input k arrives.
  std::vector<Placement> at_input(std::int64_t k) const;

  // Outputs for `inputs` frames (0 for none).
  std::int64_t output_count(std::int64_t inputs) const;

  // Output frames per input interval, as a number (2.5 for 24 -> 60).
  double ratio() const noexcept { return static_cast<double>(per_output_den_) / static_cast<double>(per_output_num_); }

 private:
  // Output j sits at input position j * per_output_num_ / per_output_den_ (a reduced fraction).
  std::int64_t per_output_num_ = 1, per_output_den_ = 1;
};

}  // namespace reel::interp
