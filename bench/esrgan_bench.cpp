// reel_esrgan_bench: times reel's Real-ESRGAN networks (the code upscaler.esrgan runs) on one
// input size, for the side-by-side comparison with PyTorch's Python API in
// bench/esrgan-vs-pytorch.sh.
//
//   reel_esrgan_bench CHECKPOINT WIDTH HEIGHT REPEATS [--tile T --tile-pad P] [--threads N]
//                     [--channels-last] [--glibc-default] [--dump OUT.f32] [--batch B]
// Prints one line per forward pass ("seconds S") and the median. With --batch B it instead times
// B equal tiles of (tile + 2 pad) pixels run one after another against the same B tiles as one
// batch, to see whether batching tiles pays. The input is a deterministic
// pattern shared with the Python side; --dump writes the float output (C x H x W, little-endian).
#include "networks.h"
#include "tiler.h"

#include <reel/runtime/memory.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace reel;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s CHECKPOINT WIDTH HEIGHT REPEATS [--tile T --tile-pad P] [--threads N] "
                         "[--channels-last] [--dump OUT.f32]\n", argv[0]);
    return 64;
  }
  const std::string path = argv[1];
  const int width = std::stoi(argv[2]), height = std::stoi(argv[3]), repeats = std::stoi(argv[4]);
  sr::Tiling tiling{0, 10, 1};
  std::string dump;
  bool channels_last = false, glibc_default = false;
  int batch = 0;
  for (int i = 5; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tile") tiling.tile = std::stoi(argv[++i]);
    else if (a == "--tile-pad") tiling.pad = std::stoi(argv[++i]);
    else if (a == "--threads") at::set_num_threads(std::stoi(argv[++i]));
    else if (a == "--channels-last") channels_last = true;
    else if (a == "--dump") dump = argv[++i];
    else if (a == "--glibc-default") glibc_default = true;
    else if (a == "--batch") batch = std::stoi(argv[++i]);
  }
  // As in `reel` (fixed mmap threshold, tensor cache), unless asked for glibc and libtorch defaults.
  if (!glibc_default) configure_host_allocator();
  c10::InferenceMode inference;
  auto checkpoint = weights::open_checkpoint(path);
  auto architecture = sr::detect(checkpoint);
  if (!architecture) {
    std::fprintf(stderr, "%s: not a Real-ESRGAN network\n", path.c_str());
    return 65;
  }
  auto network = sr::build(*architecture);
  network->assign(weights::match(checkpoint, network->expected(), architecture->describe()));
  tiling.multiple = architecture->input_multiple();

  // The shared input: a smooth deterministic pattern in [0, 1] (the same formula in Python).
  at::Tensor yy = at::arange(height, at::kFloat).view({1, 1, height, 1});
  at::Tensor xx = at::arange(width, at::kFloat).view({1, 1, 1, width});
  at::Tensor cc = at::arange(3, at::kFloat).view({1, 3, 1, 1});
  at::Tensor x = (at::sin(xx * 0.05 + cc) * at::cos(yy * 0.07 - cc) * 0.5 + 0.5).contiguous();
  if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);

  auto forward = [&](const at::Tensor& t) { return network->forward(t); };
  if (batch > 0) {
    const int side = tiling.tile + 2 * tiling.pad;
    std::vector<at::Tensor> tiles;
    for (int i = 0; i < batch; ++i) tiles.push_back(x.narrow(2, (i * 7) % (height - side + 1), side).narrow(3, (i * 13) % (width - side + 1), side).contiguous());
    auto memory = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    at::Tensor together = at::cat(tiles, 0).contiguous(memory);
    for (auto& t : tiles) t = t.contiguous(memory);
    std::vector<double> one_by_one, batched;
    for (int r = 0; r < repeats; ++r) {
      auto start = std::chrono::steady_clock::now();
      for (const auto& t : tiles) forward(t);
      one_by_one.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      start = std::chrono::steady_clock::now();
      forward(together);
      batched.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      std::printf("one by one %.4f, batched %.4f\n", one_by_one.back(), batched.back());
    }
    std::sort(one_by_one.begin(), one_by_one.end());
    std::sort(batched.begin(), batched.end());
    std::printf("median one by one %.4f, batched %.4f (%d tiles of %d, %s, threads %d)\n", one_by_one[repeats / 2],
                batched[repeats / 2], batch, side, architecture->describe().c_str(), at::get_num_threads());
    return 0;
  }
  std::vector<double> seconds;
  at::Tensor y;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    y = sr::run_tiled(x, architecture->scale, tiling, forward);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    std::printf("seconds %.4f\n", seconds.back());
    std::fflush(stdout);
  }
  std::sort(seconds.begin(), seconds.end());
  std::printf("median %.4f (%s, %dx%d, tile %d, threads %d)\n", seconds[seconds.size() / 2],
              architecture->describe().c_str(), width, height, tiling.tile, at::get_num_threads());
  if (!dump.empty()) {
    at::Tensor out = y.squeeze(0).contiguous();
    std::ofstream(dump, std::ios::binary).write(static_cast<const char*>(out.data_ptr()), out.nbytes());
  }
  return 0;
}
