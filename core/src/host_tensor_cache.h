#pragma once
// A cache of freed large CPU tensor blocks (host_tensor_cache.cpp says why).
namespace reel {

// Makes libtorch allocate CPU tensors through the cache. Called once by configure_host_allocator.
void install_host_tensor_cache() noexcept;
// Frees every cached block. Called by release_cached_memory.
void empty_host_tensor_cache() noexcept;

}  // namespace reel
