#pragma once
// Media helpers for the FFmpeg node tests: make fixtures with the ffmpeg tool, read outputs back
// with ffprobe (an independent reader), and drive single source nodes to get frames in memory.

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace reel::test {

// Runs a shell command; returns its exit status and stdout.
int shell(const std::string& command, std::string* output = nullptr);

// A test video made by the ffmpeg tool from its testsrc2 pattern.
std::filesystem::path make_video(const std::filesystem::path& dir, const std::string& name, int width, int height,
                                 int frames, const std::string& fps = "24", const std::string& extra = "");

// ffprobe's view of the first video stream (fields: codec_name, width, height, pix_fmt,
// r_frame_rate, nb_read_frames, color_space, color_transfer, color_primaries) and the format.
nlohmann::json probe(const std::filesystem::path& file);

// Every frame a source node type produces with `params` (driven directly, no graph).
std::vector<at::Tensor> source_frames(const std::string& type, const nlohmann::json& params);

double psnr(const at::Tensor& a, const at::Tensor& b);

}  // namespace reel::test
