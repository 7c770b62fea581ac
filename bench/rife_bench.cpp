// reel_rife_bench: times reel's IFNet v4.6 (the code interpolator.rife runs for one output frame:
// both frames to padded floats, the network at t = 0.5, the crop) on one pair of frames, for the
// side-by-side comparison with PyTorch's Python API in bench/rife-vs-pytorch.sh.
//
//   reel_rife_bench CHECKPOINT FRAMES.rgb WIDTH HEIGHT SCALE REPEATS [--threads N]
//                   [--channels-last] [--glibc-default] [--dump OUT.f32]
// FRAMES.rgb: two frames, HxWx3 uint8 each. Prints "seconds S" per pair, the median, and the peak
// RSS of one pair above the RSS with the model loaded ("pair_peak_bytes"); --dump writes the
// float output (H x W x 3).
#include "flow_models.h"

#include <reel/runtime/memory.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

using namespace reel;

namespace {

std::uint64_t status_bytes(const char* field) {
  std::ifstream status("/proc/self/status");
  const std::string key = std::string(field) + ":";
  for (std::string line; std::getline(status, line);)
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(key.size())) * 1024;  // kB
  return 0;
}

void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: %s CHECKPOINT FRAMES.rgb WIDTH HEIGHT SCALE REPEATS [--threads N] [--channels-last] "
                         "[--glibc-default] [--dump OUT.f32]\n", argv[0]);
    return 64;
  }
  const std::string path = argv[1], frames = argv[2];
  const int width = std::stoi(argv[3]), height = std::stoi(argv[4]), repeats = std::stoi(argv[6]);
  const double scale = std::stod(argv[5]);
  std::string dump;
  bool channels_last = false, glibc_default = false;
  for (int i = 7; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads") at::set_num_threads(std::stoi(argv[++i]));
    else if (a == "--channels-last") channels_last = true;
    else if (a == "--glibc-default") glibc_default = true;
    else if (a == "--dump") dump = argv[++i];
  }
  if (!glibc_default) configure_host_allocator();  // as in `reel`
  c10::InferenceMode inference;
  auto model = interp::load_ifnet(weights::open_checkpoint(path));

  at::Tensor pair = at::empty({2, height, width, 3}, at::kByte);
  std::ifstream(frames, std::ios::binary).read(static_cast<char*>(pair.data_ptr()), static_cast<std::streamsize>(pair.nbytes()));
  at::Tensor a = pair[0].permute({2, 0, 1}).contiguous(), b = pair[1].permute({2, 0, 1}).contiguous();
  const int m = interp::padding_multiple(scale);
  auto input = [&](const at::Tensor& f) {
    at::Tensor x = interp::model_input(f, m, "cpu", at::kFloat);
    return channels_last ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
  };

  std::vector<double> seconds;
  at::Tensor y;
  const std::uint64_t loaded = status_bytes("VmRSS");
  reset_peak_rss();
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    y = interp::interpolate_cropped(*model, input(a), input(b), 0.5, scale, height, width);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    std::printf("seconds %.4f\n", seconds.back());
    std::fflush(stdout);
  }
  std::printf("pair_peak_bytes %llu\n", static_cast<unsigned long long>(status_bytes("VmHWM") - loaded));
  std::sort(seconds.begin(), seconds.end());
  std::printf("median %.4f (IFNet v4.6, %dx%d, scale %g, threads %d)\n", seconds[seconds.size() / 2], width, height,
              scale, at::get_num_threads());
  if (!dump.empty()) {
    at::Tensor out = y.permute({1, 2, 0}).contiguous();
    std::ofstream(dump, std::ios::binary).write(static_cast<const char*>(out.data_ptr()), static_cast<std::streamsize>(out.nbytes()));
  }
  return 0;
}
