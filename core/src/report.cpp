#include <reel/runtime/report.h>

#include <torch/version.h>

namespace reel {

namespace {

nlohmann::json stream_json(const StreamDesc& s) {
  nlohmann::json j = {{"width", s.width}, {"height", s.height}, {"channels", s.channels}, {"fps", s.fps.str()}};
  j["frame_count"] = s.frame_count ? nlohmann::json(*s.frame_count) : nlohmann::json(nullptr);
  j["audio"] = s.audio ? nlohmann::json{{"path", s.audio->path}, {"codec", s.audio->codec}} : nlohmann::json(nullptr);
  return j;
}

nlohmann::json memory_json(const MemorySnapshot& m) {
  nlohmann::json j = {{"host_rss_bytes", m.host_rss_bytes}};
  if (m.cuda_allocated_bytes) j["cuda_allocated_bytes"] = *m.cuda_allocated_bytes;
  if (m.cuda_reserved_bytes) j["cuda_reserved_bytes"] = *m.cuda_reserved_bytes;
  return j;
}

}  // namespace

nlohmann::json failure_json(const Failure& f) {
  nlohmann::json j = {{"kind", to_string(f.kind)},   {"exit_code", exit_code(f.kind)},
                      {"phase", to_string(f.phase)}, {"message", f.user_message()},
                      {"reason", f.reason},          {"hint", f.hint},
                      {"detail", f.detail}};
  if (!f.node_id.empty()) j["node"] = f.node_id;
  if (!f.node_type.empty()) j["node_type"] = f.node_type;
  if (!f.plugin.empty()) j["plugin"] = f.plugin;
  if (f.frame) j["frame"] = *f.frame;
  if (!f.file.empty()) j["file"] = f.file;
  if (!f.pointer.empty()) j["pointer"] = f.pointer;
  return j;
}

nlohmann::json run_report(const RunResult& r) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const NodeReport& n : r.nodes) {
    nlohmann::json outputs = nlohmann::json::array();
    for (const auto& s : n.outputs) outputs.push_back(stream_json(s));
    nlohmann::json estimate = nlohmann::json::array();
    for (const auto& e : n.estimate)
      estimate.push_back({{"device", e.device}, {"weight_bytes", e.weight_bytes}, {"working_bytes", e.working_bytes}});
    nlohmann::json node = {{"id", n.id},
                           {"type", n.type},
                           {"plugin", n.plugin},
                           {"final_state", to_string(n.state)},
                           {"outputs", outputs},
                           {"estimate", estimate},
                           {"frames_in", n.frames_in},
                           {"frames_out", n.frames_out},
                           {"load_seconds", n.load_seconds},
                           {"busy_seconds", n.busy_seconds},
                           {"rss_after_load_bytes", n.rss_after_load_bytes},
                           {"oom_retries", n.oom_retries}};
    if (!n.counters.empty()) {
      nlohmann::json counters = nlohmann::json::object();
      for (const auto& [name, value] : n.counters) counters[name] = value;
      node["counters"] = counters;
    }
    if (!n.facts.empty()) {
      nlohmann::json facts = nlohmann::json::object();
      for (const auto& [name, value] : n.facts) facts[name] = value;
      node["facts"] = facts;
    }
    if (!n.cleanup_error.empty()) node["cleanup_error"] = n.cleanup_error;
    nodes.push_back(std::move(node));
  }
  nlohmann::json edges = nlohmann::json::array();
  for (const EdgeReport& e : r.edges)
    edges.push_back({{"from", e.from},
                     {"to", e.to},
                     {"stream", e.stream ? stream_json(*e.stream) : nlohmann::json(nullptr)},
                     {"capacity", e.capacity},
                     {"max_queued", e.max_queued},
                     {"frames", e.frames}});

  nlohmann::json outputs = nlohmann::json::array();
  for (const WrittenFile& f : r.outputs) outputs.push_back({{"node", f.node}, {"path", f.path}, {"bytes", f.bytes}});

  nlohmann::json report = {
      {"reel_version", REEL_VERSION_STRING},
      {"libtorch_version", TORCH_VERSION},
      {"device", device_description()},
      {"graph", {{"file", r.graph_file}, {"fingerprint_fnv1a64", r.graph_fingerprint}, {"overrides", r.overrides}}},
      {"outputs", outputs},
      {"started_at", r.started_at},
      {"seconds", r.seconds},
      {"threads", {{"executor", r.threads}, {"libtorch", r.torch_threads}}},
      {"status", r.ok() ? "succeeded" : (r.cancelled() ? "cancelled" : "failed")},
      {"nodes", nodes},
      {"edges", edges},
      {"memory",
       {{"before", memory_json(r.memory_before)},
        {"after", memory_json(r.memory_after)},
        {"peak_host_rss_bytes", r.peak_rss_bytes}}},
  };
  report["error"] = r.failure ? failure_json(*r.failure) : nlohmann::json(nullptr);
  return report;
}

}  // namespace reel
