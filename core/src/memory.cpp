#include <reel/compute.h>
#include <reel/runtime/memory.h>

#include "host_tensor_cache.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>

#ifdef REEL_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

namespace reel {

std::uint64_t host_rss_bytes() {
  // statm: size resident shared ... in pages
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::uint64_t host_available_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t value = 0;
  std::string unit;
  while (meminfo >> key >> value >> unit)
    if (key == "MemAvailable:") return value * 1024;
  return 0;
}

std::optional<std::uint64_t> device_memory_bytes(const std::string& device) noexcept {
  if (device == "cpu")
    return static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
#ifdef REEL_WITH_CUDA
  if (device.rfind("cuda:", 0) == 0 && cuda_available()) try {
      cudaDeviceProp properties{};
      if (cudaGetDeviceProperties(&properties, std::stoi(device.substr(5))) == cudaSuccess)
        return static_cast<std::uint64_t>(properties.totalGlobalMem);
    } catch (...) {
    }
#endif
  return std::nullopt;
}

bool cuda_available() noexcept {
#ifdef REEL_WITH_CUDA
  try {
    return c10::cuda::device_count() > 0;
  } catch (...) {
    return false;
  }
#else
  return false;
#endif
}

MemorySnapshot sample_memory() {
  MemorySnapshot snapshot;
  snapshot.host_rss_bytes = host_rss_bytes();
#ifdef REEL_WITH_CUDA
  if (cuda_available()) try {
      auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
      constexpr std::size_t kAggregate = 0;  // StatType::AGGREGATE, whose namespace moved between releases
      snapshot.cuda_allocated_bytes = stats.allocated_bytes[kAggregate].current;
      snapshot.cuda_reserved_bytes = stats.reserved_bytes[kAggregate].current;
    } catch (...) {
      // A device in a bad state has no statistics; the host numbers still count.
    }
#endif
  return snapshot;
}

void configure_host_allocator() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    // Frames and other large tensor blocks are reused through a cache emptied with the other
    // caches, so nothing is allocated per frame and RSS returns to its baseline after a run.
    install_host_tensor_cache();
  });
}

void release_cached_memory() noexcept {
#ifdef REEL_WITH_CUDA
  try {
    if (cuda_available()) c10::cuda::CUDACachingAllocator::emptyCache();
  } catch (...) {
    // A broken device cannot stop the host heap from being trimmed.
  }
#endif
  empty_host_tensor_cache();
  ::malloc_trim(0);
}

std::string device_description() {
#ifdef REEL_WITH_CUDA
  if (cuda_available()) {
    cudaDeviceProp properties{};
    if (cudaGetDeviceProperties(&properties, c10::cuda::current_device()) == cudaSuccess)
      return std::string("cuda: ") + properties.name;
    return "cuda";
  }
#endif
  return "cpu";
}

std::string format_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) value /= 1024, ++unit;
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

}  // namespace reel
