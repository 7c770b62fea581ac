#pragma once
// Where and in which precision a model node computes, and how it recognises running out of
// memory: the same words and the same checks for every node with a `device` and a `precision`.
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <string>

namespace reel {

// "cpu", "cuda", "cuda:N" or "auto" (CUDA when usable) -> a libtorch device string ("cpu",
// "cuda:0"). Throws InvalidParamError naming the parameter `device`.
std::string resolve_device(const std::string& wanted);

// "fp32", "fp16" (CUDA only: libtorch has no fp16 convolution on the CPU) or "bf16". Throws
// InvalidParamError naming the parameter `precision`.
c10::ScalarType resolve_precision(const std::string& precision, const std::string& device);

// True for std::bad_alloc, c10::OutOfMemoryError and errors whose text says memory ran out
// (libtorch's CPU allocator, TorchScript re-raising a CUDA out of memory as a plain error).
bool is_out_of_memory(const std::exception& error) noexcept;

// The memory a resolved device ("cpu", "cuda:N") has in all: physical RAM, or the GPU's; empty
// when it cannot be told.
std::optional<std::uint64_t> device_memory_bytes(const std::string& device) noexcept;

}  // namespace reel
