#pragma once
// A CogVideoX model as diffusers lays it out: `model_index.json` naming the components, and one
// folder per component (`text_encoder/`, `tokenizer/`, `transformer/`, `vae/`, `scheduler/`) with
// its `config.json` and weights (one safetensors file, or shards with their index).
#include <reel/weights.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace reel::cogvideox {

// One component's config.json. Readers ask for every field they honour; a field that is present
// with the wrong type or a value reel does not implement is refused by name (BadInputError),
// never ignored. A missing optional field takes the default the reference code uses.
class Config {
 public:
  static Config read(const std::filesystem::path& file);

  std::int64_t integer(const std::string& key) const;
  std::int64_t integer(const std::string& key, std::int64_t fallback) const;
  double number(const std::string& key) const;
  double number(const std::string& key, double fallback) const;
  bool boolean(const std::string& key, bool fallback) const;
  // A string that must be one of `allowed`; `fallback` when absent (required when it is empty).
  std::string choice(const std::string& key, const std::vector<std::string>& allowed,
                     std::optional<std::string> fallback = std::nullopt) const;
  std::vector<std::int64_t> integers(const std::string& key) const;
  // Refuses a field whose value is not `expected` (a feature reel does not implement).
  void require(const std::string& key, const nlohmann::json& expected, bool required = false) const;

  const std::filesystem::path& file() const noexcept { return file_; }
  const nlohmann::json& values() const noexcept { return json_; }

 private:
  const nlohmann::json* find(const std::string& key, bool required) const;
  [[noreturn]] void refuse(const std::string& key, const std::string& problem) const;

  std::filesystem::path file_;
  nlohmann::json json_;
};

class ModelFolder {
 public:
  // Reads model_index.json. Throws IoError (missing) or BadInputError (not a diffusers folder).
  static ModelFolder open(const std::filesystem::path& root);

  const std::filesystem::path& root() const noexcept { return root_; }
  const std::string& pipeline() const noexcept { return pipeline_; }  // "CogVideoXPipeline", ...
  // The class model_index.json names for a component ("T5EncoderModel"); empty when absent.
  std::string component_class(const std::string& name) const;
  // The component's folder; BadInputError naming what is missing when the index does not list it
  // or the folder is absent.
  std::filesystem::path component(const std::string& name) const;
  Config config(const std::string& name, const std::string& file = "config.json") const;
  // The component's weights: its single safetensors file or its sharded index.
  weights::Checkpoint weights(const std::string& name) const;

 private:
  std::filesystem::path root_;
  std::string pipeline_;
  std::map<std::string, std::string> classes_;
};

}  // namespace reel::cogvideox
