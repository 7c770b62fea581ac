#include "scheduler.h"

#include <reel/error.h>

#include <ATen/ATen.h>

#include <cmath>
#include <numbers>

namespace reel::cogvideox {

ScheduleConfig ScheduleConfig::from(const Config& config) {
  ScheduleConfig c;
  c.train_timesteps = config.integer("num_train_timesteps", 1000);
  if (c.train_timesteps < 1) throw BadInputError("config " + config.file().string() + ": 'num_train_timesteps' must be positive");
  c.beta_start = config.number("beta_start", c.beta_start);
  c.beta_end = config.number("beta_end", c.beta_end);
  c.beta_schedule = config.choice("beta_schedule", {"linear", "scaled_linear", "squaredcos_cap_v2"}, "scaled_linear");
  if (const auto& betas = config.values().value("trained_betas", nlohmann::json()); !betas.is_null()) {
    if (!betas.is_array() || betas.size() != static_cast<std::size_t>(c.train_timesteps))
      throw BadInputError("config " + config.file().string() + ": 'trained_betas' must list num_train_timesteps numbers");
    for (const auto& b : betas) {
      if (!b.is_number()) throw BadInputError("config " + config.file().string() + ": 'trained_betas' holds a non-number");
      c.trained_betas.push_back(b.get<double>());
    }
  }
  // The reference's default is epsilon; CogVideoX's configs all say v_prediction.
  c.prediction = config.choice("prediction_type", {"epsilon", "sample", "v_prediction"}, "epsilon");
  c.spacing = config.choice("timestep_spacing", {"trailing", "leading", "linspace"}, "leading");
  c.steps_offset = config.integer("steps_offset", 0);
  c.zero_terminal_snr = config.boolean("rescale_betas_zero_snr", false);
  c.alpha_to_one = config.boolean("set_alpha_to_one", true);
  c.snr_shift = config.number("snr_shift_scale", 3.0);
  if (!(c.snr_shift > 0)) throw BadInputError("config " + config.file().string() + ": 'snr_shift_scale' must be positive");
  // Present in every CogVideoX config, unused by its samplers (the reference's step ignores them).
  config.boolean("clip_sample", false);
  config.number("clip_sample_range", 1.0);
  config.number("sample_max_value", 1.0);
  config.boolean("thresholding", false);
  return c;
}

SamplerKind sampler_kind(const std::string& name) {
  if (name == "ddim") return SamplerKind::ddim;
  if (name == "dpm") return SamplerKind::dpm;
  throw InvalidParamError("scheduler", "'" + name + "' is not a sampler: use ddim or dpm");
}

namespace {

// alpha_bar of the cosine schedule (Nichol & Dhariwal), as betas_for_alpha_bar uses it.
double cosine_alpha_bar(double t) {
  const double c = std::cos((t + 0.008) / 1.008 * std::numbers::pi / 2);
  return c * c;
}

// Python's round(): half to even. remainder() rounds its quotient to even whatever the current
// rounding mode, so this neither depends on nor changes the floating-point environment.
double round_half_even(double x) { return x - std::remainder(x, 1.0); }

}  // namespace

Schedule::Schedule(ScheduleConfig config) : config_(std::move(config)) {
  const std::int64_t n = config_.train_timesteps;
  // The betas in the reference's dtype: float64 for scaled_linear, float32 for the others.
  at::Tensor betas;
  if (!config_.trained_betas.empty())
    betas = at::tensor(config_.trained_betas, at::kDouble).to(at::kFloat);
  else if (config_.beta_schedule == "linear")
    betas = at::linspace(config_.beta_start, config_.beta_end, n, at::kFloat);
  else if (config_.beta_schedule == "scaled_linear")
    betas = at::linspace(std::sqrt(config_.beta_start), std::sqrt(config_.beta_end), n, at::kDouble).pow(2);
  else {
    std::vector<double> b(n);
    for (std::int64_t i = 0; i < n; ++i)
      b[i] = std::min(1 - cosine_alpha_bar(double(i + 1) / n) / cosine_alpha_bar(double(i) / n), 0.999);
    betas = at::tensor(b, at::kDouble).to(at::kFloat);
  }
  at::Tensor alphas_cumprod = at::cumprod(1.0 - betas, 0);
  // SNR shift (as SD3): alpha_bar / (s + (1 - s) alpha_bar), i.e. the SNR divided by s.
  alphas_cumprod = alphas_cumprod / (config_.snr_shift + (1 - config_.snr_shift) * alphas_cumprod);
  if (config_.zero_terminal_snr) {
    // Shift sqrt(alpha_bar) so its last value is 0, then scale so its first is unchanged.
    at::Tensor root = alphas_cumprod.sqrt();
    at::Tensor first = root[0].clone(), last = root[-1].clone();
    root = (root - last) * (first / (first - last));
    alphas_cumprod = root.pow(2);
  }
  alphas_cumprod = alphas_cumprod.to(at::kDouble).contiguous();
  const double* data = alphas_cumprod.data_ptr<double>();
  alphas_cumprod_.assign(data, data + n);
  final_alpha_cumprod_ = config_.alpha_to_one ? 1.0 : alphas_cumprod_[0];
}

double Schedule::alpha_bar(std::int64_t t) const {
  if (t < 0) return final_alpha_cumprod_;
  if (t >= config_.train_timesteps) throw Error(ErrorKind::internal, "timestep " + std::to_string(t) + " is outside the schedule");
  return alphas_cumprod_[t];
}

std::vector<std::int64_t> Schedule::timesteps(std::int64_t steps) const {
  const std::int64_t n = config_.train_timesteps;
  if (steps < 1 || steps > n)
    throw InvalidParamError("steps", "must be between 1 and " + std::to_string(n) + ", got " + std::to_string(steps));
  std::vector<std::int64_t> out;
  if (config_.spacing == "trailing") {
    // round(arange(n, 0, -n / steps)) - 1
    const double ratio = double(n) / steps;
    for (std::int64_t i = 0;; ++i) {
      const double v = n + i * -ratio;
      if (!(v > 0)) break;
      out.push_back(static_cast<std::int64_t>(round_half_even(v)) - 1);
    }
  } else if (config_.spacing == "leading") {
    const std::int64_t ratio = n / steps;
    for (std::int64_t i = steps - 1; i >= 0; --i) out.push_back(i * ratio + config_.steps_offset);
  } else {
    // round(linspace(0, n - 1, steps)) reversed
    for (std::int64_t i = steps - 1; i >= 0; --i) {
      const double v = steps == 1 ? 0.0 : double(n - 1) * i / (steps - 1);
      out.push_back(static_cast<std::int64_t>(round_half_even(v)));
    }
  }
  return out;
}

at::Tensor Schedule::add_noise(const at::Tensor& original, const at::Tensor& noise, std::int64_t t) const {
  const double a = alpha_bar(t);
  return std::sqrt(a) * original + std::sqrt(1 - a) * noise;
}

at::Tensor Schedule::predict_original(const at::Tensor& model_output, const at::Tensor& sample, std::int64_t t) const {
  const double a = alpha_bar(t), b = 1 - a;
  if (config_.prediction == "v_prediction") return std::sqrt(a) * sample - std::sqrt(b) * model_output;
  if (config_.prediction == "epsilon") return (sample - std::sqrt(b) * model_output) / std::sqrt(a);
  return model_output;
}

Sampler::Sampler(const Schedule& schedule, SamplerKind kind, std::int64_t steps, at::Generator generator)
    : schedule_(schedule), kind_(kind), steps_(steps), generator_(std::move(generator)) {
  if (steps < 1) throw InvalidParamError("steps", "must be at least 1");
}

Sampler::Result Sampler::step(const at::Tensor& model_output, std::int64_t t, const at::Tensor& sample) {
  Result r = kind_ == SamplerKind::ddim ? ddim(model_output, t, sample) : dpm(model_output, t, sample);
  previous_t_ = t;
  previous_x0_ = r.pred_original_sample;
  return r;
}

// DDIM with eta 0. The next timestep is t - n / steps (integer division), which for a step count
// that does not divide n is not the next entry of the list (333, not 332, for 3 steps).
Sampler::Result Sampler::ddim(const at::Tensor& model_output, std::int64_t t, const at::Tensor& sample) const {
  const std::int64_t prev_t = t - schedule_.config().train_timesteps / steps_;
  const double a = schedule_.alpha_bar(t), a_prev = schedule_.alpha_bar(prev_t);
  at::Tensor x0 = schedule_.predict_original(model_output, sample, t);
  const double a_t = std::sqrt((1 - a_prev) / (1 - a));
  const double b_t = std::sqrt(a_prev) - std::sqrt(a) * a_t;
  return {a_t * sample + b_t * x0, x0};
}

// DPM-Solver++(2M), stochastic: lambda = log(sqrt(alpha_bar / (1 - alpha_bar))), h the step in
// lambda. At t = 999 alpha_bar is 0 and lambda -inf; the infinities resolve by IEEE rules to the
// multipliers the reference gets (0, -sqrt(alpha_bar_prev), ...), so no special case is needed.
Sampler::Result Sampler::dpm(const at::Tensor& model_output, std::int64_t t, const at::Tensor& sample) {
  const std::int64_t prev_t = t - schedule_.config().train_timesteps / steps_;
  const double a = schedule_.alpha_bar(t), a_prev = schedule_.alpha_bar(prev_t);
  at::Tensor x0 = schedule_.predict_original(model_output, sample, t);

  auto lambda = [](double alpha_bar) { return std::log(std::sqrt(alpha_bar / (1 - alpha_bar))); };
  const double lamb = lambda(a), h = lambda(a_prev) - lamb;
  const double mult1 = std::sqrt((1 - a_prev) / (1 - a)) * std::exp(-h);
  const double mult2 = std::expm1(-2 * h) * std::sqrt(a_prev);
  const double mult_noise = std::sqrt(1 - a_prev) * std::sqrt(1 - std::exp(-2 * h));
  // Drawn on the CPU, where the generator is, then moved: the same numbers on every device.
  auto noise = [&] { return at::randn(sample.sizes(), generator_, sample.options().device(at::kCPU)).to(sample.device()); };

  at::Tensor prev = mult1 * sample - mult2 * x0 + mult_noise * noise();
  if (!previous_t_ || prev_t < 0) return {prev, x0};
  // Second order: extrapolate x0 from this and the previous step's prediction.
  const double h_last = lamb - lambda(schedule_.alpha_bar(*previous_t_));
  const double r = h_last / h;
  const double mult3 = 1 + 1 / (2 * r), mult4 = 1 / (2 * r);
  at::Tensor denoised = mult3 * x0 - mult4 * previous_x0_;
  return {mult1 * sample - mult2 * denoised + mult_noise * noise(), x0};
}

double guidance_at(double guidance, bool dynamic, std::int64_t t, std::int64_t steps) {
  if (!dynamic) return guidance;
  const double progress = double(steps - t) / double(steps);
  return 1 + guidance * ((1 - std::cos(std::numbers::pi * std::pow(progress, 5.0))) / 2);
}

}  // namespace reel::cogvideox
