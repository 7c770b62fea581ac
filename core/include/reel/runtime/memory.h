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
// Makes glibc return large blocks (frames) to the system as soon as they are freed. Without it,
// glibc's dynamic mmap threshold rises after the first large free and frame buffers pile up in
// the heap, so RSS would grow with video length. Called by the executor; idempotent.
void configure_host_allocator() noexcept;
// Gives freed memory back: CUDA's caching allocator (emptyCache) and glibc's heap (malloc_trim).
void release_cached_memory() noexcept;
bool cuda_available() noexcept;
std::string device_description();               // "cpu" or the CUDA device name
std::string format_bytes(std::uint64_t bytes);  // "1.5 GiB"

}  // namespace reel
