#include "media.h"

#include "test_support.h"

#include <reel/node.h>
#include <reel/runtime/graph.h>

#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <cstdio>

namespace fs = std::filesystem;

namespace reel::test {

int shell(const std::string& command, std::string* output) {
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buffer{};
  std::string text;
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) text.append(buffer.data(), n);
  int status = ::pclose(pipe);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

fs::path make_video(const fs::path& dir, const std::string& name, int width, int height, int frames,
                    const std::string& fps, const std::string& extra) {
  fs::path file = dir / name;
  std::string command = "ffmpeg -v error -y -f lavfi -i testsrc2=size=" + std::to_string(width) + "x" +
                        std::to_string(height) + ":rate=" + fps + " -frames:v " + std::to_string(frames) + " " + extra +
                        " '" + file.string() + "'";
  if (shell(command) != 0) throw std::runtime_error("could not make the fixture: " + command);
  return file;
}

nlohmann::json probe(const fs::path& file) {
  std::string out;
  shell(
      "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
      "stream=codec_name,width,height,pix_fmt,r_frame_rate,nb_read_frames,color_space,color_transfer,color_primaries"
      ":format=format_name -of json '" +
          file.string() + "'",
      &out);
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.contains("streams") || j["streams"].empty()) return nlohmann::json::object();
  nlohmann::json stream = j["streams"][0];
  stream["format_name"] = j["format"]["format_name"];
  return stream;
}

std::vector<at::Tensor> source_frames(const std::string& type, const nlohmann::json& params) {
  const RegisteredType* entry = catalog().find(type);
  if (!entry) throw std::runtime_error("no node type " + type);
  Params validated = validate_params(entry->type, params);
  std::vector<StreamDesc> no_inputs;
  auto node = entry->type.create();
  node->configure(NodeConfig{"test", validated, no_inputs, false});
  node->load();
  std::vector<at::Tensor> frames;
  Emitter out;
  for (bool more = true; more;) {
    more = node->produce(out);
    for (auto& [port, frame] : out.frames()) frames.push_back(frame.image);
    out.clear();
  }
  node->finish(out);
  node->unload();
  return frames;
}

double psnr(const at::Tensor& a, const at::Tensor& b) {
  double mse = (a.to(at::kDouble) - b.to(at::kDouble)).pow(2).mean().item<double>();
  return mse == 0 ? INFINITY : 10 * std::log10(255.0 * 255.0 / mse);
}

}  // namespace reel::test
