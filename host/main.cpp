// reel: run AI video pipelines described as JSON graphs.
//
// Built twice: as `reel` (libreel-base only: answers the commands that read descriptions, and
// executes reel-engine for the others) and, with REEL_ENGINE, as `reel-engine` (libreel and
// libtorch: every command). One command line, so both parse and check arguments alike.
#include "commands.h"
#include "shard.h"
#include "console.h"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#ifdef REEL_ENGINE
#include <reel/weights.h>
#else
#include <unistd.h>

#include <cerrno>
#include <cstring>
#endif

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace {

#ifndef REEL_ENGINE
// Replaces this process with reel-engine, found beside this executable, with the same arguments
// (the process id, streams and signals stay the same). Returns only when that fails.
int exec_engine(char** argv) {
  std::error_code ec;
  const std::filesystem::path engine = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "reel-engine";
  if (!ec) ::execv(engine.c_str(), argv);
  std::fprintf(stderr, "reel: cannot start %s: %s\nThe installation is incomplete: reel-engine belongs beside reel.\n",
               engine.c_str(), ec ? ec.message().c_str() : std::strerror(errno));
  return 70;  // EX_SOFTWARE
}
#endif

}  // namespace

int main(int argc, char** argv) {
  using namespace reel;
  CLI::App app{"reel " REEL_VERSION_STRING
               " - run AI video pipelines described as JSON graphs.\n"
               "Exit codes: 0 ok, 64 usage, 65 invalid graph, 66 bad input, 69 device error, 70 internal error,\n"
               "74 I/O error, 75 out of memory, 78 plugin error, 124 timed out, 130 cancelled (docs/errors.md)."};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommand
  app.set_version_flag("--version", std::string("reel ") + REEL_VERSION_STRING);

  std::vector<std::string> plugin_dirs;
  host::LogOptions log;
  app.add_option("--plugin-path", plugin_dirs,
                 "Folder with plugin libraries, searched before REEL_PLUGIN_PATH and the "
                 "install folder (repeatable)");
  app.add_option("--log-level", log.level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_option("--log-format", log.format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--log-file", log.file, "Write the log to this file instead of stderr");
  std::vector<std::string> models_dirs;
  app.add_option("--models-dir", models_dirs,
                 "Folder where model names are looked up, before REEL_MODELS_PATH (repeatable)");

  // --set is checked as it is parsed: a malformed one is a usage error before anything runs.
  const CLI::Validator assignment(
      [](std::string& text) -> std::string {
        try {
          parse_override(text);
          return {};
        } catch (const std::exception& e) {
          return e.what();
        }
      },
      "node.param=value");
  auto add_set = [&](CLI::App* cmd, std::vector<std::string>& sets) {
    cmd->add_option("--set", sets,
                    "Override a parameter: node.param=value, typed by the param (repeatable; one per --set)")
        ->allow_extra_args(false)
        ->check(assignment);
  };

  RunOptions options;
  std::uint64_t max_memory = 0;
  auto add_run_options = [&](CLI::App* cmd) {
    cmd->add_option("--edge-capacity", options.edge_capacity, "Frames that may wait on one edge")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    cmd->add_option("--threads", options.threads, "Worker threads (0: as many as the graph's nodes can use at once)")->check(CLI::Range(0, 1024));
    cmd->add_option("--torch-threads", options.torch_threads, "libtorch intra-op threads (0: cores / min(threads, cores), counting the cores this process may run on)")
        ->check(CLI::Range(0, 1024));
    cmd->add_option("--max-memory", max_memory, "Refuse to start a graph whose memory estimate exceeds this (e.g. 8G)")
        ->transform(CLI::AsSizeValue(false));
    cmd->add_option("--oom-retries", options.max_oom_retries, "Degrade-and-retry attempts per node after out of memory")
        ->check(CLI::Range(0, 100))
        ->capture_default_str();
    cmd->add_option("--node-timeout", options.node_timeout_s,
                    "Seconds one call into a node (a frame, a model load) may take, for nodes without their own "
                    "\"timeout\" in the graph (0: no limit)")
        ->check(CLI::Range(0.0, 1e9));
    cmd->add_option("--timeout", options.run_timeout_s,
                    "Seconds a whole graph may take, for graphs without their own \"timeout\" (0: no limit)")
        ->check(CLI::Range(0.0, 1e9));
  };

  // `run --isolate` and `worker`: bytes, from "8G" (CLI11's AsSizeValue), at least 1 MiB.
  auto add_memory_limit = [](CLI::App* cmd, std::uint64_t& bytes) {
    return cmd
        ->add_option("--memory-limit", bytes,
                     "Memory each graph's child process may use, swap included (its own memory cgroup: needs root or "
                     "a delegated cgroup); a child that goes over is killed by the kernel and its graph fails as out "
                     "of memory")
        ->transform(CLI::AsSizeValue(false))
        ->check(CLI::Validator(
            [](std::string& value) {
              return std::stoull(value) >= (1u << 20) ? std::string() : std::string("under 1 MiB nothing can run");
            },
            "at least 1MiB"));
  };
  host::RunArgs run;
  CLI::App* run_cmd = app.add_subcommand("run",
                                         "Run graphs one after another in this process; a failed graph does "
                                         "not stop the next");
  run_cmd->add_option("graphs", run.graphs, "Graph files ('-': read one from standard input)")->required();
  add_set(run_cmd, run.sets);
  run_cmd->add_flag("-y,--overwrite", options.overwrite_outputs, "Replace existing output files");
  run_cmd->add_option("--report", run.report_file, "Write the run report JSON here (an array for several graphs)");
  run_cmd->add_flag("!--no-progress", run.progress, "Do not print progress");
  CLI::Option* isolate = run_cmd->add_flag(
      "--isolate", run.isolate,
      "Run each graph in a child process: a plugin that crashes the process (segfault, abort, exit) loses only its "
      "graph, which is reported naming the node, and the next graph runs");
  add_memory_limit(run_cmd, run.memory_limit)->needs(isolate);
  add_run_options(run_cmd);

  std::vector<std::string> graphs, sets;
  CLI::App* validate_cmd = app.add_subcommand("validate", "Check graphs without configuring or loading anything");
  validate_cmd->add_option("graphs", graphs, "Graph files ('-': read one from standard input)")->required();
  add_set(validate_cmd, sets);

  std::string plan_graph_file;
  bool json = false;
  CLI::App* plan_cmd = app.add_subcommand(
      "plan",
      "Show negotiated streams and memory estimates; loads no model (a TorchScript module is probed once for its "
      "scale) and writes nothing, so output folders need not exist yet");
  plan_cmd->add_option("graph", plan_graph_file, "Graph file ('-': standard input)")->required();
  add_set(plan_cmd, sets);
  plan_cmd->add_flag("--json", json, "Print the plan as JSON");
  add_run_options(plan_cmd);

  CLI::App* plugins_cmd = app.add_subcommand("plugins", "List node types and refused plugin libraries");
  plugins_cmd->add_flag("--json", json, "Print as JSON");

  std::string type_name;
  CLI::App* describe_cmd = app.add_subcommand("describe", "Show a node type's ports and parameters");
  describe_cmd->add_option("type", type_name, "Node type, e.g. upscaler.resize")->required();
  describe_cmd->add_flag("--json", json, "Print as JSON");

  std::string schema_type;
  CLI::App* schema_cmd = app.add_subcommand(
      "schema", "Print a JSON Schema for graph files with the params of every node type found (for editors), or "
                "for one type's params");
  schema_cmd->add_option("type", schema_type, "Node type, e.g. upscaler.esrgan");

  CLI::App* worker_cmd = app.add_subcommand("worker",
                                            "Run jobs read as JSON lines on stdin; print events as JSON "
                                            "lines on stdout");
  worker_cmd->add_flag("-y,--overwrite", options.overwrite_outputs, "Replace existing output files by default");
  host::WorkerArgs worker;
  CLI::Option* no_isolate =
      worker_cmd->add_flag("!--no-isolate", worker.isolate,
                           "Run jobs in this process instead of one child process per job (faster to start a job, "
                           "but a plugin that crashes ends the worker)");
  add_memory_limit(worker_cmd, worker.memory_limit)->excludes(no_isolate);
  add_run_options(worker_cmd);

  host::ShardPlanArgs shard_plan;
  std::string shard_plan_file;
  std::optional<int> shard_index;
  CLI::App* shard_cmd = app.add_subcommand(
      "shard", "Split one long video into frame ranges, or a list of jobs, run as separate tasks (array tasks), and follow them");
  shard_cmd->require_subcommand(1);
  CLI::App* shard_plan_cmd =
      shard_cmd->add_subcommand("plan", "Probe the source and write the frame ranges and part names of N shards (or, with --jobs, the jobs of N shards)");
  shard_plan_cmd->add_option("graph", shard_plan.graph, "Graph file")->required();
  add_set(shard_plan_cmd, shard_plan.sets);
  shard_plan_cmd->add_option("--shards", shard_plan.shards, "How many shards")->required()->check(CLI::Range(1, 100000));
  shard_plan_cmd->add_option("-o,--output", shard_plan.plan, "Where the plan goes (JSON)")->required();
  shard_plan_cmd
      ->add_option("--jobs", shard_plan.jobs,
                   "Shard by job instead of by frame: a JSON file with one object of node.param values per job, "
                   "each applied like --set (outputs the job does not name are numbered: out.job-0003.mp4)")
      ->check(CLI::ExistingFile);
  CLI::App* shard_run_cmd = shard_cmd->add_subcommand(
      "run", "Run one shard of a plan: its part, or its jobs (nothing to do for what is done already)");
  shard_run_cmd->add_option("plan", shard_plan_file, "The plan")->required();
  shard_run_cmd->add_option("--shard", shard_index,
                            "Which shard (0-based); default: SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or "
                            "AWS_BATCH_JOB_ARRAY_INDEX")
      ->check(CLI::Range(0, 1000000));
  add_run_options(shard_run_cmd);
  add_run_options(shard_plan_cmd);
  CLI::App* shard_status_cmd = shard_cmd->add_subcommand(
      "status", "Done, failed and missing shards of a plan, and those to run again (exit 1 until all are done)");
  shard_status_cmd->add_option("plan", shard_plan_file, "The plan")->required();
  shard_status_cmd->add_flag("--json", json, "Print as JSON");
  bool to_run_only = false;
  shard_status_cmd
      ->add_flag("--to-run", to_run_only,
                 "Print only the shards to run again, as Slurm's --array takes them (0,2-4; nothing when all are done)")
      ->excludes("--json");
  std::string joined_output;
  CLI::App* shard_join_cmd = shard_cmd->add_subcommand(
      "join", "Check every part and join them by stream copy into one file, with the source's audio once");
  shard_join_cmd->add_option("plan", shard_plan_file, "The plan")->required();
  shard_join_cmd->add_option("-o,--output", joined_output, "The joined file (default: the graph's output)");
  shard_join_cmd->add_flag("-y,--overwrite", options.overwrite_outputs, "Replace an existing file");

  std::vector<std::string> listed_dirs;
  CLI::App* models_cmd = app.add_subcommand("models",
                                            "List the checkpoints and model folders (a diffusers CogVideoX folder: "
                                            "its variant and components) in folders (default: --models-dir and "
                                            "REEL_MODELS_PATH) with what they hold");
  models_cmd->add_option("dirs", listed_dirs, "Folders to list, or model folders to describe");
  models_cmd->add_flag("--json", json, "Print as JSON");
  std::string convert_in, convert_out;
  CLI::App* convert_cmd = models_cmd->add_subcommand(
      "convert", "Convert a checkpoint (PyTorch, ncnn, safetensors) to one safetensors file with the network's names");
  convert_cmd->add_option("input", convert_in, "Checkpoint to read")->required();
  convert_cmd->add_option("output", convert_out, "safetensors file to write")->required();
  convert_cmd->add_flag("-y,--overwrite", options.overwrite_outputs, "Replace an existing output file");

  try {
    app.parse(argc, argv);
    if (std::count(run.graphs.begin(), run.graphs.end(), "-") + std::count(graphs.begin(), graphs.end(), "-") > 1)
      throw CLI::ValidationError("graphs", "'-' (standard input) can be given once");
    if (max_memory) options.memory_budget = max_memory;
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 64;  // EX_USAGE
  }

#ifndef REEL_ENGINE
  if (*run_cmd || *plan_cmd || *worker_cmd || *models_cmd || *shard_cmd) return exec_engine(argv);
#endif

  try {
    host::setup_logging(log);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reel: %s\n", e.what());
    return exit_code(ErrorKind::io);
  }
  host::install_signal_handlers();

  std::vector<std::filesystem::path> search;
  for (const auto& dir : plugin_dirs) {
    if (!std::filesystem::is_directory(dir)) spdlog::warn("--plugin-path {} is not a folder; ignored", dir);
    search.emplace_back(dir);
  }
  for (const auto& dir : default_plugin_path()) search.push_back(dir);

#ifdef REEL_ENGINE
  // Before any plugin loads, so nothing a plugin prints can reach the event stream.
  std::FILE* events = *worker_cmd ? host::take_stdout_for_events() : nullptr;
  weights::set_model_dirs({models_dirs.begin(), models_dirs.end()});
#endif
  PluginCatalog catalog;
  catalog.discover(search, default_plugin_cache());

  if (*validate_cmd) return host::command_validate(catalog, graphs, sets);
  if (*plugins_cmd) return host::command_plugins(catalog, json);
  if (*schema_cmd) return host::command_schema(catalog, schema_type);
  if (*describe_cmd) return host::command_describe(catalog, type_name, json);
#ifdef REEL_ENGINE
  if (*run_cmd) {
    run.options = options;
    run.command_line.assign(argv, argv + argc);
    return host::command_run(catalog, run);
  }
  if (*plan_cmd) return host::command_plan(catalog, plan_graph_file, sets, options, json);
  if (*worker_cmd) {
    worker.command_line.assign(argv, argv + argc);
    return host::command_worker(catalog, options, events, worker);
  }
  if (*shard_plan_cmd) return host::command_shard_plan(catalog, shard_plan, options);
  if (*shard_run_cmd) return host::command_shard_run(catalog, shard_plan_file, shard_index, options);
  if (*shard_status_cmd) return host::command_shard_status(shard_plan_file, json         ? host::StatusFormat::json
                                                                            : to_run_only ? host::StatusFormat::to_run
                                                                                          : host::StatusFormat::text);
  if (*shard_join_cmd) return host::command_shard_join(shard_plan_file, joined_output, options.overwrite_outputs);
  if (*convert_cmd) return host::command_models_convert(catalog, convert_in, convert_out, options.overwrite_outputs);
  if (*models_cmd) return host::command_models(catalog, listed_dirs, json);
#endif
  return 64;
}
