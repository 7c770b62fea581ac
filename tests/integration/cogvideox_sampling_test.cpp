// CogVideoX's schedule and samplers against the reference's own tables and steps
// (reference/cogvideox/components/scheduler/), on the tiny models' scheduler configs.
#include "scheduler.h"
#include "test_support.h"

#include <reel/error.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <fstream>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace reel;
using namespace reel::cogvideox;

namespace {

#define REQUIRE_COGVIDEOX_REFERENCE() REEL_REQUIRE_SHARED("reference/cogvideox/components/components.json")

fs::path components(const std::string& relative) { return test::shared_dir() / "reference/cogvideox/components" / relative; }

// "5b" / "2b": the tiny models' scheduler configs (snr_shift_scale 1 and 3).
Schedule schedule_of(const std::string& variant) {
  const fs::path folder = test::shared_dir() / "reference/cogvideox/models" / ("tiny-cogvideox-" + variant);
  return Schedule(ScheduleConfig::from(ModelFolder::open(folder).config("scheduler", "scheduler_config.json")));
}

at::Tensor npy(const std::string& name) { return test::read_npy(components("scheduler/" + name + ".npy")); }

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

json components_index() { return json::parse(std::ifstream(components("components.json"))); }

}  // namespace

TEST(CogVideoXSchedule, AlphaBarTablesEqualTheReference) {
  REQUIRE_COGVIDEOX_REFERENCE();
  for (const std::string variant : {"5b", "2b"}) {
    Schedule schedule = schedule_of(variant);
    at::Tensor expected = npy("alphas_cumprod_" + variant);
    ASSERT_EQ(expected.numel(), 1000);
    at::Tensor ours = at::tensor(schedule.alphas_cumprod(), at::kDouble);
    EXPECT_LT(max_abs(ours, expected), 1e-15) << variant;
    EXPECT_EQ(schedule.alpha_bar(999), 0.0) << "zero terminal SNR";
    EXPECT_EQ(schedule.alpha_bar(-1), 1.0) << "set_alpha_to_one";
  }
  // The SNR shift is what tells the two apart.
  EXPECT_GT(schedule_of("5b").alpha_bar(500), schedule_of("2b").alpha_bar(500) * 1.5);
}

TEST(CogVideoXSchedule, TrailingTimestepsEqualTheReferenceForEveryCount) {
  REQUIRE_COGVIDEOX_REFERENCE();
  Schedule schedule = schedule_of("5b");
  const json index = components_index();
  ASSERT_GE(index["trailing_timesteps"].size(), 7u);
  for (const auto& [count, expected] : index["trailing_timesteps"].items())
    EXPECT_EQ(schedule.timesteps(std::stoll(count)), expected.get<std::vector<std::int64_t>>()) << count << " steps";
  EXPECT_THROW(schedule.timesteps(0), InvalidParamError);
  EXPECT_THROW(schedule.timesteps(1001), InvalidParamError);
}

TEST(CogVideoXSchedule, OtherSpacingsFollowTheirDefinitions) {
  ScheduleConfig config;
  config.spacing = "leading";
  config.steps_offset = 1;
  EXPECT_EQ(Schedule(config).timesteps(4), (std::vector<std::int64_t>{751, 501, 251, 1}));
  config.spacing = "linspace";
  EXPECT_EQ(Schedule(config).timesteps(4), (std::vector<std::int64_t>{999, 666, 333, 0}));
}

TEST(CogVideoXDdim, EveryReferenceStepWithin1e5) {
  REQUIRE_COGVIDEOX_REFERENCE();
  const json steps = components_index()["ddim_steps"];
  ASSERT_GE(steps.size(), 8u);
  for (const auto& step : steps) {
    const std::string tag = step["tag"];
    Schedule schedule = schedule_of(step["config"]);
    Sampler sampler(schedule, SamplerKind::ddim, step["num_inference_steps"]);
    Sampler::Result r = sampler.step(npy(tag + "_model_output"), step["timestep"], npy(tag + "_sample"));
    EXPECT_LT(max_abs(r.pred_original_sample, npy(tag + "_pred_original_sample")), 1e-5) << tag;
    EXPECT_LT(max_abs(r.prev_sample, npy(tag + "_prev_sample")), 1e-5) << tag;
  }
}

// Three steps over 1000: the sampler steps to t - 333, not to the next list entry (332).
TEST(CogVideoXDdim, StepsByTheIntegerRatioNotTheNextTimestep) {
  REQUIRE_COGVIDEOX_REFERENCE();
  Schedule schedule = schedule_of("5b");
  const at::Tensor sample = npy("ddim_5b_n3_t666_sample"), output = npy("ddim_5b_n3_t666_model_output");
  Sampler sampler(schedule, SamplerKind::ddim, 3);
  const at::Tensor prev = sampler.step(output, 666, sample).prev_sample;
  const at::Tensor x0 = schedule.predict_original(output, sample, 666);
  const double a = schedule.alpha_bar(666);
  for (std::int64_t target : {333, 332}) {
    const double a_prev = schedule.alpha_bar(target), a_t = std::sqrt((1 - a_prev) / (1 - a));
    const at::Tensor expected = a_t * sample + (std::sqrt(a_prev) - std::sqrt(a) * a_t) * x0;
    if (target == 333) EXPECT_LT(max_abs(prev, expected), 1e-6);
    else EXPECT_GT(max_abs(prev, expected), 1e-4);
  }
}

TEST(CogVideoXDpm, FourStepChainEqualsTheReferenceIncludingItsNoise) {
  REQUIRE_COGVIDEOX_REFERENCE();
  const json chain = components_index()["dpm_chain"];
  Schedule schedule = schedule_of(chain["config"]);
  const std::int64_t steps = chain["num_inference_steps"];
  Sampler sampler(schedule, SamplerKind::dpm, steps, at::make_generator<at::CPUGeneratorImpl>(chain["generator_seed"].get<std::uint64_t>()));
  at::Tensor sample = npy("dpm_5b_n4_x_init");
  const auto timesteps = schedule.timesteps(steps);
  ASSERT_EQ(chain["steps"].size(), timesteps.size());
  for (std::size_t i = 0; i < timesteps.size(); ++i) {
    const std::string tag = "dpm_5b_n4_step" + std::to_string(i);
    ASSERT_EQ(chain["steps"][i]["timestep"].get<std::int64_t>(), timesteps[i]);
    Sampler::Result r = sampler.step(npy(tag + "_model_output"), timesteps[i], sample);
    EXPECT_LT(max_abs(r.pred_original_sample, npy(tag + "_pred_original_sample")), 1e-5) << tag;
    EXPECT_LT(max_abs(r.prev_sample, npy(tag + "_prev_sample")), 1e-5) << tag;
    EXPECT_TRUE(at::isfinite(r.prev_sample).all().item<bool>()) << tag;
    sample = npy(tag + "_prev_sample");
  }
}

// The noise the chain drew is the generator's, in the reference's order: a sampler with another
// seed lands elsewhere, and reproducing the draws by hand gives the recorded noise.
TEST(CogVideoXDpm, DrawsTheReferenceNoiseInTheReferenceOrder) {
  REQUIRE_COGVIDEOX_REFERENCE();
  const json chain = components_index()["dpm_chain"];
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(chain["generator_seed"].get<std::uint64_t>());
  const at::Tensor shape_of = npy("dpm_5b_n4_x_init");
  for (std::size_t i = 0; i < chain["steps"].size(); ++i)
    for (int draw = 0; draw < chain["steps"][i]["noise_draws"].get<int>(); ++draw) {
      const std::string name = "dpm_5b_n4_step" + std::to_string(i) + "_noise" + std::to_string(draw);
      EXPECT_EQ(max_abs(at::randn(shape_of.sizes(), generator, shape_of.options()), npy(name)), 0.0) << name;
    }
  Schedule schedule = schedule_of("5b");
  Sampler other(schedule, SamplerKind::dpm, 4, at::make_generator<at::CPUGeneratorImpl>(78));
  const at::Tensor moved = other.step(npy("dpm_5b_n4_step0_model_output"), 999, shape_of).prev_sample;
  EXPECT_GT(max_abs(moved, npy("dpm_5b_n4_step0_prev_sample")), 1e-2);
}

TEST(CogVideoXSchedule, AddNoiseEqualsTheReference) {
  REQUIRE_COGVIDEOX_REFERENCE();
  Schedule schedule = schedule_of("5b");
  at::Tensor noisy = schedule.add_noise(npy("add_noise_t599_original"), npy("add_noise_t599_noise"), 599);
  EXPECT_LT(max_abs(noisy, npy("add_noise_t599_noisy")), 1e-5);
}

TEST(CogVideoXGuidance, DynamicScheduleEqualsTheReferenceCase) {
  REQUIRE_COGVIDEOX_REFERENCE();
  const fs::path dir = test::shared_dir() / "reference/cogvideox/cases/t2v_5b_dpm_dyncfg";
  const at::Tensor expected = test::read_npy(dir / "guidance_scales.npy");
  const at::Tensor timesteps = test::read_npy(dir / "timesteps.npy");
  ASSERT_EQ(expected.numel(), 5);
  for (std::int64_t i = 0; i < 5; ++i)
    EXPECT_DOUBLE_EQ(guidance_at(6.0, true, timesteps[i].item<std::int64_t>(), 5), expected[i].item<double>()) << i;
  EXPECT_EQ(guidance_at(6.0, false, 999, 5), 6.0);
}

TEST(CogVideoXSchedule, RefusesAConfigValueItDoesNotImplement) {
  REQUIRE_COGVIDEOX_REFERENCE();
  const fs::path dir = test::temp_dir("scheduler-config");
  fs::create_directories(dir / "scheduler");
  std::ofstream(dir / "model_index.json") << R"({"_class_name": "CogVideoXPipeline", "scheduler": ["diffusers", "CogVideoXDDIMScheduler"]})";
  std::ofstream(dir / "scheduler/scheduler_config.json") << R"({"prediction_type": "flow", "timestep_spacing": "trailing"})";
  try {
    ScheduleConfig::from(ModelFolder::open(dir).config("scheduler", "scheduler_config.json"));
    ADD_FAILURE() << "accepted prediction_type flow";
  } catch (const BadInputError& e) {
    EXPECT_NE(std::string(e.what()).find("'prediction_type' is \"flow\""), std::string::npos) << e.what();
  }
}
