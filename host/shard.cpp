#include "shard.h"

#include "console.h"
#include "progress.h"

#include <reel/output_file.h>
#include <reel/runtime/fnv.h>
#include <reel/runtime/report.h>
#include <reel/weights.h>

#ifdef REEL_WITH_FFMPEG
#include "frame_grid.h"
#include "join.h"
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>

namespace reel::host {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kPlanFormat = 1;

// Adds `length` bytes of `file` from `offset` (all when length is -1) to `hash`.
void hash_bytes(const fs::path& file, std::uint64_t offset, std::int64_t length, Fnv1a64& hash) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError(file.string(), "cannot read " + file.string());
  in.seekg(static_cast<std::streamoff>(offset));
  std::vector<char> buffer(1 << 20);
  while (length != 0 && in) {
    const std::size_t want = length < 0 ? buffer.size() : std::min<std::size_t>(buffer.size(), length);
    in.read(buffer.data(), static_cast<std::streamsize>(want));
    const auto got = static_cast<std::size_t>(in.gcount());
    if (got == 0) break;
    hash.add(buffer.data(), got);
    if (length > 0) length -= static_cast<std::int64_t>(got);
  }
}

// What makes a file the same file on every machine: its size and its first, middle and last MiB
// (reading all of a long video on every shard would cost more than the shard). Not its time: a
// source or model copied to each machine (object store, local disk) keeps its identity.
std::string file_identity(const fs::path& file) {
  std::error_code ec;
  const std::uint64_t size = fs::file_size(file, ec);
  if (ec) throw IoError(file.string(), "cannot read " + file.string() + ": " + ec.message());
  Fnv1a64 hash;
  hash.add(std::to_string(size) + ":");
  constexpr std::uint64_t mib = 1 << 20;
  if (size <= 3 * mib) {
    hash_bytes(file, 0, -1, hash);
  } else {
    hash_bytes(file, 0, mib, hash);
    hash_bytes(file, size / 2 - mib / 2, mib, hash);
    hash_bytes(file, size - mib, -1, hash);
  }
  return hash.hex();
}

// The models the graph's nodes load (their `model` parameters, resolved as the nodes resolve
// them): each file's identity; an ncnn `.param` with its `.bin`, a folder (a diffusers model)
// with every file in it.
json model_identities(const GraphSpec& graph) {
  json models = json::object();
  for (const NodeSpec& node : graph.nodes) {
    const auto model = node.params.find("model");
    if (model == node.params.end() || !model->is_string() || model->get<std::string>().empty()) continue;
    const fs::path path = weights::resolve_model(model->get<std::string>(), node.id + ".model");
    Fnv1a64 hash;
    std::vector<fs::path> files;
    if (fs::is_directory(path)) {
      for (const auto& item : fs::recursive_directory_iterator(path))
        if (item.is_regular_file()) files.push_back(item.path());
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(path);
      if (path.extension() == ".param") files.push_back(fs::path(path).replace_extension(".bin"));
    }
    for (const fs::path& file : files)
      hash.add(fs::relative(file, fs::is_directory(path) ? path : path.parent_path()).string() + "=" +
               file_identity(file) + ";");
    models[node.id] = hash.hex();
  }
  return models;
}

std::string file_checksum(const fs::path& file) {
  Fnv1a64 hash;
  hash_bytes(file, 0, -1, hash);
  return hash.hex();
}

// The nodes that splitting changes: the source (its range) and the sink (its part).
struct Roles {
  const NodeSpec* source = nullptr;
  const NodeSpec* sink = nullptr;
};

[[noreturn]] void unsplittable(const std::string& why, const std::string& hint = {}) {
  throw Error(ErrorKind::invalid_graph, "this graph cannot be split into frame ranges: " + why,
              hint.empty() ? "Run it whole with `reel run`, or as many jobs (`reel shard plan --jobs`)." : hint);
}

bool has_param(const NodeType& type, const std::string& name) {
  return std::any_of(type.params.begin(), type.params.end(), [&](const ParamSpec& p) { return p.name == name; });
}

Roles find_roles(const GraphSpec& graph, const PluginCatalog& catalog) {
  Roles roles;
  for (const NodeSpec& node : graph.nodes) {
    const RegisteredType* entry = catalog.find(node.type);
    if (!entry) unsplittable("node '" + node.id + "' has the unknown type " + node.type);
    const NodeType& type = entry->type;
    if (type.frame_dependence == FrameDependence::undeclared)
      unsplittable("node '" + node.id + "' (" + node.type +
                   ") does not declare which input frames its output frames come from");
    if (type.inputs.empty()) {
      if (roles.source) unsplittable("it has two sources, '" + roles.source->id + "' and '" + node.id + "'");
      if (!has_param(type, "start") || !has_param(type, "count"))
        unsplittable("its source '" + node.id + "' (" + node.type + ") cannot start at a frame (no start and count)");
      roles.source = &node;
    }
    if (type.outputs.empty()) {
      if (roles.sink) unsplittable("it has two outputs, '" + roles.sink->id + "' and '" + node.id + "'");
      if (!has_param(type, "path") || !has_param(type, "frames"))
        unsplittable("its output node '" + node.id + "' (" + node.type + ") cannot write a part (no path and frames)");
      roles.sink = &node;
    }
  }
  if (!roles.source || !roles.sink) unsplittable("it needs one video source and one encoder");
  return roles;
}

// The frames reaching the sink when the source gives `count` frames from `start`, as the graph's
// plan says (nothing loads).
std::int64_t frames_at_sink(GraphSpec graph, const Roles& roles, std::int64_t start, std::int64_t count,
                            const PluginCatalog& catalog, const RunOptions& options) {
  for (NodeSpec& node : graph.nodes)
    if (node.id == roles.source->id) node.params["start"] = start, node.params["count"] = count;
  RunResult plan = plan_graph(graph, catalog, options);
  if (plan.failure) throw Error(plan.failure->kind, plan.failure->detail, plan.failure->hint);
  for (const EdgeReport& edge : plan.edges)
    if (edge.to.rfind(roles.sink->id + ".", 0) == 0 && edge.stream && edge.stream->frame_count)
      return *edge.stream->frame_count;
  unsplittable("the number of frames reaching '" + roles.sink->id + "' is not known before the run",
               "Use a source whose file states its frame count (MP4, MOV), without fps resampling.");
}

// "out.part-0003-of-0016.mkv", "out.job-0003.mp4": beside `output`, numbered.
fs::path numbered_path(const std::string& output, const std::string& number) {
  const fs::path out(output);
  return out.parent_path() / (out.stem().string() + number + out.extension().string());
}

fs::path part_path(const std::string& output, int index, int shards) {
  char number[32];
  std::snprintf(number, sizeof number, ".part-%04d-of-%04d", index, shards);
  return numbered_path(output, number);
}

json read_json(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return json();
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? json() : j;
}

json read_plan(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(path, "cannot read the plan " + path);
  json plan = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (plan.is_discarded() || !plan.is_object() || plan.value("reel_shard_plan", 0) != kPlanFormat ||
      !plan.contains("shards") || !plan["shards"].is_array() || !plan.contains("graph") ||
      (plan.value("kind", "") != "frames" && plan.value("kind", "") != "jobs"))
    throw BadInputError(path + " is not a reel shard plan (format " + std::to_string(kPlanFormat) + ")",
                        "Make one with `reel shard plan`.");
  return plan;
}

bool is_job_plan(const json& plan) { return plan.value("kind", "") == "jobs"; }

bool retryable(ErrorKind kind) {
  return kind == ErrorKind::out_of_memory || kind == ErrorKind::device || kind == ErrorKind::io ||
         kind == ErrorKind::timeout || kind == ErrorKind::cancelled;
}

// ---- records: what a unit of work (a frame shard's part, a job) left behind ----
//
// Beside the unit's first output: OUT.done.json (the files it wrote with their sizes and
// checksums, and the fingerprint it was made for) or OUT.failed.json (the error). A unit is done
// when its done record is for this fingerprint and every file it lists is there at its size.

fs::path done_record(const fs::path& output) { return output.string() + ".done.json"; }
fs::path failed_record(const fs::path& output) { return output.string() + ".failed.json"; }

struct UnitState {
  std::string state;  // "done", "failed" or "missing"
  json record;
};

UnitState unit_state(const fs::path& output, const std::string& fingerprint) {
  json done = read_json(done_record(output));
  if (done.is_object() && done.value("fingerprint", "") == fingerprint && done.contains("files") &&
      done["files"].is_array()) {
    bool whole = true;
    for (const json& file : done["files"]) {
      std::error_code ec;
      const fs::path path = file.value("path", "");
      whole = whole && fs::exists(path, ec) && fs::file_size(path, ec) == file.value("bytes", std::uint64_t{0});
    }
    if (whole) return {"done", done};
  }
  json failed = read_json(failed_record(output));
  if (failed.is_object()) return {"failed", failed};
  return {"missing", json()};
}

// Runs one unit's graph with a progress display; writes its done record (with `record` and its
// files), or its failed record. `check` may fail a run that succeeded (nullopt: fine); it runs
// before the record is written. Returns reel's exit code.
int run_unit(const GraphSpec& graph, const PluginCatalog& catalog, RunOptions options, const fs::path& output,
             const std::string& fingerprint, json record,
             const std::function<std::optional<std::string>(const RunResult&)>& check = {}) {
  std::error_code ec;
  fs::remove(done_record(output), ec);
  fs::remove(failed_record(output), ec);
  auto progress = make_progress_printer(true);
  options.observer = progress.get();
  options.cancel = &cancel_flag();
  RunResult result = run_graph(graph, catalog, options);
  if (progress) progress->end_run();
  if (result.ok() && check) {
    if (auto problem = check(result)) {
      for (const WrittenFile& file : result.outputs) fs::remove(file.path, ec);
      result.failure = Failure{};
      result.failure->kind = ErrorKind::internal;
      result.failure->reason = result.failure->detail = *problem;
    }
  }
  print_run_outcome(result);
  record["fingerprint"] = fingerprint;
  if (!result.ok()) {
    const Failure& f = *result.failure;
    record.update({{"kind", to_string(f.kind)},
                   {"message", f.detail},
                   {"exit_code", exit_code(f.kind)},
                   {"retryable", retryable(f.kind)}});
    write_report_file(failed_record(output).string(), record);
    return exit_code(f.kind);
  }
  json files = json::array();
  for (const WrittenFile& file : result.outputs)
    files.push_back({{"path", file.path}, {"bytes", fs::file_size(file.path)}, {"checksum_fnv1a64", file_checksum(file.path)}});
  record.update({{"files", files}, {"seconds", result.seconds}});
  write_report_file(done_record(output).string(), record);
  return 0;
}

// "0,2-4,7": the form of Slurm's --array.
std::string index_list(const std::vector<int>& indices) {
  std::string text;
  for (std::size_t i = 0; i < indices.size();) {
    std::size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    if (!text.empty()) text += ',';
    text += std::to_string(indices[i]);
    if (j > i) text += '-' + std::to_string(indices[j]);
    i = j + 1;
  }
  return text;
}

std::optional<int> index_from_environment() {
  for (const char* name : {"SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"}) {
    const char* value = std::getenv(name);
    if (!value || !*value) continue;
    char* end = nullptr;
    const long index = std::strtol(value, &end, 10);
    if (*end == '\0' && index >= 0 && index < 1'000'000) return static_cast<int>(index);
    std::fprintf(stderr, "reel: %s is '%s', not a shard index\n", name, value);
    return std::nullopt;
  }
  return std::nullopt;
}

// A graph that cannot be read or planned, reported as `reel run` reports it.
int report_failure(const std::string& file, Failure failure) {
  RunResult result;
  result.graph_file = file;
  result.failure = std::move(failure);
  print_run_outcome(result);
  return exit_code(result.failure->kind);
}

void print_error(const Error& e) {
  std::fprintf(stderr, "reel: %s\n", e.what());
  if (!e.hint().empty()) std::fprintf(stderr, "%s\n", e.hint().c_str());
}

// ---- frame shards: one long video in frame ranges ----

// The state of frame shard `entry`: its part, for the plan's fingerprint.
UnitState frame_shard_state(const json& plan, const json& entry) {
  return unit_state(entry.at("part").get<std::string>(), plan.value("fingerprint", ""));
}

int plan_frames(PluginCatalog& catalog, const ShardPlanArgs& args, const RunOptions& options, GraphSpec& graph) {
  const Roles roles = find_roles(graph, catalog);

  // The source's range as the graph has it, and its length.
  RunResult whole = plan_graph(graph, catalog, options);
  if (whole.failure) return report_failure(args.graph, std::move(*whole.failure));
  const std::int64_t start = roles.source->params.value("start", std::int64_t{0});
  std::optional<std::int64_t> length;
  for (const NodeReport& node : whole.nodes)
    if (node.id == roles.source->id && !node.outputs.empty()) length = node.outputs[0].frame_count;
  if (!length)
    unsplittable("the source '" + roles.source->id + "' does not state its length",
                 "Use a file whose header states its frame count (MP4, MOV; an MKV or WebM file can be "
                 "remuxed: ffmpeg -i in.mkv -c copy in.mp4), without fps resampling.");
  const std::int64_t n = *length;

  // The rates at the source and at the sink: output frame j sits at source position j * P / Q,
  // with Q / P the ratio of the rates (reduced). A source of x frames gives floor((x - 1) Q / P) + 1
  // frames (the interpolators' timeline; x for a graph that keeps the rate): checked on the plan at
  // three lengths. Every P source frames the two grids meet again, so a range starting on a
  // multiple of P makes exactly the frames the whole run makes there.
  std::optional<Rational> in_fps, out_fps;
  for (const NodeReport& node : whole.nodes)
    if (node.id == roles.source->id && !node.outputs.empty()) in_fps = node.outputs[0].fps;
  for (const EdgeReport& edge : whole.edges)
    if (edge.to.rfind(roles.sink->id + ".", 0) == 0 && edge.stream) out_fps = edge.stream->fps;
  if (!in_fps || !out_fps || in_fps->num <= 0 || in_fps->den <= 0 || out_fps->num <= 0 || out_fps->den <= 0)
    unsplittable("the frame rates at its source and output are not known before the run");
  const Rational ratio = Rational{out_fps->num * in_fps->den, out_fps->den * in_fps->num}.reduced();
  const std::int64_t period = ratio.den, per_period = ratio.num;
  auto expected_out = [&](std::int64_t x) {
    return static_cast<std::int64_t>(static_cast<__int128>(x - 1) * per_period / period) + 1;
  };
  for (std::int64_t x : {n, n - 1, std::int64_t{2}}) {
    const std::int64_t got = frames_at_sink(graph, roles, start, x, catalog, options);
    if (got != expected_out(x))
      unsplittable("its output does not follow its frame rate (" + in_fps->str() + " -> " + out_fps->str() + " fps: " +
                   std::to_string(x) + " source frames give " + std::to_string(got) + " frames, not " +
                   std::to_string(expected_out(x)) + ")");
  }
  const std::int64_t out_n = expected_out(n), periods = n / period;
  if (periods < args.shards || n < 2 * static_cast<std::int64_t>(args.shards))
    throw Error(ErrorKind::usage,
                "the source has " + std::to_string(n) + " frames: too few for " + std::to_string(args.shards) +
                    " shards of at least 2 frames" +
                    (period > 1 ? " starting on multiples of " + std::to_string(period) + " frames (where " +
                                      in_fps->str() + " and " + out_fps->str() + " fps frames line up)"
                                : std::string()));
  // A range reads one frame past its end when frames are made between its last and the next.
  const std::int64_t halo = per_period > period ? 1 : 0;

  const std::string output = roles.sink->params.value("path", "");
  const std::string identity = file_identity(roles.source->params.value("path", ""));
  const std::string graph_print = graph_fingerprint(graph);
  const json models = model_identities(graph);
  Fnv1a64 whole_print;
  whole_print.add(graph_print + ":" + identity + ":" + models.dump() + ":" + std::to_string(args.shards));
  json shards = json::array();
  for (int i = 0; i < args.shards; ++i) {
    const bool last = i + 1 == args.shards;
    const std::int64_t a = period * (periods * i / args.shards);
    const std::int64_t b = last ? n : period * (periods * (i + 1) / args.shards);
    const std::int64_t before = a / period * per_period;  // the whole run's frames before position a
    shards.push_back({{"index", i},
                      {"start", start + a},
                      {"frames", b - a},
                      {"read", last ? b - a : b - a + halo},
                      {"keep", last ? out_n - before : (b - a) / period * per_period},
                      {"part", part_path(output, i, args.shards).string()}});
  }
  json plan = {{"reel_shard_plan", kPlanFormat},
               {"kind", "frames"},
               {"fingerprint", whole_print.hex()},
               {"graph", effective_graph_json(graph)},
               {"graph_fingerprint", graph_print},
               {"models", models},
               {"source", {{"node", roles.source->id},
                           {"path", roles.source->params.value("path", "")},
                           {"identity", identity},
                           {"start", start},
                           {"frames", n}}},
               {"output", {{"node", roles.sink->id}, {"path", output}, {"frames", out_n}}},
               {"frames_out", {{"ratio", ratio.str()}, {"period", period}, {"halo", halo}}},
               {"shards", shards}};
  write_report_file(args.plan, plan);
#ifdef REEL_WITH_FFMPEG
  // A stream that cannot be entered at a keyframe is decoded from its start by every shard.
  if (args.shards > 1 && roles.source->type == "source.video" &&
      !ffmpeg::enters_at_keyframes(roles.source->params.value("path", "")))
    std::fprintf(stderr,
                 "reel: note: %s does not place its frames by their timestamps (a variable frame rate), so "
                 "every shard decodes it from its start to reach its range; re-encode it at a constant rate "
                 "to let shards enter at a keyframe\n",
                 roles.source->params.value("path", "").c_str());
#endif
  std::fprintf(stderr, "reel: %s: %d shards of %s (%lld frames -> %lld), parts beside %s\n", args.plan.c_str(),
               args.shards, roles.source->params.value("path", "").c_str(), static_cast<long long>(n),
               static_cast<long long>(out_n), output.c_str());
  return 0;
}

int run_frame_shard(PluginCatalog& catalog, const json& plan, const std::string& plan_path, int shard,
                    const RunOptions& options) {
  const json& entry = plan["shards"][shard];
  const fs::path part = entry.at("part").get<std::string>();
  GraphSpec graph = parse_graph_text(plan["graph"].dump(), plan_path);
  load_graph_types(catalog, graph);
  const Roles roles = find_roles(graph, catalog);
  const std::string source_path = roles.source->params.value("path", "");
  if (graph_fingerprint(graph) != plan.value("graph_fingerprint", "") ||
      file_identity(source_path) != plan["source"].value("identity", ""))
    throw BadInputError(source_path + " (or the plan's graph) has changed since " + plan_path + " was made",
                        "Make a new plan; the parts made so far belong to the old one.");
  const json models = model_identities(graph);
  for (const auto& [node, identity] : models.items())
    if (plan.value("models", json::object()).value(node, "") != identity)
      throw BadInputError("the model of node '" + node + "' here is not the one " + plan_path + " was made with",
                          "Give every machine the same model files, or make a new plan.");

  const std::string label = "shard " + std::to_string(shard) + " of " + std::to_string(plan["shards"].size());
  if (frame_shard_state(plan, entry).state == "done") {
    std::fprintf(stderr, "reel: %s is done already: %s\n", label.c_str(), part.c_str());
    return 0;
  }
  const std::string source = roles.source->id, sink = roles.sink->id;
  const std::int64_t first = entry.at("start").get<std::int64_t>(), keep = entry.at("keep").get<std::int64_t>();
  apply_overrides(graph,
                  {source + ".start=" + std::to_string(first), source + ".count=" + std::to_string(entry.at("read").get<std::int64_t>()),
                   sink + ".path=" + part.string(), sink + ".overwrite=true", sink + ".frames=" + std::to_string(keep),
                   sink + ".audio=none"},
                  &catalog);
  std::fprintf(stderr, "reel: running %s: frames %lld to %lld into %s\n", label.c_str(), static_cast<long long>(first),
               static_cast<long long>(first + entry.at("frames").get<std::int64_t>() - 1), part.c_str());
  // The part holds exactly the frames the plan gives it, or it is not a part of this join.
  auto check = [&](const RunResult& result) -> std::optional<std::string> {
    std::int64_t arrived = 0;
    for (const NodeReport& node : result.nodes)
      if (node.id == sink) arrived = node.frames_in;
    if (arrived >= keep) return std::nullopt;
    return std::to_string(arrived) + " frames reached the encoder, but the plan gives this part " + std::to_string(keep);
  };
  return run_unit(graph, catalog, options, part, plan.value("fingerprint", ""), {{"shard", shard}, {"frames", keep}},
                  check);
}

// ---- job shards: many runs of one graph, each with its own --set variation ----

// `--jobs FILE`: a JSON array with one object per job, {"node.param": value, ...}.
std::vector<std::vector<std::string>> read_variations(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw IoError(file, "cannot read the jobs file " + file);
  const json jobs = json::parse(in, nullptr, /*allow_exceptions=*/false);
  const std::string form = "Give a JSON array with one object per job: [{\"gen.prompt\": \"a cat\", \"gen.seed\": 1}, ...].";
  if (jobs.is_discarded() || !jobs.is_array() || jobs.empty())
    throw BadInputError(file + " is not a list of jobs", form);
  std::vector<std::vector<std::string>> variations;
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    if (!jobs[j].is_object())
      throw BadInputError(file + ": job " + std::to_string(j) + " is not an object of node.param values", form);
    std::vector<std::string>& sets = variations.emplace_back();
    for (const auto& [key, value] : jobs[j].items())
      sets.push_back(key + "=" + (value.is_string() ? value.get<std::string>() : value.dump()));
  }
  return variations;
}

// What a job's run depends on besides its graph and models: the files its sources read (a video,
// an image to start from). Only sources: a file another node names may be one it writes (a log,
// a side output), which would change with every run.
std::string job_fingerprint(const GraphSpec& graph, const PluginCatalog& catalog) {
  Fnv1a64 hash;
  hash.add(graph_fingerprint(graph) + ":" + model_identities(graph).dump());
  for (const NodeSpec& node : graph.nodes) {
    const RegisteredType* entry = catalog.find(node.type);
    if (!entry || !entry->type.inputs.empty()) continue;
    for (const auto& [name, value] : node.params.items()) {
      std::error_code ec;
      if (!value.is_string() || name == "model") continue;
      const fs::path path = value.get<std::string>();
      if (!path.empty() && fs::is_regular_file(path, ec)) hash.add(":" + node.id + "." + name + "=" + file_identity(path));
    }
  }
  return hash.hex();
}

// The nodes that write files: no outputs, a `path`.
std::vector<const NodeSpec*> output_nodes(const GraphSpec& graph, const PluginCatalog& catalog) {
  std::vector<const NodeSpec*> sinks;
  for (const NodeSpec& node : graph.nodes) {
    const RegisteredType* entry = catalog.find(node.type);
    if (entry && entry->type.outputs.empty() && has_param(entry->type, "path")) sinks.push_back(&node);
  }
  return sinks;
}

// Job `j`'s graph: the plan's graph with the job's sets.
GraphSpec job_graph(const GraphSpec& base, const std::vector<std::string>& sets, const PluginCatalog& catalog, int j) {
  GraphSpec graph = base;
  try {
    apply_overrides(graph, sets, &catalog);
  } catch (const Error& e) {
    throw Error(e.kind(), "job " + std::to_string(j) + ": " + e.what(), e.hint());
  }
  return graph;
}

int plan_jobs(PluginCatalog& catalog, const ShardPlanArgs& args, const RunOptions& options, GraphSpec& base) {
  const auto variations = read_variations(args.jobs);
  const int count = static_cast<int>(variations.size());
  if (count < args.shards)
    throw Error(ErrorKind::usage, args.jobs + " has " + std::to_string(count) + " jobs: too few for " +
                                      std::to_string(args.shards) + " shards");
  if (output_nodes(base, catalog).empty())
    throw Error(ErrorKind::invalid_graph, "the graph writes no file (no output node with a path), so its jobs leave nothing");

  json jobs = json::array();
  std::map<std::string, int> writer;  // output path -> job
  Fnv1a64 whole_print;
  for (int j = 0; j < count; ++j) {
    GraphSpec graph = job_graph(base, variations[j], catalog, j);
    // Each output not named by the job gets the job's number: out.job-0003.mp4.
    std::vector<std::string> numbered;
    json outputs = json::array();
    for (const NodeSpec* sink : output_nodes(graph, catalog)) {
      const std::string set_path = sink->id + ".path=";
      const bool named = std::any_of(variations[j].begin(), variations[j].end(),
                                     [&](const std::string& s) { return s.rfind(set_path, 0) == 0; });
      std::string path = sink->params.value("path", "");
      if (!named) {
        char number[32];
        std::snprintf(number, sizeof number, ".job-%04d", j);
        path = numbered_path(path, number).string();
        numbered.push_back(set_path + path);
      }
      if (auto [it, fresh] = writer.emplace(path, j); !fresh)
        throw Error(ErrorKind::usage, "jobs " + std::to_string(it->second) + " and " + std::to_string(j) + " both write " + path,
                    "Give each job its own output path (" + set_path + "...), or leave it out to number them.");
      outputs.push_back(path);
    }
    apply_overrides(graph, numbered, &catalog);
    std::vector<std::string> sets = variations[j];
    sets.insert(sets.end(), numbered.begin(), numbered.end());
    RunResult planned = plan_graph(graph, catalog, options);
    if (planned.failure) {
      planned.failure->detail = "job " + std::to_string(j) + ": " + planned.failure->detail;
      return report_failure(args.graph, std::move(*planned.failure));
    }
    const std::string print = job_fingerprint(graph, catalog);
    whole_print.add(print);
    jobs.push_back({{"index", j}, {"sets", sets}, {"outputs", outputs}, {"fingerprint", print}});
  }
  json shards = json::array();
  for (int i = 0; i < args.shards; ++i) {
    json members = json::array();
    for (int j = count * i / args.shards; j < count * (i + 1) / args.shards; ++j) members.push_back(j);
    shards.push_back({{"index", i}, {"jobs", members}});
  }
  write_report_file(args.plan, {{"reel_shard_plan", kPlanFormat},
                                {"kind", "jobs"},
                                {"fingerprint", whole_print.hex()},
                                {"graph", effective_graph_json(base)},
                                {"jobs", jobs},
                                {"shards", shards}});
  std::fprintf(stderr, "reel: %s: %d jobs of %s in %d shards\n", args.plan.c_str(), count, args.graph.c_str(),
               args.shards);
  return 0;
}

UnitState job_state(const json& job) {
  return unit_state(job.at("outputs").at(0).get<std::string>(), job.value("fingerprint", ""));
}

// A job shard is done when all its jobs are, failed when one failed.
UnitState job_shard_state(const json& plan, const json& entry) {
  UnitState shard{"done", json::object()};
  for (const json& j : entry.at("jobs")) {
    const UnitState job = job_state(plan["jobs"].at(j.get<std::size_t>()));
    if (job.state == "failed" && shard.state != "failed") shard = {"failed", job.record};
    if (job.state == "missing" && shard.state == "done") shard = {"missing", json()};
  }
  return shard;
}

int run_job_shard(PluginCatalog& catalog, const json& plan, const std::string& plan_path, int shard,
                  RunOptions options) {
  GraphSpec base = parse_graph_text(plan["graph"].dump(), plan_path);
  load_graph_types(catalog, base);
  // A job's output may be left whole by a run killed after its rename, before its record.
  options.overwrite_outputs = true;
  const json& members = plan["shards"][shard].at("jobs");
  int first_failure = 0;
  for (const json& index : members) {
    const int j = index.get<int>();
    const json& job = plan["jobs"].at(static_cast<std::size_t>(j));
    GraphSpec graph = job_graph(base, job.at("sets").get<std::vector<std::string>>(), catalog, j);
    const std::string print = job_fingerprint(graph, catalog);
    if (print != job.value("fingerprint", ""))
      throw BadInputError("job " + std::to_string(j) + " of " + plan_path +
                              ": its graph, models or input files have changed since the plan was made",
                          "Make a new plan; the outputs made so far belong to the old one.");
    const fs::path output = job.at("outputs").at(0).get<std::string>();
    const std::string label = "job " + std::to_string(j) + " (shard " + std::to_string(shard) + ")";
    if (job_state(job).state == "done") {
      std::fprintf(stderr, "reel: %s is done already: %s\n", label.c_str(), output.c_str());
      continue;
    }
    std::fprintf(stderr, "reel: running %s into %s\n", label.c_str(), output.c_str());
    const int code = run_unit(graph, catalog, options, output, print, {{"shard", shard}, {"job", j}});
    if (code != 0 && first_failure == 0) first_failure = code;
    if (code == exit_code(ErrorKind::cancelled)) break;
  }
  return first_failure;
}

}  // namespace

int command_shard_plan(PluginCatalog& catalog, const ShardPlanArgs& args, const RunOptions& options) {
  try {
    GraphSpec graph;
    if (auto failure = read_graph(catalog, args.graph, std::nullopt, args.sets, graph))
      return report_failure(args.graph, std::move(*failure));
    load_graph_types(catalog, graph);
    if (args.shards < 1) throw Error(ErrorKind::usage, "--shards must be at least 1");
    return args.jobs.empty() ? plan_frames(catalog, args, options, graph) : plan_jobs(catalog, args, options, graph);
  } catch (const Error& e) {
    print_error(e);
    return exit_code(e.kind());
  }
}

int command_shard_run(PluginCatalog& catalog, const std::string& plan_path, std::optional<int> shard,
                      const RunOptions& options) {
  try {
    const json plan = read_plan(plan_path);
    if (!shard) shard = index_from_environment();
    if (!shard)
      throw Error(ErrorKind::usage, "no shard index: give --shard I",
                  "Or run it as an array task (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX).");
    const int count = static_cast<int>(plan["shards"].size());
    if (*shard < 0 || *shard >= count)
      throw Error(ErrorKind::usage, "shard " + std::to_string(*shard) + " is not in the plan, which has shards 0 to " +
                                        std::to_string(count - 1));
    return is_job_plan(plan) ? run_job_shard(catalog, plan, plan_path, *shard, options)
                             : run_frame_shard(catalog, plan, plan_path, *shard, options);
  } catch (const Error& e) {
    print_error(e);
    return exit_code(e.kind());
  }
}

int command_shard_status(const std::string& plan_path, StatusFormat format) {
  try {
    const json plan = read_plan(plan_path);
    const bool jobs = is_job_plan(plan);
    json shards = json::array();
    std::vector<int> retry;
    int done = 0;
    for (const json& entry : plan["shards"]) {
      const int index = entry.value("index", 0);
      const UnitState s = jobs ? job_shard_state(plan, entry) : frame_shard_state(plan, entry);
      json item = {{"index", index}, {"state", s.state}};
      if (jobs) {
        json members = json::array();
        for (const json& j : entry.at("jobs")) {
          const json& job = plan["jobs"].at(j.get<std::size_t>());
          const UnitState js = job_state(job);
          json member = {{"job", j}, {"state", js.state}, {"outputs", job.at("outputs")}};
          if (js.state == "failed") member["error"] = js.record;
          members.push_back(member);
        }
        item["jobs"] = members;
      } else {
        item["part"] = entry.value("part", "");
      }
      if (s.state == "failed") item["error"] = s.record;
      if (s.state == "done") ++done;
      else retry.push_back(index);
      shards.push_back(item);
    }
    if (format == StatusFormat::to_run) {
      if (!retry.empty()) std::printf("%s\n", index_list(retry).c_str());
    } else if (format == StatusFormat::json) {
      std::cout << json({{"plan", plan_path}, {"kind", plan["kind"]}, {"shards", shards}, {"done", done},
                         {"to_run", index_list(retry)}})
                       .dump(2)
                << '\n';
    } else {
      auto error_text = [](const json& error) {
        return " (" + error.value("kind", "?") + (error.value("retryable", false) ? ", retryable" : "") + ": " +
               error.value("message", "") + ")";
      };
      for (const json& item : shards) {
        std::printf("shard %d: %s", item["index"].get<int>(), item["state"].get<std::string>().c_str());
        if (!jobs) {
          if (item.contains("error")) std::printf("%s", error_text(item["error"]).c_str());
          std::printf("  %s\n", item["part"].get<std::string>().c_str());
          continue;
        }
        std::printf("\n");
        for (const json& member : item["jobs"]) {
          std::printf("  job %d: %s", member["job"].get<int>(), member["state"].get<std::string>().c_str());
          if (member.contains("error")) std::printf("%s", error_text(member["error"]).c_str());
          std::printf("  %s\n", member["outputs"][0].get<std::string>().c_str());
        }
      }
      std::printf("%d of %zu done", done, shards.size());
      if (!retry.empty()) std::printf("; to run: %s", index_list(retry).c_str());
      std::printf("\n");
    }
    return retry.empty() ? 0 : 1;
  } catch (const Error& e) {
    print_error(e);
    return exit_code(e.kind());
  }
}

int command_shard_join(const std::string& plan_path, const std::string& output_arg, bool overwrite) {
  try {
    const json plan = read_plan(plan_path);
    if (is_job_plan(plan))
      throw Error(ErrorKind::usage, plan_path + " is a plan of jobs: each job writes its own outputs, there is nothing to join",
                  "`reel shard status` lists them and whether they are done.");
    std::vector<int> to_run;
    for (const json& entry : plan["shards"])
      if (frame_shard_state(plan, entry).state != "done") to_run.push_back(entry.value("index", 0));
    if (!to_run.empty())
      throw BadInputError("shards " + index_list(to_run) + " of " + plan_path + " are not done",
                          "Run them (`reel shard status` lists them), then join.");
#ifdef REEL_WITH_FFMPEG
    // Each part as its shard left it: the bytes its done record counted.
    std::vector<ffmpeg::JoinPart> parts;
    for (const json& entry : plan["shards"]) {
      const std::string part = entry.at("part").get<std::string>();
      const json files = read_json(done_record(part)).value("files", json::array());
      if (files.size() != 1 || file_checksum(part) != files[0].value("checksum_fnv1a64", ""))
        throw BadInputError("part " + part + " is not the file its shard wrote (its checksum differs)",
                            "Remove " + done_record(part).string() + " and run shard " +
                                std::to_string(entry.value("index", 0)) + " again.");
      parts.push_back({part, entry.at("keep").get<std::int64_t>()});
    }
    const std::string output = output_arg.empty() ? plan["output"].value("path", "") : output_arg;
    // The audio as the graph's encoder would have it.
    std::string audio_mode = "auto";
    for (const json& node : plan["graph"]["nodes"])
      if (node.value("id", "") == plan["output"].value("node", ""))
        audio_mode = node.value("params", json::object()).value("audio", "auto");
    std::optional<AudioSource> audio;
    if (audio_mode != "none")
      audio = ffmpeg::audio_from_frame(plan["source"].value("path", ""), plan["source"].value("start", std::int64_t{0}));
    if (audio_mode == "copy" && !audio)
      throw BadInputError("the graph's encoder copies audio (audio copy), but the source has none");
    const std::int64_t frames = ffmpeg::join_parts(parts, output, audio, audio_mode == "copy", overwrite);
    const std::int64_t expected = plan["output"].value("frames", std::int64_t{-1});
    if (frames != expected) {
      std::error_code ec;
      fs::remove(output, ec);
      throw Error(ErrorKind::internal, "the joined parts hold " + std::to_string(frames) + " frames where the plan "
                                       "expects " + std::to_string(expected) + "; " + output + " was removed");
    }
    std::fprintf(stderr, "reel: joined %zu parts into %s: %lld frames%s\n", parts.size(), output.c_str(),
                 static_cast<long long>(frames), audio ? ", with the source's audio" : "");
    return 0;
#else
    (void)output_arg, (void)overwrite;
    throw Error(ErrorKind::usage, "this reel was built without FFmpeg, which joining parts needs");
#endif
  } catch (const Error& e) {
    print_error(e);
    return exit_code(e.kind());
  }
}

}  // namespace reel::host
