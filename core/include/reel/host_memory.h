#pragma once
// Host memory facts a node may use to size its work (e.g. a tile that fits).
#include <cstdint>

namespace reel {

std::uint64_t host_available_bytes();  // MemAvailable from /proc/meminfo

}  // namespace reel
