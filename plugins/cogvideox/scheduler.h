#pragma once
// CogVideoX's noise schedule and its two samplers, as diffusers' CogVideoXDDIMScheduler and
// CogVideoXDPMScheduler define them (both read the same `scheduler/scheduler_config.json`):
//  - the table alpha_bar(t) for the 1000 training timesteps: betas (scaled_linear in float64, as
//    the reference), the SD3-style SNR shift, then the zero-terminal-SNR rescale (alpha_bar(999)=0);
//  - the timesteps of an N-step run (`trailing`: 999, 749, 499, 249 for N = 4);
//  - DDIM (deterministic, eta 0) and the stochastic DPM-Solver++(2M) that draws its noise from the
//    run's generator and uses the previous step's x0 prediction;
//  - add_noise, which starts video-to-video from a noised encoding.
// Every computation on scalars is done in double and applied to float32 tensors, as the reference.
#include "model_folder.h"

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace reel::cogvideox {

struct ScheduleConfig {
  std::int64_t train_timesteps = 1000;
  double beta_start = 0.00085, beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";  // linear, scaled_linear, squaredcos_cap_v2
  std::vector<double> trained_betas;            // replaces the beta schedule when not empty
  std::string prediction = "v_prediction";      // epsilon, sample, v_prediction
  std::string spacing = "trailing";             // trailing, leading, linspace
  std::int64_t steps_offset = 0;
  bool zero_terminal_snr = true, alpha_to_one = true;
  double snr_shift = 1.0;

  // From scheduler/scheduler_config.json. `clip_sample`, `clip_sample_range`, `sample_max_value`
  // and `thresholding` are read for their type but, as in the reference samplers, have no effect.
  static ScheduleConfig from(const Config& config);
};

enum class SamplerKind { ddim, dpm };
SamplerKind sampler_kind(const std::string& name);  // "ddim" or "dpm"; InvalidParamError otherwise

class Schedule {
 public:
  explicit Schedule(ScheduleConfig config);

  const ScheduleConfig& config() const noexcept { return config_; }
  // alpha_bar for timesteps 0 .. train_timesteps-1.
  const std::vector<double>& alphas_cumprod() const noexcept { return alphas_cumprod_; }
  // alpha_bar(t), and for t < 0 the value after the last step (1 with set_alpha_to_one).
  double alpha_bar(std::int64_t t) const;
  // The timesteps of a run of `steps` steps, from noisiest to cleanest. InvalidParamError when
  // `steps` is not 1 .. train_timesteps.
  std::vector<std::int64_t> timesteps(std::int64_t steps) const;
  // sqrt(alpha_bar(t)) * original + sqrt(1 - alpha_bar(t)) * noise
  at::Tensor add_noise(const at::Tensor& original, const at::Tensor& noise, std::int64_t t) const;
  // The model's prediction turned into the predicted clean sample x0.
  at::Tensor predict_original(const at::Tensor& model_output, const at::Tensor& sample, std::int64_t t) const;

 private:
  ScheduleConfig config_;
  std::vector<double> alphas_cumprod_;
  double final_alpha_cumprod_ = 1.0;
};

// One run of the sampler over the timesteps of `steps` steps. step() is called once per timestep,
// in order; DPM draws its noise from `generator` (1 draw on the first and last step, 2 between,
// the first unused: the reference's order, which the seed reproduces).
class Sampler {
 public:
  Sampler(const Schedule& schedule, SamplerKind kind, std::int64_t steps, at::Generator generator = {});

  struct Result {
    at::Tensor prev_sample, pred_original_sample;
  };
  // model_output at timestep t for `sample` -> the sample at the next timestep.
  Result step(const at::Tensor& model_output, std::int64_t t, const at::Tensor& sample);

 private:
  Result ddim(const at::Tensor& model_output, std::int64_t t, const at::Tensor& sample) const;
  Result dpm(const at::Tensor& model_output, std::int64_t t, const at::Tensor& sample);

  const Schedule& schedule_;
  SamplerKind kind_;
  std::int64_t steps_;
  at::Generator generator_;
  std::optional<std::int64_t> previous_t_;
  at::Tensor previous_x0_;
};

// The guidance scale of a step: `guidance` itself, or with `dynamic` the reference's schedule
// 1 + g * (1 - cos(pi * ((steps - t) / steps)^5)) / 2 with t the timestep's value (not its index),
// computed in double as the reference does; for large t it swings between 1 and 1 + g.
double guidance_at(double guidance, bool dynamic, std::int64_t t, std::int64_t steps);

}  // namespace reel::cogvideox
