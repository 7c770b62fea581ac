#pragma once
// `reel shard`: one long video split into frame ranges, or one graph run over a list of
// variations (jobs), as separate tasks (a Slurm or Kubernetes array task each), idempotent, and
// checked when they are joined.
//
//   reel shard plan GRAPH --shards N -o PLAN   probes the source, writes the ranges (plan.json)
//   reel shard plan GRAPH --jobs J.json --shards N -o PLAN   the jobs (--set variations) in N shards
//   reel shard run PLAN --shard I              runs shard I; again: nothing to do
//   reel shard status PLAN                     done, failed and missing shards
//   reel shard join PLAN [-o OUT]              a video's parts, checked, as one file (stream copy)
//
// Frames: a graph is split only when every node declares which input frames each output frame
// comes from (NodeType::frame_dependence): one video source with `start` and `count`, nodes that
// keep frames (same_frame) or make the frames between two (adjacent_pair), one encoder with
// `frames`. Output frame j sits at source position j * P / Q, Q / P the ratio of the output's rate
// to the source's (2/1 for interpolation x2, 5/2 for 24 -> 60 fps), so x source frames give
// floor((x - 1) Q / P) + 1 frames (checked on the graph's plan at three lengths). Ranges start on
// multiples of P, where both rates' frames line up; a range [a, b) reads one frame past its end
// when Q > P, so the frames between b-1 and b are made once, by it, and its part keeps the
// (b - a) Q / P frames at positions in [a, b); the last range keeps the rest.
//
// Jobs: any graph (a generator makes one clip per prompt); job j is the graph with its sets, its
// outputs numbered (out.job-0003.mp4) unless the job names them. A shard runs its jobs in turn.
//
// Each unit (a part, a job) leaves a done record beside its first output (files, checksums, the
// fingerprint of what made it: graph, models, input files) or a failed record (the error, and
// whether a retry may mend it).

#include "commands.h"

#include <optional>
#include <string>
#include <vector>

namespace reel::host {

struct ShardPlanArgs {
  std::string graph;
  std::vector<std::string> sets;
  int shards = 0;
  std::string plan;  // where the plan goes
  std::string jobs;  // a JSON array of {"node.param": value} objects: shard by job, not by frame
};
int command_shard_plan(PluginCatalog& catalog, const ShardPlanArgs& args, const RunOptions& options);

// `shard`: from --shard, else SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX.
int command_shard_run(PluginCatalog& catalog, const std::string& plan, std::optional<int> shard,
                      const RunOptions& options);

// Exits 0 when every shard is done, 1 otherwise. to_run: only the list of shards to run again.
enum class StatusFormat { text, json, to_run };
int command_shard_status(const std::string& plan, StatusFormat format);

// Joins the parts by stream copy into `output` (default: the graph's output), with the source's
// audio once (as the graph's encoder would have: its `audio`), after checking every part against
// its done record. Refused while a shard is not done.
int command_shard_join(const std::string& plan, const std::string& output, bool overwrite);

}  // namespace reel::host
