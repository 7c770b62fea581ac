// The interpolators' timeline: exact output counts, times and neighbours for multipliers and
// target rates, checked against the definition (output j at time j / out_fps) in exact integers.
#include "timeline.h"

#include <gtest/gtest.h>

using reel::Rational;
using reel::interp::Placement;
using reel::interp::Timeline;

namespace {

std::vector<Placement> all_outputs(const Timeline& timeline, std::int64_t inputs) {
  std::vector<Placement> out;
  for (std::int64_t k = 0; k < inputs; ++k)
    for (const Placement& p : timeline.at_input(k)) {
      EXPECT_TRUE(p.before == k || (p.before == k - 1 && !p.on_input())) << "output " << p.output << " at input " << k;
      out.push_back(p);
    }
  return out;
}

// Output j's time j * out.den / out.num must equal input position (before + num/den) in input
// periods: (before + num/den) * in.den / in.num. Cross-multiplied, all in integers.
void expect_exact_time(const Placement& p, Rational in, Rational out) {
  const __int128 lhs = static_cast<__int128>(p.output) * out.den * in.num * p.den;
  const __int128 rhs = (static_cast<__int128>(p.before) * p.den + p.num) * in.den * out.num;
  EXPECT_TRUE(lhs == rhs) << "output " << p.output << " is not at its time";
  EXPECT_GE(p.num, 0);
  EXPECT_LT(p.num, p.den);
}

}  // namespace

TEST(Timeline, MultipliersGiveNMinusOneTimesMPlusOneFramesWithInputsAtKm) {
  for (int m : {2, 3, 4}) {
    for (int n : {1, 2, 49}) {
      SCOPED_TRACE("m " + std::to_string(m) + ", N " + std::to_string(n));
      Timeline timeline({8, 1}, {8 * m, 1});
      auto outputs = all_outputs(timeline, n);
      ASSERT_EQ(static_cast<std::int64_t>(outputs.size()), static_cast<std::int64_t>(n - 1) * m + 1);
      EXPECT_EQ(timeline.output_count(n), static_cast<std::int64_t>(outputs.size()));
      for (std::size_t j = 0; j < outputs.size(); ++j) {
        const Placement& p = outputs[j];
        EXPECT_EQ(p.output, static_cast<std::int64_t>(j));  // in order, none missing or repeated
        EXPECT_EQ(p.before, static_cast<std::int64_t>(j) / m);
        if (j % m == 0) {
          EXPECT_TRUE(p.on_input());
        } else {
          EXPECT_EQ(p.t(), static_cast<double>(j % m) / m);  // i/m, computed directly: exactly equal
        }
        expect_exact_time(p, {8, 1}, {8 * m, 1});
      }
    }
  }
  EXPECT_EQ(Timeline({8, 1}, {16, 1}).output_count(0), 0);
}

TEST(Timeline, TargetRatesPutEveryFrameAtItsExactTime) {
  struct Case {
    Rational in, out;
    int inputs;
    std::int64_t outputs;
  };
  // 8 -> 24 is m = 3; 24 -> 60 is 2.5 per interval: floor(48 * 2.5) + 1; 30000/1001 -> 60:
  // floor(48 * 60 * 1001 / 30000) + 1 = floor(96.096) + 1; 30 -> 24 keeps 4 of 5 times.
  for (const Case& c : {Case{{8, 1}, {24, 1}, 49, 145}, Case{{24, 1}, {60, 1}, 49, 121},
                        Case{{30000, 1001}, {60, 1}, 49, 97}, Case{{30, 1}, {24, 1}, 31, 25}}) {
    SCOPED_TRACE(c.in.str() + " -> " + c.out.str());
    Timeline timeline(c.in, c.out);
    auto outputs = all_outputs(timeline, c.inputs);
    ASSERT_EQ(static_cast<std::int64_t>(outputs.size()), c.outputs);
    EXPECT_EQ(timeline.output_count(c.inputs), c.outputs);
    for (std::size_t j = 0; j < outputs.size(); ++j) {
      EXPECT_EQ(outputs[j].output, static_cast<std::int64_t>(j));
      expect_exact_time(outputs[j], c.in, c.out);
    }
  }
  // 24 -> 60: output 1 is 0.4 of the way from input 0 to 1, output 5 is input 2 itself.
  Timeline timeline({24, 1}, {60, 1});
  auto second = timeline.at_input(1);
  ASSERT_EQ(second.size(), 2u);  // outputs 1 (0.4) and 2 (0.8), both between inputs 0 and 1
  EXPECT_EQ(second[0].num * 5, second[0].den * 2);
  auto third = timeline.at_input(2);
  EXPECT_TRUE(third.back().on_input());
  EXPECT_EQ(third.back().output, 5);
}
