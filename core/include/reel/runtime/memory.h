#pragma once
// Memory measurement and release, for the host heap and (when built with CUDA) the GPU.

#include <reel/host_memory.h>

#include <cstdint>
#include <optional>
#include <string>

namespace reel {

struct MemorySnapshot {
  std::uint64_t host_rss_bytes = 0;
  std::optional<std::uint64_t> cuda_allocated_bytes;  // set only in CUDA builds with a device
  std::optional<std::uint64_t> cuda_reserved_bytes;
};

MemorySnapshot sample_memory();
std::uint64_t host_rss_bytes();
// Makes libtorch allocate CPU tensors of 64 KiB or more (frames, feature maps) through a cache of
// freed blocks, reused for the same size: nothing is allocated per frame in steady state, and RSS
// does not grow with video length. release_cached_memory empties it. Called by the executor;
// idempotent.
void configure_host_allocator() noexcept;
// Gives freed memory back: CUDA's caching allocator (emptyCache), the host tensor cache (its
// blocks unmapped) and glibc's heap (malloc_trim).
void release_cached_memory() noexcept;
bool cuda_available() noexcept;
std::string device_description();               // "cpu" or the CUDA device name
std::string format_bytes(std::uint64_t bytes);  // "1.5 GiB"

}  // namespace reel
