// `reel models`: what the checkpoints in model folders hold, and conversion to safetensors.
#include "commands.h"

#include <reel/runtime/failure.h>
#include <reel/weights.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

namespace reel::host {

namespace fs = std::filesystem;

namespace {

struct Recognised {
  std::string node_type;
  DetectedModel model;
};

// The first node type that recognises the checkpoint.
std::optional<Recognised> recognise(const PluginCatalog& catalog, const weights::Checkpoint& checkpoint) {
  for (const auto& [name, registered] : catalog.types()) {
    if (!registered.type.detect_model) continue;
    if (auto model = registered.type.detect_model(checkpoint)) return Recognised{name, std::move(*model)};
  }
  return std::nullopt;
}

// The first node type that recognises a model folder (a diffusers pipeline).
std::optional<Recognised> recognise_folder(const PluginCatalog& catalog, const fs::path& dir) {
  for (const auto& [name, registered] : catalog.types()) {
    if (!registered.type.detect_folder) continue;
    if (auto model = registered.type.detect_folder(dir)) return Recognised{name, std::move(*model)};
  }
  return std::nullopt;
}

bool is_model_folder(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "model_index.json", ec);
}

// One model folder: its variant, node type and components, or why it cannot be read.
nlohmann::json describe_folder(const PluginCatalog& catalog, const fs::path& dir) {
  nlohmann::json item{{"path", dir.string()}, {"format", "folder"}};
  try {
    if (auto found = recognise_folder(catalog, dir)) {
      item["architecture"] = found->model.architecture;
      item["node_type"] = found->node_type;
      nlohmann::json components = nlohmann::json::object();
      for (const auto& [name, what] : found->model.components) components[name] = what;
      item["components"] = components;
      if (!found->model.problem.empty()) item["problem"] = found->model.problem;
    }
  } catch (const std::exception& e) {
    item["error"] = e.what();
  }
  return item;
}

void print_folder(const nlohmann::json& item) {
  std::printf("  %s/ (model folder)\n", fs::path(item["path"].get<std::string>()).filename().c_str());
  if (item.contains("error")) {
    std::printf("    unreadable: %s\n", item["error"].get<std::string>().c_str());
    return;
  }
  if (!item.contains("architecture")) {
    std::printf("    no node type recognises it\n");
    return;
  }
  std::printf("    %s, run with %s\n", item["architecture"].get<std::string>().c_str(),
              item["node_type"].get<std::string>().c_str());
  for (const auto& [name, what] : item["components"].items())
    std::printf("      %-13s %s\n", name.c_str(), what.get<std::string>().c_str());
  if (item.contains("problem")) std::printf("    cannot run: %s\n", item["problem"].get<std::string>().c_str());
}

bool is_checkpoint_file(const fs::path& file) {
  const auto& extensions = weights::checkpoint_extensions();
  if (std::find(extensions.begin(), extensions.end(), file.extension().string()) == extensions.end()) return false;
  // An ncnn model is listed once, by its .param.
  std::error_code ec;
  if (file.extension() == ".bin" && fs::exists(fs::path(file).replace_extension(".param"), ec)) return false;
  return true;
}

std::string count_text(std::uint64_t n) {
  char text[32];
  if (n >= 1'000'000)
    std::snprintf(text, sizeof text, "%.2fM", n / 1e6);
  else
    std::snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(n));
  return text;
}

int print_failure(const std::string& what, std::exception_ptr error) {
  Failure f = classify_exception(error);
  std::fprintf(stderr, "reel: %s: %s\n", what.c_str(), f.reason.c_str());
  if (!f.hint.empty()) std::fprintf(stderr, "      %s\n", f.hint.c_str());
  return exit_code(f.kind);
}

}  // namespace

int command_models(PluginCatalog& catalog, std::vector<std::string> dirs, bool json) {
  catalog.load_all();  // every model type is asked about every checkpoint
  if (dirs.empty())
    for (const auto& dir : weights::model_dirs()) dirs.push_back(dir.string());
  if (dirs.empty()) {
    std::fprintf(stderr, "reel: no model folder: name one, or set --models-dir or REEL_MODELS_PATH\n");
    return 64;
  }
  nlohmann::json list = nlohmann::json::array();
  int code = 0;
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      std::fprintf(stderr, "reel: %s is not a folder\n", dir.c_str());
      code = exit_code(ErrorKind::io);
      continue;
    }
    if (!json) std::printf("%s\n", dir.c_str());
    // A model folder named itself, or model folders inside the folder, then checkpoint files.
    std::vector<fs::path> folders, files;
    if (is_model_folder(dir)) folders.push_back(dir);
    else
      for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.is_directory(ec) && is_model_folder(entry.path())) folders.push_back(entry.path());
        if (entry.is_regular_file(ec) && is_checkpoint_file(entry.path())) files.push_back(entry.path());
      }
    std::sort(folders.begin(), folders.end());
    std::sort(files.begin(), files.end());
    for (const auto& folder : folders) {
      nlohmann::json item = describe_folder(catalog, folder);
      if (json) list.push_back(item);
      else print_folder(item);
    }
    for (const auto& file : files) {
      nlohmann::json item{{"path", file.string()}};
      try {
        weights::Checkpoint checkpoint = weights::open_checkpoint(file);
        item["format"] = checkpoint.format();
        item["parameters"] = checkpoint.parameter_count();
        item["tensors"] = checkpoint.tensors().size();
        if (auto found = recognise(catalog, checkpoint)) {
          item["architecture"] = found->model.architecture;
          item["scale"] = found->model.scale;
          item["node_type"] = found->node_type;
        }
      } catch (const std::exception& e) {
        item["error"] = e.what();
      }
      if (json) {
        list.push_back(item);
        continue;
      }
      std::printf("  %s\n", file.filename().c_str());
      if (item.contains("error")) {
        std::printf("    unreadable: %s\n", item["error"].get<std::string>().c_str());
      } else if (item.contains("architecture")) {
        std::printf("    %s, %s parameters (%s), run with %s\n", item["architecture"].get<std::string>().c_str(),
                    count_text(item["parameters"]).c_str(), item["format"].get<std::string>().c_str(),
                    item["node_type"].get<std::string>().c_str());
      } else {
        std::printf("    %s, %zu tensors, %s parameters; no node type recognises it\n",
                    item["format"].get<std::string>().c_str(), item["tensors"].get<std::size_t>(),
                    count_text(item["parameters"]).c_str());
      }
    }
  }
  if (json) std::printf("%s\n", list.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return code;
}

int command_models_convert(PluginCatalog& catalog, const std::string& in, const std::string& out,
                           bool overwrite) {
  catalog.load_all();
  try {
    weights::Checkpoint checkpoint = weights::open_checkpoint(in);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    if (auto found = recognise(catalog, checkpoint)) {
      tensors = weights::match(checkpoint, found->model.keys, found->model.architecture);
      std::fprintf(stderr, "reel: %s is %s (%s)\n", in.c_str(), found->model.architecture.c_str(),
                   found->node_type.c_str());
    } else if (checkpoint.keyed()) {
      // Not a network reel runs: the tensors are kept under their unwrapped names.
      auto names = weights::normalized_names(checkpoint);
      for (std::size_t i = 0; i < names.size(); ++i)
        if (!names[i].empty()) tensors.emplace_back(names[i], checkpoint.read(i));
    } else {
      throw BadInputError(in + " is an ncnn model of no architecture reel implements, so its tensors have no names");
    }
    weights::save_safetensors(out, tensors, overwrite);
    std::fprintf(stderr, "reel: wrote %s (%zu tensors, %s parameters)\n", out.c_str(), tensors.size(),
                 count_text(checkpoint.parameter_count()).c_str());
    return 0;
  } catch (...) {
    return print_failure("cannot convert " + in, std::current_exception());
  }
}

}  // namespace reel::host
