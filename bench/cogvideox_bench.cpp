// reel_cogvideox_bench: times reel's CogVideoX components on a diffusers model folder, for the
// side-by-side comparison with the reference implementation in bench/cogvideox-vs-diffusers.sh.
//
//   reel_cogvideox_bench FOLDER t5 REPEATS                      two 226-token prompts
//   reel_cogvideox_bench FOLDER decode LATENT_FRAMES H W REPEATS  latents torch.randn(seed 0)
//   reel_cogvideox_bench FOLDER encode FRAMES H W REPEATS         video torch.rand(seed 0) * 2 - 1
//   reel_cogvideox_bench FOLDER step LATENT_FRAMES H W REPEATS    one guided denoising step: the
//       transformer on a batch of 2 (negative and positive prompt), latents and text randn(seed 0)
// Prints "seconds S" per repeat, the median and "checksum" (sum of |output|) to compare sides.
#include "model_folder.h"
#include "t5.h"
#include "transformer.h"
#include "vae.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

using namespace reel::cogvideox;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s FOLDER t5 REPEATS | decode LATENT_FRAMES H W REPEATS | encode FRAMES H W REPEATS\n",
                 argv[0]);
    return 64;
  }
  c10::InferenceMode inference;
  at::set_num_threads(2);
  ModelFolder folder = ModelFolder::open(argv[1]);
  const std::string what = argv[2];
  std::function<at::Tensor()> run;
  int repeats = 0;
  std::unique_ptr<T5Encoder> t5;
  std::unique_ptr<Vae> vae;
  std::unique_ptr<Transformer> transformer;
  at::Tensor input, text, timesteps, rope_cos, rope_sin;
  if (what == "t5") {
    repeats = std::stoi(argv[3]);
    t5 = std::make_unique<T5Encoder>(T5Config::from(folder.config("text_encoder")));
    t5->load(folder.weights("text_encoder"));
    at::manual_seed(0);
    input = at::randint(0, t5->config().vocab_size, {2, 226}, at::kLong);
    run = [&] { return t5->encode(input); };
  } else if (what == "step") {
    if (argc < 7) return 64;
    const std::int64_t frames = std::stoll(argv[3]), h = std::stoll(argv[4]), w = std::stoll(argv[5]);
    repeats = std::stoi(argv[6]);
    transformer = std::make_unique<Transformer>(TransformerConfig::from(folder.config("transformer")));
    transformer->load(folder.weights("transformer"));
    const TransformerConfig& c = transformer->config();
    at::manual_seed(0);
    input = at::randn({2, frames, c.in_channels, h, w});
    text = at::randn({2, c.max_text_length, c.text_embed_dim});
    timesteps = at::full({2}, 999, at::kLong);
    if (c.rotary) std::tie(rope_cos, rope_sin) = transformer->rotary_tables(frames, h, w);
    run = [&] { return transformer->forward(input, text, timesteps, rope_cos, rope_sin); };
  } else {
    if (argc < 7) return 64;
    const std::int64_t frames = std::stoll(argv[3]), h = std::stoll(argv[4]), w = std::stoll(argv[5]);
    repeats = std::stoi(argv[6]);
    vae = std::make_unique<Vae>(VaeConfig::from(folder.config("vae")));
    vae->load(folder.weights("vae"));
    at::manual_seed(0);
    if (what == "decode") {
      input = at::randn({1, vae->config().latent_channels, frames, h, w});
      run = [&] { return vae->decode(input); };
    } else {
      input = at::rand({1, 3, frames, h, w}) * 2 - 1;
      run = [&] { return vae->encode(input); };
    }
  }
  std::vector<double> seconds;
  at::Tensor out;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    out = run();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    std::printf("seconds %.4f\n", seconds.back());
    std::fflush(stdout);
  }
  std::sort(seconds.begin(), seconds.end());
  std::printf("median %.4f (%s, output %s, threads %d)\n", seconds[seconds.size() / 2], what.c_str(),
              c10::str(out.sizes()).c_str(), at::get_num_threads());
  std::printf("checksum %.6f\n", out.abs().sum().item<double>());
  return 0;
}
