#include "model_folder.h"

#include <reel/error.h>

#include <algorithm>
#include <fstream>

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel::cogvideox {

namespace {

json read_json(const fs::path& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw IoError(file.string(), file.string() + " does not exist");
  std::ifstream in(file);
  if (!in) throw IoError(file.string(), "cannot read " + file.string());
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw BadInputError(file.string() + " is not valid JSON: " + e.what());
  }
}

}  // namespace

Config Config::read(const fs::path& file) {
  Config c;
  c.file_ = file;
  c.json_ = read_json(file);
  if (!c.json_.is_object()) throw BadInputError(file.string() + " is not a JSON object");
  return c;
}

void Config::refuse(const std::string& key, const std::string& problem) const {
  throw BadInputError("config " + file_.string() + ": '" + key + "' " + problem);
}

const json* Config::find(const std::string& key, bool required) const {
  auto it = json_.find(key);
  if (it == json_.end() || it->is_null()) {
    if (required) refuse(key, "is missing");
    return nullptr;
  }
  return &*it;
}

std::int64_t Config::integer(const std::string& key) const {
  const json* v = find(key, true);
  if (!v->is_number_integer()) refuse(key, "is " + v->dump() + ", not an integer");
  return v->get<std::int64_t>();
}

std::int64_t Config::integer(const std::string& key, std::int64_t fallback) const {
  return find(key, false) ? integer(key) : fallback;
}

double Config::number(const std::string& key) const {
  const json* v = find(key, true);
  if (!v->is_number()) refuse(key, "is " + v->dump() + ", not a number");
  return v->get<double>();
}

double Config::number(const std::string& key, double fallback) const { return find(key, false) ? number(key) : fallback; }

bool Config::boolean(const std::string& key, bool fallback) const {
  const json* v = find(key, false);
  if (!v) return fallback;
  if (!v->is_boolean()) refuse(key, "is " + v->dump() + ", not true or false");
  return v->get<bool>();
}

std::string Config::choice(const std::string& key, const std::vector<std::string>& allowed,
                           std::optional<std::string> fallback) const {
  const json* v = find(key, !fallback.has_value());
  if (!v) return *fallback;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  if (!v->is_string() || std::find(allowed.begin(), allowed.end(), v->get<std::string>()) == allowed.end())
    refuse(key, "is " + v->dump() + "; reel implements " + list);
  return v->get<std::string>();
}

std::vector<std::int64_t> Config::integers(const std::string& key) const {
  const json* v = find(key, true);
  std::vector<std::int64_t> out;
  if (v->is_array())
    for (const auto& e : *v) {
      if (!e.is_number_integer()) refuse(key, "is " + v->dump() + ", not a list of integers");
      out.push_back(e.get<std::int64_t>());
    }
  else
    refuse(key, "is " + v->dump() + ", not a list of integers");
  return out;
}

void Config::require(const std::string& key, const json& expected, bool required) const {
  const json* v = find(key, required);
  if (v && *v != expected) refuse(key, "is " + v->dump() + "; reel implements only " + expected.dump());
}

ModelFolder ModelFolder::open(const fs::path& root) {
  ModelFolder folder;
  folder.root_ = root;
  const fs::path index = root / "model_index.json";
  std::error_code ec;
  if (!fs::is_regular_file(index, ec))
    throw IoError(index.string(), root.string() + " is not a diffusers model folder: it has no model_index.json",
                  "point at the folder that holds model_index.json, text_encoder/, tokenizer/, transformer/ and vae/");
  json j = read_json(index);
  if (!j.is_object() || !j.contains("_class_name") || !j["_class_name"].is_string())
    throw BadInputError(index.string() + " names no pipeline (_class_name)");
  folder.pipeline_ = j["_class_name"].get<std::string>();
  for (const auto& [key, value] : j.items()) {
    if (key.empty() || key[0] == '_') continue;
    // "vae": ["diffusers", "AutoencoderKLCogVideoX"]; [null, null] marks an absent component.
    if (value.is_array() && value.size() == 2 && value[1].is_string()) folder.classes_[key] = value[1].get<std::string>();
  }
  return folder;
}

std::string ModelFolder::component_class(const std::string& name) const {
  auto it = classes_.find(name);
  return it == classes_.end() ? std::string() : it->second;
}

fs::path ModelFolder::component(const std::string& name) const {
  if (component_class(name).empty())
    throw BadInputError("model folder " + root_.string() + ": model_index.json lists no '" + name + "' component");
  const fs::path dir = root_ / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw BadInputError("model folder " + root_.string() + ": the '" + name + "' component (" + component_class(name) +
                        ") is listed but its folder " + dir.string() + " is missing");
  return dir;
}

Config ModelFolder::config(const std::string& name, const std::string& file) const {
  return Config::read(component(name) / file);
}

weights::Checkpoint ModelFolder::weights(const std::string& name) const {
  const fs::path dir = component(name);
  std::error_code ec;
  std::vector<fs::path> singles, indexes;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    if (file.ends_with(".safetensors.index.json")) indexes.push_back(entry.path());
    else if (entry.path().extension() == ".safetensors") singles.push_back(entry.path());
  }
  if (indexes.size() == 1) return weights::open_checkpoint(indexes[0]);
  if (indexes.empty() && singles.size() == 1) return weights::open_checkpoint(singles[0]);
  if (indexes.empty() && singles.empty())
    throw BadInputError("model folder " + root_.string() + ": " + dir.string() + " holds no safetensors weights");
  throw BadInputError("model folder " + root_.string() + ": " + dir.string() +
                      " holds several weight files and no single index naming which to use");
}

}  // namespace reel::cogvideox
