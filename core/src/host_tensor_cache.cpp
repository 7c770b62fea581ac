// libtorch's CPU allocator with a cache of freed large blocks: the host twin of CUDA's caching
// allocator.
//
// Why: reel fixes glibc's mmap threshold at 1 MiB (memory.cpp) so that frame buffers go back to
// the system when freed and RSS stays flat over long videos. But then every large tensor is a
// fresh mapping the kernel must fault in and zero, and a network's forward pass allocates one per
// layer: measured on Real-ESRGAN x4fast at 320x180, 0.68 s per frame instead of 0.35 s with the
// memory reused. This cache keeps freed blocks of 1 MiB or more and hands them out again for the
// same size, which is what repeats frame after frame (feature maps, frames). It is emptied with
// the other caches (release_cached_memory: after every node unload and every run), so RSS still
// returns to its baseline, and it never holds more than kMaxCachedBytes.
#include "host_tensor_cache.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <map>
#include <mutex>
#include <unordered_map>

namespace reel {

namespace {

constexpr std::size_t kMinCachedBlock = 1 << 20;
constexpr std::size_t kMaxCachedBytes = std::size_t{2} << 30;

class Cache {
 public:
  void* take(std::size_t size) {
    std::lock_guard lock(mutex_);
    auto it = free_.find(size);
    if (it == free_.end()) return nullptr;
    void* block = it->second;
    free_.erase(it);
    cached_bytes_ -= size;
    live_.insert_or_assign(block, size);
    return block;
  }
  void track(void* block, std::size_t size) {
    std::lock_guard lock(mutex_);
    live_.insert_or_assign(block, size);
  }
  // Frees `block` now, or keeps it for the next allocation of its size.
  void give_back(void* block) {
    {
      std::lock_guard lock(mutex_);
      auto it = live_.find(block);
      if (it != live_.end()) {
        const std::size_t size = it->second;
        live_.erase(it);
        if (cached_bytes_ + size <= kMaxCachedBytes) {
          free_.emplace(size, block);
          cached_bytes_ += size;
          return;
        }
      }
    }
    c10::free_cpu(block);
  }
  void empty() {
    std::multimap<std::size_t, void*> blocks;
    {
      std::lock_guard lock(mutex_);
      blocks.swap(free_);
      cached_bytes_ = 0;
    }
    for (auto& [size, block] : blocks) c10::free_cpu(block);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<void*, std::size_t> live_;  // large blocks handed out
  std::multimap<std::size_t, void*> free_;      // large blocks kept, by size
  std::size_t cached_bytes_ = 0;
};

Cache& cache() {
  static Cache* instance = new Cache();  // never destroyed: tensors may be freed at exit
  return *instance;
}

void release_block(void* block) { cache().give_back(block); }

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(std::size_t size) const override {
    void* block = size >= kMinCachedBlock ? cache().take(size) : nullptr;
    if (!block) {
      try {
        block = c10::alloc_cpu(size);
      } catch (const c10::Error&) {
        cache().empty();  // blocks of other sizes may be what is missing
        block = c10::alloc_cpu(size);
      }
      if (size >= kMinCachedBlock) cache().track(block, size);
    }
    return {block, block, &release_block, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release_block; }
};

}  // namespace

void install_host_tensor_cache() noexcept {
  static CachingCpuAllocator* allocator = new CachingCpuAllocator();  // outlives every tensor
  c10::SetCPUAllocator(allocator, /*priority=*/1);
}

void empty_host_tensor_cache() noexcept { cache().empty(); }

}  // namespace reel
