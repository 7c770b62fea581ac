#pragma once
// FNV-1a 64: the fingerprints of graphs and the identities and checksums of files in shard plans.
// Fast and stable across machines; it tells mix-ups apart, it does not stand against tampering.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace reel {

class Fnv1a64 {
 public:
  void add(const void* data, std::size_t size) noexcept {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < size; ++i) value_ = (value_ ^ bytes[i]) * 1099511628211ull;
  }
  void add(std::string_view text) noexcept { add(text.data(), text.size()); }
  // 16 lowercase hex digits.
  std::string hex() const {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value_));
    return text;
  }

 private:
  std::uint64_t value_ = 1469598103934665603ull;
};

}  // namespace reel
