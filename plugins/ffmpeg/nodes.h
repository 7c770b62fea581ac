#pragma once
// The node types of the FFmpeg plugin, registered together by plugin.cpp.
#include <reel/plugin.h>

namespace reel::ffmpeg {
void register_encoder(Registry& registry);
void register_sources(Registry& registry);
}  // namespace reel::ffmpeg
