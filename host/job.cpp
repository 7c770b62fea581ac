#include "job.h"

#include <reel/output_file.h>
#include <reel/runtime/graph.h>

namespace reel::host {

using nlohmann::json;

json id_in_broken_line(const std::string& line) {
  int depth = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    if (c != '"') continue;
    // A string: find its end, skipping escapes.
    std::size_t end = i + 1;
    while (end < line.size() && line[end] != '"') end += line[end] == '\\' ? 2 : 1;
    if (end >= line.size()) return nullptr;
    const bool is_id_key = depth == 1 && line.compare(i, end - i + 1, "\"id\"") == 0;
    i = end;
    if (!is_id_key) continue;
    std::size_t colon = line.find_first_not_of(" \t", end + 1);
    if (colon == std::string::npos || line[colon] != ':') continue;
    std::size_t start = line.find_first_not_of(" \t", colon + 1);
    if (start == std::string::npos) return nullptr;
    std::size_t stop = start;
    if (line[start] == '"') {
      stop = start + 1;
      while (stop < line.size() && line[stop] != '"') stop += line[stop] == '\\' ? 2 : 1;
      if (stop >= line.size()) return nullptr;
      ++stop;
    } else {
      if (line[stop] == '-') ++stop;
      while (stop < line.size() && line[stop] >= '0' && line[stop] <= '9') ++stop;
    }
    json value = json::parse(line.substr(start, stop - start), nullptr, /*allow_exceptions=*/false);
    return value.is_string() || value.is_number_integer() ? value : json(nullptr);
  }
  return nullptr;
}

namespace {
const char* const kJobFields = "id, graph, set, overwrite, report";
}  // namespace

std::shared_ptr<Job> parse_job(const json& line, bool default_overwrite) {
  auto job = std::make_shared<Job>();
  if (line.contains("id")) {
    if (!line["id"].is_string() && !line["id"].is_number_integer())
      throw Rejection{"id", "\"id\" must be a string or an integer"};
    job->id = line["id"];
  }
  for (const auto& [key, value] : line.items())
    if (key != "id" && key != "graph" && key != "set" && key != "overwrite" && key != "report")
      throw Rejection{key, "unknown field '" + key + "'; a job has " + kJobFields};
  if (!line.contains("graph")) throw Rejection{"graph", "the job has no \"graph\" (a graph file's path, or a graph)"};
  const json& graph = line["graph"];
  if (!(graph.is_string() && !graph.get<std::string>().empty()) && !graph.is_object())
    throw Rejection{"graph", "\"graph\" must be a graph file's path or a graph document (an object)"};
  job->graph = graph;
  if (line.contains("set")) {
    if (!line["set"].is_array()) throw Rejection{"set", "\"set\" must be an array of \"node.param=value\" strings"};
    for (const auto& entry : line["set"]) {
      if (!entry.is_string())
        throw Rejection{"set", "\"set\" must be an array of \"node.param=value\" strings, not " + entry.dump()};
      try {
        parse_override(entry.get<std::string>());
      } catch (const Error& e) {
        throw Rejection{"set", e.what()};
      }
      job->sets.push_back(entry.get<std::string>());
    }
  }
  job->overwrite = default_overwrite;
  if (line.contains("overwrite")) {
    if (!line["overwrite"].is_boolean()) throw Rejection{"overwrite", "\"overwrite\" must be true or false"};
    job->overwrite = line["overwrite"].get<bool>();
  }
  if (line.contains("report")) {
    if (!line["report"].is_string() || line["report"].get<std::string>().empty())
      throw Rejection{"report", "\"report\" must be a file path"};
    job->report = line["report"].get<std::string>();
    try {
      OutputFile check(job->report, /*overwrite=*/true);  // folder exists and is writable, not a folder itself
    } catch (const Error& e) {
      throw Rejection{"report", std::string(e.what()) + (e.hint().empty() ? "" : ". " + e.hint())};
    }
  }
  return job;
}

}  // namespace reel::host
