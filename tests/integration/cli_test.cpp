// The `reel` command as a user runs it: exit codes, messages, reports, several graphs in one
// process, SIGINT, and the worker protocol.
#include "test_support.h"

#include <fcntl.h>
#include <pty.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace fs = std::filesystem;
using nlohmann::json;

namespace reel {
namespace {

struct Outcome {
  int exit_code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `env`: NAME=value entries added to (or replacing those of) this process's environment.
pid_t spawn(const std::vector<std::string>& args, const fs::path& dir, const fs::path& input = "/dev/null",
            const std::vector<std::string>& env = {}) {
  std::vector<std::string> full = {REEL_EXECUTABLE, "--plugin-path", REEL_TEST_PLUGIN_DIR};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, input.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, (dir / "stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, (dir / "stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> variables = env;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('=') + 1);
    if (std::none_of(env.begin(), env.end(), [&](const std::string& v) { return v.rfind(name, 0) == 0; }))
      variables.push_back(entry);
  }
  std::vector<char*> envp;
  for (auto& v : variables) envp.push_back(v.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

Outcome finish(pid_t pid, const fs::path& dir) {
  int status = 0;
  waitpid(pid, &status, 0);
  Outcome o;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  o.out = slurp(dir / "stdout");
  o.err = slurp(dir / "stderr");
  return o;
}

Outcome reel_cli(const std::vector<std::string>& args, const fs::path& input = "/dev/null",
                 const std::vector<std::string>& env = {}) {
  fs::path dir = test::temp_dir("cli");
  return finish(spawn(args, dir, input, env), dir);
}

fs::path write_graph(const json& document, const std::string& name = "graph.json") {
  fs::path file = test::temp_dir("graph") / name;
  test::write_file(file, document.dump(2));
  return file;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Cli, RunSucceedsAndWritesTheReport) {
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(test::chain(8, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  Outcome o = reel_cli({"run", graph.string(), "--report", (dir / "report.json").string(), "--no-progress"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(contains(o.err, "succeeded")) << o.err;
  EXPECT_EQ(test::read_lines(dir / "out.txt").size(), 8u);
  json report = json::parse(slurp(dir / "report.json"));
  EXPECT_EQ(report["status"], "succeeded");
  EXPECT_EQ(report["nodes"].size(), 3u);
  EXPECT_EQ(report["nodes"][2]["frames_in"], 8);
  EXPECT_TRUE(report["error"].is_null());
}

// libtorch's threads follow the cores the process may run on (a Slurm task bound to its cores,
// taskset, a cpuset), not the machine's.
TEST(Cli, LibtorchThreadsFollowTheCoresTheProcessIsBoundTo) {
  cpu_set_t all;
  ASSERT_EQ(sched_getaffinity(0, sizeof all, &all), 0);
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(test::chain(4, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  auto libtorch_threads = [&](const cpu_set_t* bound) {
    if (bound) EXPECT_EQ(sched_setaffinity(0, sizeof *bound, bound), 0);  // the child inherits it
    Outcome o = reel_cli({"run", "-y", graph.string(), "--threads", "1", "--report", (dir / "report.json").string(), "--no-progress"});
    sched_setaffinity(0, sizeof all, &all);
    EXPECT_EQ(o.exit_code, 0) << o.err;
    return json::parse(slurp(dir / "report.json"))["threads"]["libtorch"].get<int>();
  };
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &all)) {
      CPU_SET(cpu, &one);
      break;
    }
  EXPECT_EQ(libtorch_threads(&one), 1);
  EXPECT_EQ(libtorch_threads(nullptr), std::min<int>(CPU_COUNT(&all), static_cast<int>(std::thread::hardware_concurrency())));
}

TEST(Cli, FailureGivesTheClassifiedExitCodeAShortMessageAndAReport) {
  fs::path dir = test::temp_dir();
  fs::path graph =
      write_graph(test::chain(8, {"test.map"},
                              {{"m0", {{"fail_phase", "process"}, {"fail_with", "c10_oom"}, {"fail_frame", 3}}},
                               {"sink", {{"path", (dir / "out.txt").string()}}}}));
  Outcome o = reel_cli({"run", graph.string(), "--report", (dir / "report.json").string()});
  EXPECT_EQ(o.exit_code, 75);
  EXPECT_TRUE(contains(o.err, "out of memory in node \"m0\" (test.map, libreel_testkit.so) at frame 3")) << o.err;
  EXPECT_TRUE(contains(o.err, "All models were unloaded")) << o.err;
  EXPECT_FALSE(contains(o.err, "c10::OutOfMemoryError"))
      << "the type and backtrace belong in the log, not the terminal";
  EXPECT_FALSE(fs::exists(dir / "out.txt"));
  json report = json::parse(slurp(dir / "report.json"));
  EXPECT_EQ(report["status"], "failed");
  EXPECT_EQ(report["error"]["kind"], "out of memory");
  EXPECT_EQ(report["error"]["node"], "m0");
  EXPECT_EQ(report["error"]["frame"], 3);
  EXPECT_TRUE(contains(report["error"]["detail"], "c10::OutOfMemoryError"));
}

TEST(Cli, SeveralGraphsRunInOrderAndAFailureDoesNotStopTheNext) {
  fs::path dir = test::temp_dir();
  fs::path bad = write_graph(
      test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "load"}, {"fail_with", "bad_input"}}}}), "bad.json");
  fs::path good =
      write_graph(test::chain(4, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}}}}), "good.json");
  Outcome o = reel_cli({"run", bad.string(), good.string(), "--report", (dir / "reports.json").string()});
  EXPECT_EQ(o.exit_code, 66);  // the first failure's code
  EXPECT_TRUE(fs::exists(dir / "out.txt"));
  EXPECT_TRUE(contains(o.err, "2 graphs: 1 succeeded, 1 failed")) << o.err;
  json reports = json::parse(slurp(dir / "reports.json"));
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0]["status"], "failed");
  EXPECT_EQ(reports[1]["status"], "succeeded");
}

TEST(Cli, InvalidGraphNamesFileNodeAndField) {
  json g = test::chain(4, {"test.map"});
  g["nodes"][1]["params"]["copies"] = 99;
  fs::path graph = write_graph(g);
  for (const char* command : {"run", "validate"}) {
    Outcome o = reel_cli({command, graph.string()});
    EXPECT_EQ(o.exit_code, 65) << command;
    EXPECT_TRUE(contains(o.err, graph.string())) << o.err;
    EXPECT_TRUE(contains(o.err, "/nodes/1/params/copies")) << o.err;
    EXPECT_TRUE(contains(o.err, "'m0'")) << o.err;
  }
}

TEST(Cli, SetOverridesAParameter) {
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(test::chain(4, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  Outcome o = reel_cli({"run", graph.string(), "--set", "src.frames=9", "--set", "m0.copies=2"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(test::read_lines(dir / "out.txt").size(), 18u);
}

// Each --set takes one value, so a graph named after it is still the graph (it used to be taken
// as a second override, and the command said the graph was missing).
TEST(Cli, GraphAfterSetIsStillTheGraph) {
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(test::chain(4, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  Outcome o = reel_cli({"run", "--set", "src.frames=5", "--no-progress", graph.string()});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(test::read_lines(dir / "out.txt").size(), 5u);
  fs::path no_output = write_graph(test::chain(4, {"test.map"}));
  EXPECT_EQ(reel_cli({"plan", "--set", "src.frames=5", no_output.string()}).exit_code, 0);
  EXPECT_EQ(reel_cli({"validate", "--set", "src.frames=5", no_output.string()}).exit_code, 0);
}

// With progress on (stderr is not a terminal here: plain lines), the final counts are printed and
// the outcome starts on a line of its own.
TEST(Cli, ProgressEndsWithTheFinalCountsBeforeTheOutcome) {
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(test::chain(6, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  Outcome o = reel_cli({"run", graph.string()});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const std::size_t outcome = o.err.find("succeeded");
  ASSERT_NE(outcome, std::string::npos) << o.err;
  const std::size_t final_counts = o.err.rfind("sink 6/6", outcome);
  EXPECT_NE(final_counts, std::string::npos) << o.err;
  EXPECT_EQ(o.err.rfind('\n', outcome) > final_counts, true) << "the outcome is on its own line: " << o.err;
}

TEST(Cli, ExistingOutputIsKeptUnlessOverwriteIsGiven) {
  fs::path dir = test::temp_dir();
  test::write_file(dir / "out.txt", "precious\n");
  fs::path graph = write_graph(test::chain(3, {}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  Outcome o = reel_cli({"run", graph.string()});
  EXPECT_EQ(o.exit_code, 74);
  EXPECT_TRUE(contains(o.err, "already exists")) << o.err;
  EXPECT_EQ(test::read_lines(dir / "out.txt").at(0), "precious");
  EXPECT_EQ(reel_cli({"run", graph.string(), "--overwrite"}).exit_code, 0);
  EXPECT_EQ(test::read_lines(dir / "out.txt").size(), 3u);
}

TEST(Cli, PlanShowsStreamsAndEstimatesWithoutLoading) {
  fs::path journal = test::temp_dir() / "journal.txt";
  fs::path graph = write_graph(
      test::chain(7, {"test.map"}, {{"m0", {{"copies", 2}, {"model_mib", 10}, {"journal", journal.string()}}}}));
  Outcome o = reel_cli({"plan", graph.string()});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(contains(o.out, "m0.out -> sink.in: 8x8x3 @ 24/1 fps, 14 frames")) << o.out;
  EXPECT_TRUE(contains(o.out, "10.0 MiB")) << o.out;
  EXPECT_EQ(test::find_line(test::read_lines(journal), "m0 load"), -1);
  Outcome j = reel_cli({"plan", graph.string(), "--json"});
  EXPECT_EQ(json::parse(j.out)["edges"][1]["stream"]["frame_count"], 14);
}

TEST(Cli, PluginsAndDescribe) {
  Outcome list = reel_cli({"plugins", "--json"});
  ASSERT_EQ(list.exit_code, 0);
  json doc = json::parse(list.out);
  bool found = false;
  for (const auto& t : doc["node_types"]) found |= t["type"] == "test.source";
  EXPECT_TRUE(found);
  Outcome d = reel_cli({"describe", "test.source"});
  EXPECT_EQ(d.exit_code, 0);
  EXPECT_TRUE(contains(d.out, "frames")) << d.out;
  EXPECT_TRUE(contains(d.out, "required")) << d.out;
  EXPECT_TRUE(contains(d.out, "from 1 to 8192")) << d.out;
  EXPECT_EQ(reel_cli({"describe", "test.nope"}).exit_code, 65);
  // Optional inputs say so, in text and in JSON; required ones do not.
  Outcome optional = reel_cli({"describe", "test.conditioned"});
  EXPECT_TRUE(contains(optional.out, "(optional) Frames to take in first")) << optional.out;
  EXPECT_FALSE(contains(reel_cli({"describe", "test.map"}).out, "(optional)"));
  json described = json::parse(reel_cli({"describe", "test.conditioned", "--json"}).out);
  EXPECT_EQ(described["inputs"][0]["optional"], true) << described.dump();
}

TEST(Cli, JsonLogCarriesTheDetailTheTerminalLeavesOut) {
  fs::path dir = test::temp_dir();
  fs::path graph =
      write_graph(test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "process"}, {"fail_with", "c10_error"}}}}));
  Outcome o = reel_cli({"run", graph.string(), "--log-format", "json", "--log-level", "info", "--log-file",
                        (dir / "log.jsonl").string()});
  EXPECT_EQ(o.exit_code, 70);
  EXPECT_FALSE(contains(o.err, "c10::Error")) << o.err;
  bool detail_logged = false;
  for (const auto& line : test::read_lines(dir / "log.jsonl")) {
    json entry = json::parse(line);  // every line is one JSON object
    EXPECT_TRUE(entry.contains("time") && entry.contains("level") && entry.contains("message"));
    detail_logged |= contains(entry["message"], "c10::Error");
  }
  EXPECT_TRUE(detail_logged);
}

TEST(Cli, UsageErrorsExitWith64) {
  EXPECT_EQ(reel_cli({"run"}).exit_code, 64);
  EXPECT_EQ(reel_cli({"frobnicate"}).exit_code, 64);
  EXPECT_EQ(reel_cli({"run", "x.json", "--max-memory", "lots"}).exit_code, 64);
  EXPECT_EQ(reel_cli({"--help"}).exit_code, 0);
}

TEST(Cli, SigintCancelsCleansUpAndExits130) {
  fs::path dir = test::temp_dir();
  fs::path journal = dir / "journal.txt";
  fs::path graph = write_graph(test::chain(
      5000, {"test.map"},
      {{"sink", {{"path", (dir / "out.txt").string()}, {"delay_us", 2000}, {"journal", journal.string()}}}}));
  fs::path io = test::temp_dir("io");
  pid_t pid = spawn({"run", graph.string(), "--report", (dir / "report.json").string()}, io);
  // Wait until the sink is working, then interrupt.
  for (int i = 0; i < 500 && test::read_lines(journal).size() < 5; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ::kill(pid, SIGINT);
  Outcome o = finish(pid, io);
  EXPECT_EQ(o.exit_code, 130) << o.err;
  EXPECT_TRUE(contains(o.err, "cancelled")) << o.err;
  EXPECT_EQ(json::parse(slurp(dir / "report.json"))["status"], "cancelled");
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_TRUE(entry.path() == journal || entry.path() == dir / "report.json") << "left behind: " << entry.path();
}

// A malformed --set is refused by the argument parser, a well-formed one that does not fit the
// graph when the graph is read: both as usage errors (64) quoting the argument, before anything
// is configured.
TEST(Cli, BadSetIsAUsageErrorPointingAtTheArgument) {
  fs::path journal = test::temp_dir() / "journal.txt";
  fs::path graph = write_graph(test::chain(4, {"test.map"}, {{"m0", {{"journal", journal.string()}}}}));
  Outcome syntax = reel_cli({"run", graph.string(), "--set", "m0copies2"});
  EXPECT_EQ(syntax.exit_code, 64) << syntax.err;
  EXPECT_TRUE(contains(syntax.err, "--set 'm0copies2' is not node.param=value")) << syntax.err;
  Outcome word = reel_cli({"run", graph.string(), "--set", "m0.copies=two"});
  EXPECT_EQ(word.exit_code, 64) << word.err;
  EXPECT_TRUE(contains(word.err, "--set 'm0.copies=two': copies takes an integer")) << word.err;
  Outcome node = reel_cli({"validate", graph.string(), "--set", "m9.copies=2"});
  EXPECT_EQ(node.exit_code, 64) << node.err;
  EXPECT_TRUE(contains(node.err, "has no node 'm9'")) << node.err;
  EXPECT_FALSE(fs::exists(journal)) << "nothing was configured";
}

// A string param takes the text as typed, even when it looks like a number.
TEST(Cli, SetOnAStringParamKeepsTheText) {
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(test::chain(2, {}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  Outcome o = reel_cli({"run", graph.string(), "--no-progress", "--set", "sink.path=" + (dir / "30").string()});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(fs::exists(dir / "30"));
}

TEST(Cli, DashYIsOverwriteAndDashReadsTheGraphFromStdin) {
  fs::path dir = test::temp_dir();
  test::write_file(dir / "out.txt", "old\n");
  fs::path graph = write_graph(test::chain(3, {}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  Outcome o = reel_cli({"run", "-y", "-", "--no-progress"}, graph);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(test::read_lines(dir / "out.txt").size(), 3u);
  EXPECT_EQ(reel_cli({"validate", "-"}, graph).exit_code, 0);
  EXPECT_EQ(reel_cli({"run", "-", "-"}, graph).exit_code, 64);  // stdin can be read once
}

// The success line names what was written; the report lists it with its size, the overrides,
// and a fingerprint of the graph as it ran.
TEST(Cli, OutputsOverridesAndFingerprintAreReported) {
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(test::chain(4, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  Outcome plain = reel_cli({"run", graph.string(), "--no-progress", "--report", (dir / "a.json").string()});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_TRUE(contains(plain.err, "wrote " + (dir / "out.txt").string() + " (")) << plain.err;
  json a = json::parse(slurp(dir / "a.json"));
  ASSERT_EQ(a["outputs"].size(), 1u) << a.dump();
  EXPECT_EQ(a["outputs"][0]["path"], (dir / "out.txt").string());
  EXPECT_EQ(a["outputs"][0]["node"], "sink");
  EXPECT_EQ(a["outputs"][0]["bytes"], fs::file_size(dir / "out.txt"));
  EXPECT_EQ(a["graph"]["overrides"], json::array());
  Outcome set = reel_cli(
      {"run", graph.string(), "-y", "--no-progress", "--set", "src.frames=5", "--report", (dir / "b.json").string()});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  json b = json::parse(slurp(dir / "b.json"));
  EXPECT_EQ(b["graph"]["overrides"], json::array({"src.frames=5"}));
  EXPECT_NE(a["graph"]["fingerprint_fnv1a64"], b["graph"]["fingerprint_fnv1a64"]);
  // A failed run wrote nothing, and says so.
  Outcome failed = reel_cli({"run", graph.string(), "-y", "--set", "m0.fail_phase=finish", "--report",
                             (dir / "c.json").string()});
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_EQ(json::parse(slurp(dir / "c.json"))["outputs"], json::array());
}

// Every output and report path is checked before any node loads; a plan checks none of them.
TEST(Cli, OutputAndReportPathsAreCheckedBeforeAnythingLoads) {
  fs::path dir = test::temp_dir();
  fs::path journal = dir / "journal.txt";
  auto graph_to = [&](const fs::path& out) {
    return write_graph(test::chain(3, {"test.map"}, {{"m0", {{"journal", journal.string()}}}, {"sink", {{"path", out.string()}}}}));
  };
  fs::path missing_folder = graph_to(dir / "later" / "out.txt");
  Outcome plan = reel_cli({"plan", missing_folder.string()});
  EXPECT_EQ(plan.exit_code, 0) << "a plan describes the run; the folder may come later: " << plan.err;
  Outcome run = reel_cli({"run", missing_folder.string()});
  EXPECT_EQ(run.exit_code, 74) << run.err;
  EXPECT_TRUE(contains(run.err, "does not exist")) << run.err;
  fs::create_directories(dir / "a-folder");
  Outcome folder = reel_cli({"run", graph_to(dir / "a-folder").string(), "-y"});
  EXPECT_EQ(folder.exit_code, 74) << folder.err;
  EXPECT_TRUE(contains(folder.err, "is a folder")) << folder.err;
  EXPECT_EQ(test::find_line(test::read_lines(journal), "m0 load"), -1) << "nothing loaded";
  Outcome report = reel_cli({"run", graph_to(dir / "out.txt").string(), "--report", (dir / "nope" / "r.json").string()});
  EXPECT_EQ(report.exit_code, 74) << report.err;
  EXPECT_TRUE(contains(report.err, "--report")) << report.err;
  EXPECT_FALSE(fs::exists(dir / "out.txt")) << "the graph did not run";
  EXPECT_EQ(test::find_line(test::read_lines(journal), "m0 load"), -1);
}

TEST(Cli, ZeroFramesIsAnErrorAndWritesNothing) {
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(test::chain(0, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  Outcome o = reel_cli({"run", graph.string()});
  EXPECT_EQ(o.exit_code, 66) << o.err;
  EXPECT_TRUE(contains(o.err, "no frames reached it")) << o.err;
  EXPECT_FALSE(fs::exists(dir / "out.txt"));
}

// A graph that needs a type no loaded plugin has, while a plugin library was refused: a plugin
// problem (78), and the message carries the refusal's reason.
TEST(Cli, RefusedPluginGivesExit78WithTheReason) {
  json g = test::chain(2, {});
  g["nodes"][1]["type"] = "vendor.upscale";
  fs::path graph = write_graph(g);
  Outcome o = reel_cli({"--plugin-path", std::string(REEL_BAD_PLUGIN_DIR) + "/bad_abi", "run", graph.string()});
  EXPECT_EQ(o.exit_code, 78) << o.err;
  EXPECT_TRUE(contains(o.err, "different plugin ABI")) << o.err;
  EXPECT_TRUE(contains(o.err, "vendor.upscale")) << o.err;
  // Without a refused library it stays an error in the graph.
  EXPECT_EQ(reel_cli({"run", graph.string()}).exit_code, 65);
}

TEST(Cli, MemoryBudgetRefusalSaysNothingWasLoadedOnce) {
  fs::path graph = write_graph(test::chain(2, {"test.map"}, {{"m0", {{"model_mib", 64}}}}));
  Outcome o = reel_cli({"run", graph.string(), "--max-memory", "1M"});
  EXPECT_EQ(o.exit_code, 75) << o.err;
  std::size_t first = o.err.find("Nothing was loaded.");
  ASSERT_NE(first, std::string::npos) << o.err;
  EXPECT_EQ(o.err.find("Nothing was loaded.", first + 1), std::string::npos) << o.err;
}

TEST(Cli, SchemaDescribesEveryTypeAndAgreesWithValidate) {
  fs::path dir = test::temp_dir();
  Outcome schema = reel_cli({"schema"});
  ASSERT_EQ(schema.exit_code, 0) << schema.err;
  test::write_file(dir / "schema.json", schema.out);
  json s = json::parse(schema.out);
  json map_node;
  for (const auto& rule : s["properties"]["nodes"]["items"]["allOf"])
    if (rule["if"]["properties"]["type"]["const"] == "test.map") map_node = rule["then"];
  EXPECT_EQ(map_node["properties"]["params"]["properties"]["copies"]["anyOf"][0]["maximum"], 16) << s.dump();
  json one = json::parse(reel_cli({"schema", "test.source"}).out);
  EXPECT_EQ(one["required"], json::array({"frames"}));
  EXPECT_EQ(reel_cli({"schema", "test.nope"}).exit_code, 65);

  // Each case: what reel validate says, and what an independent JSON Schema validator says with
  // the generated schema and with the static, structure-only docs/graph.schema.json.
  json base = test::chain(2, {"test.map"});
  auto with = [&](const std::function<void(json&)>& change) {
    json g = base;
    change(g);
    return g;
  };
  std::vector<std::pair<std::string, json>> cases = {
      {"valid", base},
      {"schema key", with([](json& g) { g["$schema"] = "reel.schema.json"; })},
      {"version 1.0", with([](json& g) { g["version"] = 1.0; })},
      {"version 2", with([](json& g) { g["version"] = 2; })},
      {"null description", with([](json& g) { g["description"] = nullptr; })},
      {"null node description", with([](json& g) { g["nodes"][1]["description"] = nullptr; })},
      {"unknown top-level field", with([](json& g) { g["nodez"] = 1; })},
      {"unknown param", with([](json& g) { g["nodes"][1]["params"]["copiez"] = 1; })},
      {"param out of range", with([](json& g) { g["nodes"][1]["params"]["copies"] = 99; })},
      {"integer as 2.0", with([](json& g) { g["nodes"][1]["params"]["copies"] = 2.0; })},
      {"integer as text", with([](json& g) { g["nodes"][1]["params"]["copies"] = "2"; })},
      {"null param is the default", with([](json& g) { g["nodes"][1]["params"]["copies"] = nullptr; })},
      {"missing required param", with([](json& g) { g["nodes"][0]["params"].erase("frames"); })},
      {"choice not listed", with([](json& g) { g["nodes"][1]["params"]["fail_phase"] = "never"; })},
      {"number for a string param", with([](json& g) { g["nodes"][1]["params"]["journal"] = 24; })},
      {"unknown type", with([](json& g) { g["nodes"][1]["type"] = "test.mapp"; })},
      {"unknown input port", with([](json& g) { g["nodes"][1]["inputs"] = {{"inn", "src.out"}}; })},
  };
  const std::vector<std::string> structural = {"valid", "schema key", "version 1.0", "version 2", "null description",
                                               "null node description", "unknown top-level field"};
  for (const auto& [name, document] : cases) {
    fs::path file = dir / (name + ".json");
    test::write_file(file, document.dump(2));
    bool reel_accepts = reel_cli({"validate", file.string()}).exit_code == 0;
    for (const std::string& schema_file : {(dir / "schema.json").string(), std::string(REEL_SOURCE_DIR) + "/docs/graph.schema.json"}) {
      if (schema_file.find("docs/") != std::string::npos &&
          std::find(structural.begin(), structural.end(), name) == structural.end())
        continue;  // the static schema checks structure only
      std::string command = "/usr/bin/python3 -c \"import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), "
                            "json.load(open(sys.argv[2])), cls=jsonschema.Draft202012Validator)\" '" +
                            file.string() + "' '" + schema_file + "' 2>/dev/null";
      bool schema_accepts = std::system(command.c_str()) == 0;
      EXPECT_EQ(reel_accepts, schema_accepts) << name << " with " << schema_file;
    }
  }
}

// Under a terminal: one line redrawn in place, with rate, elapsed time and ETA, ending with the
// final counts and a newline before the outcome.
TEST(Cli, ProgressLineOnATerminal) {
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(
      test::chain(40, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}, {"delay_us", 30000}}}}));
  std::string full = std::string(REEL_EXECUTABLE) + " --plugin-path " + REEL_TEST_PLUGIN_DIR + " run " + graph.string();
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string screen;
  char buffer[4096];
  for (ssize_t n; (n = ::read(master, buffer, sizeof buffer)) > 0;) screen.append(buffer, static_cast<std::size_t>(n));
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << screen;
  EXPECT_TRUE(contains(screen, "\r\033[K")) << "redrawn in place";
  EXPECT_TRUE(contains(screen, " fps")) << screen;
  EXPECT_TRUE(contains(screen, "ETA ")) << screen;
  EXPECT_TRUE(contains(screen, " elapsed")) << screen;
  const std::size_t outcome = screen.find("reel: " + graph.string() + " succeeded");
  ASSERT_NE(outcome, std::string::npos) << screen;
  const std::size_t last_draw = screen.rfind("\r\033[K", outcome);
  ASSERT_NE(last_draw, std::string::npos);
  std::string final_line = screen.substr(last_draw, outcome - last_draw);
  EXPECT_TRUE(contains(final_line, "sink 40/40")) << final_line;
  EXPECT_FALSE(contains(final_line, "ETA")) << "no time left at the end: " << final_line;
  EXPECT_TRUE(contains(final_line, "\n")) << "the outcome starts on its own line: " << final_line;
}

// `reel run ... 2>&1 | head -1`: the reader of stderr goes away early. The run must still finish,
// commit its output and leave no temporary file (SIGPIPE would kill it half-way).
TEST(Cli, AReaderThatGoesAwayDoesNotKillTheRun) {
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(
      test::chain(30, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}, {"delay_us", 5000}}}}));
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::close(pipe_fds[0]);  // nobody reads
  std::string command = std::string(REEL_EXECUTABLE) + " --plugin-path " + REEL_TEST_PLUGIN_DIR + " run " + graph.string();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fds[1], 1);
    ::dup2(pipe_fds[1], 2);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_EQ(test::read_lines(dir / "out.txt").size(), 30u);
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_TRUE(entry.path() == dir / "out.txt") << "left behind: " << entry.path();
}

TEST(Cli, WorkerRunsJobsFromStdinAndStaysAlive) {
  fs::path dir = test::temp_dir();
  fs::path bad = write_graph(
      test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "process"}, {"fail_with", "c10_oom"}}}}), "bad.json");
  fs::path good =
      write_graph(test::chain(4, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}}}}), "good.json");
  fs::path jobs = dir / "jobs.jsonl";
  test::write_file(jobs, json({{"id", 1}, {"graph", bad.string()}}).dump() + "\nnot json\n" +
                             json({{"id", 2}, {"graph", good.string()}, {"set", {"src.frames=6"}}}).dump() + "\n");
  Outcome o = reel_cli({"worker"}, jobs);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  std::vector<json> finished;
  int rejected = 0;
  std::stringstream lines(o.out);
  for (std::string line; std::getline(lines, line);) {
    json event = json::parse(line);
    if (event["event"] == "finished") finished.push_back(event);
    if (event["event"] == "rejected") ++rejected;
  }
  ASSERT_EQ(finished.size(), 2u) << o.out;
  EXPECT_EQ(rejected, 1);
  EXPECT_EQ(finished[0]["job"], 1);
  EXPECT_EQ(finished[0]["status"], "failed");
  EXPECT_EQ(finished[0]["exit_code"], 75);
  EXPECT_EQ(finished[0]["error"]["node"], "m0");
  EXPECT_EQ(finished[1]["job"], 2);
  EXPECT_EQ(finished[1]["status"], "succeeded");
  EXPECT_EQ(test::read_lines(dir / "out.txt").size(), 6u);
}

// --- The plugin cache -------------------------------------------------------------------------

// The files the dynamic loader opened, from its own trace (LD_DEBUG=files, on stderr).
std::vector<std::string> loaded_objects(const std::string& loader_trace) {
  std::vector<std::string> files;
  std::stringstream lines(loader_trace);
  for (std::string line; std::getline(lines, line);)
    if (auto at = line.find("file="); at != std::string::npos && contains(line, "generating link map"))
      files.push_back(line.substr(at + 5, line.find_first_of(" \t[", at + 5) - at - 5));
  return files;
}

bool any_contains(const std::vector<std::string>& files, const std::string& part) {
  return std::any_of(files.begin(), files.end(), [&](const std::string& f) { return contains(f, part); });
}

TEST(PluginCache, WarmCacheAnswersWithoutLoadingLibtorchOrAnyPlugin) {
  const std::string cache = "REEL_PLUGIN_CACHE=" + (test::temp_dir("cache") / "plugins.json").string();
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(test::chain(4, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  fs::path wrong = write_graph(test::chain(4, {"test.map"}, {{"m0", {{"no_such_param", 1}}}}), "wrong.json");

  Outcome cold = reel_cli({"plugins", "--json"}, "/dev/null", {cache, "LD_DEBUG=files"});
  ASSERT_EQ(cold.exit_code, 0) << cold.err;
  EXPECT_TRUE(any_contains(loaded_objects(cold.err), "libtorch")) << "a cold cache is built by loading the plugins";

  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"plugins", "--json"}, {"validate", graph.string()}, {"describe", "test.map"},
        {"schema"}, {"--version"}}) {
    Outcome warm = reel_cli(command, "/dev/null", {cache, "LD_DEBUG=files"});
    EXPECT_EQ(warm.exit_code, 0) << command[0] << ": " << warm.err;
    const auto loaded = loaded_objects(warm.err);
    EXPECT_FALSE(loaded.empty()) << "no loader trace: the test would prove nothing";
    EXPECT_FALSE(any_contains(loaded, "libtorch")) << command[0];
    EXPECT_FALSE(any_contains(loaded, "/plugins/")) << command[0] << " loaded a plugin";
    EXPECT_FALSE(any_contains(loaded, "libreel.so")) << command[0];
  }
  // The same answers as from the loaded libraries.
  EXPECT_EQ(reel_cli({"plugins", "--json"}, "/dev/null", {cache}).out, cold.out);
  Outcome invalid = reel_cli({"validate", wrong.string()}, "/dev/null", {cache});
  EXPECT_EQ(invalid.exit_code, 65);
  EXPECT_TRUE(contains(invalid.err, "no_such_param")) << invalid.err;
}

TEST(PluginCache, RebuiltWhenALibraryChangesAndRunLoadsOnlyThePluginsItUses) {
  const fs::path cache_file = test::temp_dir("cache") / "plugins.json";
  const std::string cache = "REEL_PLUGIN_CACHE=" + cache_file.string();
  const fs::path folder = test::temp_dir("versioned");
  const fs::path library = folder / "libreel_test_versioned.so";
  auto install = [&](int version) {
    const auto before = fs::exists(library) ? fs::last_write_time(library) : fs::file_time_type::min();
    fs::copy_file(fs::path(REEL_VERSIONED_PLUGIN_DIR) / std::to_string(version) / "libreel_test_versioned.so", library,
                  fs::copy_options::overwrite_existing);
    // A new version has a new modification time however fast the test runs.
    if (fs::last_write_time(library) <= before) fs::last_write_time(library, before + std::chrono::seconds(1));
  };
  auto types = [&]() {
    Outcome o = reel_cli({"--plugin-path", folder.string(), "plugins", "--json"}, "/dev/null", {cache});
    EXPECT_EQ(o.exit_code, 0) << o.err;
    const json listed = json::parse(o.out);
    EXPECT_TRUE(listed["refused"].empty()) << o.out;
    std::vector<std::string> names;
    for (const auto& t : listed["node_types"]) names.push_back(t["type"]);
    return names;
  };
  auto has = [](const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };

  install(1);
  EXPECT_TRUE(has(types(), "versioned.v1"));
  EXPECT_TRUE(has(types(), "versioned.v1")) << "the same answer from the cache";
  EXPECT_TRUE(contains(slurp(cache_file), "versioned.v1"));

  install(2);
  auto after = types();
  EXPECT_TRUE(has(after, "versioned.v2"));
  EXPECT_FALSE(has(after, "versioned.v1")) << "a stale cache entry was used";

  // A graph of testkit nodes: `reel run` loads that plugin and no other.
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(test::chain(4, {"test.map"}, {{"sink", {{"path", (dir / "out.txt").string()}}}}));
  Outcome run = reel_cli({"--plugin-path", folder.string(), "run", graph.string(), "--no-progress"}, "/dev/null",
                         {cache, "LD_DEBUG=files"});
  ASSERT_EQ(run.exit_code, 0) << run.err.substr(run.err.size() > 4000 ? run.err.size() - 4000 : 0);
  const auto loaded = loaded_objects(run.err);
  EXPECT_TRUE(any_contains(loaded, "libreel_testkit.so"));
  for (const char* unused : {"libreel_test_versioned.so", "libreel_ffmpeg.so", "libreel_generator.so",
                             "libreel_upscaler.so", "libreel_cogvideox_generator.so"})
    EXPECT_FALSE(any_contains(loaded, unused)) << unused << " was loaded for a graph that does not use it";
  EXPECT_EQ(test::read_lines(dir / "out.txt").size(), 4u);

  // The cache says the library declares versioned.v2, but the file now cannot be loaded (same
  // size and time, so the cache cannot tell): the run fails naming it, as a plugin error.
  const auto size = fs::file_size(library);
  const auto time = fs::last_write_time(library);
  test::write_file(library, std::string(size, 'x'));
  fs::last_write_time(library, time);
  fs::path uses = write_graph(test::graph_json({{{"id", "src"}, {"type", "test.source"}, {"params", {{"frames", 2}}}},
                                               {{"id", "v"}, {"type", "versioned.v2"}, {"inputs", {{"in", "src.out"}}}}}),
                              "uses.json");
  Outcome broken = reel_cli({"--plugin-path", folder.string(), "run", uses.string(), "--no-progress"}, "/dev/null",
                            {cache});
  EXPECT_EQ(broken.exit_code, 78) << broken.err;
  EXPECT_TRUE(contains(broken.err, "libreel_test_versioned.so")) << broken.err;
}

// A refused library is never cached: it is tried, and reported, by every command.
TEST(PluginCache, ARefusedLibraryIsReportedEveryTimeAndNeverCached) {
  const fs::path cache_file = test::temp_dir("cache") / "plugins.json";
  const std::string cache = "REEL_PLUGIN_CACHE=" + cache_file.string();
  const std::string bad = std::string(REEL_BAD_PLUGIN_DIR) + "/bad_abi";
  for (int run = 0; run < 2; ++run) {
    Outcome o = reel_cli({"--plugin-path", bad, "plugins", "--json"}, "/dev/null", {cache});
    ASSERT_EQ(o.exit_code, 0) << o.err;
    const json listed = json::parse(o.out);
    ASSERT_EQ(listed["refused"].size(), 1u) << "run " << run << ": " << o.out;
    EXPECT_TRUE(contains(listed["refused"][0]["reason"].get<std::string>(), "ABI")) << o.out;
  }
  EXPECT_TRUE(fs::exists(cache_file)) << "the other libraries were cached";
  EXPECT_FALSE(contains(slurp(cache_file), "bad_abi")) << "a refused library was cached";
}

TEST(PluginCache, AnUnreadableCacheIsRebuilt) {
  const fs::path cache_file = test::temp_dir("cache") / "plugins.json";
  test::write_file(cache_file, "{ not json");
  Outcome o = reel_cli({"plugins", "--json"}, "/dev/null", {"REEL_PLUGIN_CACHE=" + cache_file.string()});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_FALSE(json::parse(o.out)["node_types"].empty());
  json rebuilt = json::parse(slurp(cache_file));
  EXPECT_FALSE(rebuilt["libraries"].empty());
}

// --- Crash isolation (reel run --isolate) -------------------------------------------------------

class IsolatedCrash : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(IsolatedCrash, IsSurvivedNamedCleanedUpAndTheNextGraphRuns) {
  const auto& [kind, words] = GetParam();
  fs::path dir = test::temp_dir();
  fs::path crash = write_graph(
      test::chain(6, {"test.map"},
                  {{"m0", {{"fail_phase", "process"}, {"fail_with", kind}, {"fail_frame", 2}}},
                   {"sink", {{"path", (dir / "crash.txt").string()}}}}),
      "crash.json");
  fs::path good = write_graph(test::chain(5, {"test.map"}, {{"sink", {{"path", (dir / "good.txt").string()}}}}),
                              "good.json");
  fs::path log = test::temp_dir("log") / "log.jsonl";
  Outcome o = reel_cli({"--log-format", "json", "--log-file", log.string(), "--log-level", "info", "run", "--isolate",
                        "--no-progress", crash.string(), good.string(), "--report", (dir / "report.json").string()});
  EXPECT_EQ(o.exit_code, 70) << o.err;
  // Parent and child log to the same file: every line is whole JSON, and the crash is in it.
  int log_lines = 0;
  bool crash_logged = false;
  for (const std::string& line : test::read_lines(log)) {
    json entry = json::parse(line, nullptr, false);
    EXPECT_FALSE(entry.is_discarded()) << line;
    ++log_lines;
    crash_logged |= contains(line, "crash.json") && contains(line, "the process running the graph");
  }
  EXPECT_GT(log_lines, 0);
  EXPECT_TRUE(crash_logged) << "the log names the crashed graph";
  EXPECT_TRUE(contains(o.err, "in node \"m0\" (test.map, libreel_testkit.so) at frame 2")) << o.err;
  EXPECT_TRUE(contains(o.err, words)) << o.err;
  EXPECT_TRUE(contains(o.err, "2 graphs: 1 succeeded, 1 failed")) << o.err;
  // The sink had its temporary file open when the process died: removed by the parent.
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir)) left.push_back(entry.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"good.txt", "report.json"}));
  EXPECT_EQ(test::read_lines(dir / "good.txt").size(), 5u);
  json reports = json::parse(slurp(dir / "report.json"));
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0]["status"], "failed");
  EXPECT_EQ(reports[0]["error"]["kind"], "internal error");
  EXPECT_EQ(reports[0]["error"]["node"], "m0");
  EXPECT_EQ(reports[0]["error"]["phase"], "process");
  EXPECT_EQ(reports[0]["error"]["frame"], 2);
  EXPECT_EQ(reports[1]["status"], "succeeded");
}

INSTANTIATE_TEST_SUITE_P(
    EveryCrash, IsolatedCrash,
    ::testing::Values(std::pair<std::string, std::string>{"segfault", "SIGSEGV"},
                      std::pair<std::string, std::string>{"abort", "SIGABRT"},
                      std::pair<std::string, std::string>{"terminate_thread", "SIGABRT"},
                      std::pair<std::string, std::string>{"throwing_destructor", "SIGABRT"},
                      // exit() runs static destructors under running threads: it may end in a
                      // signal or in the code; either way it is a crash of node m0.
                      std::pair<std::string, std::string>{"exit0", "the process running the graph"},
                      std::pair<std::string, std::string>{"exit3", "the process running the graph"}),
    [](const auto& info) { return info.param.first; });

TEST(Isolate, AFailingGraphIsReportedAsWithoutIsolationAndStdinIsRefused) {
  fs::path dir = test::temp_dir();
  fs::path bad = write_graph(
      test::chain(4, {"test.map"}, {{"m0", {{"fail_phase", "load"}, {"fail_with", "bad_input"}}}}), "bad.json");
  Outcome o = reel_cli({"run", "--isolate", bad.string(), "--report", (dir / "r.json").string()});
  EXPECT_EQ(o.exit_code, 66) << o.err;
  json report = json::parse(slurp(dir / "r.json"));
  EXPECT_EQ(report["error"]["kind"], "bad input");
  EXPECT_EQ(report["error"]["node"], "m0");
  EXPECT_EQ(report["error"]["phase"], "load");
  EXPECT_EQ(reel_cli({"run", "--isolate", "-"}).exit_code, 64);
}

// The memory cgroups under this process's own (cgroup v1's memory hierarchy, as on the machines
// the suite runs on) named for a reel process that no longer exists: what a run left behind.
std::vector<std::string> orphaned_reel_cgroups() {
  std::string own;
  std::ifstream groups("/proc/self/cgroup");
  for (std::string line; std::getline(groups, line);)
    if (line.find(":memory:") != std::string::npos) own = line.substr(line.find(":memory:") + 8);
  std::vector<std::string> orphans;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path("/sys/fs/cgroup/memory") / fs::path(own).relative_path(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("reel-", 0) != 0 || !entry.is_directory()) continue;
    const std::string pid = name.substr(5, name.find('-', 5) - 5);
    if (!fs::exists("/proc/" + pid)) orphans.push_back(name);
  }
  return orphans;
}

// The kernel's OOM killer, held to the child by --memory-limit (a memory cgroup of its own): the
// graph fails as out of memory naming the node that was loading its model, its partial output is
// removed, the next graph runs in a fresh child, and no cgroup is left behind.
TEST(Isolate, AChildOverItsMemoryLimitIsKilledReportedAsOutOfMemoryAndTheNextGraphRuns) {
  fs::path dir = test::temp_dir();
  fs::path big = write_graph(test::chain(4, {"test.map"},
                                         {{"m0", {{"model_mib", 3072}}}, {"sink", {{"path", (dir / "big.txt").string()}}}}),
                             "big.json");
  fs::path good = write_graph(test::chain(3, {"test.map"}, {{"sink", {{"path", (dir / "good.txt").string()}}}}),
                              "good.json");
  Outcome o = reel_cli({"run", "--isolate", "--memory-limit", "1G", "--no-progress", big.string(), good.string(),
                        "--report", (dir / "report.json").string()});
  EXPECT_EQ(o.exit_code, 75) << o.err;
  EXPECT_TRUE(contains(o.err, "in node \"m0\" (test.map, libreel_testkit.so)")) << o.err;
  EXPECT_TRUE(contains(o.err, "killed by SIGKILL from the kernel's out-of-memory killer at its memory limit of 1024 MiB"))
      << o.err;
  EXPECT_TRUE(contains(o.err, "Raise --memory-limit")) << o.err;
  json reports = json::parse(slurp(dir / "report.json"));
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0]["error"]["kind"], "out of memory");
  EXPECT_EQ(reports[0]["error"]["node"], "m0");
  EXPECT_EQ(reports[0]["error"]["phase"], "load");
  EXPECT_EQ(reports[1]["status"], "succeeded");
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir)) left.push_back(entry.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"good.txt", "report.json"}));
  EXPECT_EQ(orphaned_reel_cgroups(), std::vector<std::string>{});
}

TEST(Isolate, AMemoryLimitNeedsIsolationAndASize) {
  EXPECT_EQ(reel_cli({"run", "x.json", "--memory-limit", "1G"}).exit_code, 64);
  EXPECT_EQ(reel_cli({"run", "x.json", "--isolate", "--memory-limit", "lots"}).exit_code, 64);
  Outcome zero = reel_cli({"run", "x.json", "--isolate", "--memory-limit", "0"});
  EXPECT_EQ(zero.exit_code, 64);
  EXPECT_TRUE(contains(zero.err, "under 1 MiB")) << zero.err;
  Outcome worker = reel_cli({"worker", "--no-isolate", "--memory-limit", "1G"}, "/dev/null");
  EXPECT_EQ(worker.exit_code, 64);
  EXPECT_TRUE(contains(worker.err, "--memory-limit")) << worker.err;
}

// --- Time limits ----------------------------------------------------------------------------------

TEST(TimeLimits, ANodeCallOverItsLimitFailsTheRunNamingTheNode) {
  fs::path dir = test::temp_dir();
  json slow = test::chain(4, {"test.map"}, {{"m0", {{"delay_us", 400000}}}, {"sink", {{"path", (dir / "slow.txt").string()}}}});
  slow["nodes"][1]["timeout"] = 0.1;
  fs::path graph = write_graph(slow, "slow.json");
  fs::path good = write_graph(test::chain(3, {"test.map"}, {{"sink", {{"path", (dir / "good.txt").string()}}}}), "good.json");
  Outcome o = reel_cli({"run", "--no-progress", graph.string(), good.string(), "--report", (dir / "r.json").string()});
  EXPECT_EQ(o.exit_code, 124) << o.err;
  EXPECT_TRUE(contains(o.err, "timed out in node \"m0\" (test.map, libreel_testkit.so) at frame 0")) << o.err;
  EXPECT_TRUE(contains(o.err, "time limit of 0.1 s")) << o.err;
  EXPECT_FALSE(fs::exists(dir / "slow.txt"));
  EXPECT_TRUE(fs::exists(dir / "good.txt"));
  json reports = json::parse(slurp(dir / "r.json"));
  EXPECT_EQ(reports[0]["error"]["kind"], "timed out");
  EXPECT_EQ(reports[0]["error"]["exit_code"], 124);
  EXPECT_EQ(reports[0]["error"]["node"], "m0");
  EXPECT_EQ(reports[1]["status"], "succeeded");
}

TEST(TimeLimits, TheCommandLineSetsTheLimitsOfGraphsWithoutTheirOwn) {
  fs::path dir = test::temp_dir();
  fs::path graph = write_graph(test::chain(40, {"test.map"}, {{"m0", {{"delay_us", 30000}}}}));
  Outcome run = reel_cli({"run", "--no-progress", graph.string(), "--timeout", "0.3"});
  EXPECT_EQ(run.exit_code, 124) << run.err;
  EXPECT_TRUE(contains(run.err, "the run took longer than its time limit of 0.3 s")) << run.err;
  Outcome node = reel_cli({"run", "--no-progress", graph.string(), "--node-timeout", "0.01"});
  EXPECT_EQ(node.exit_code, 124) << node.err;
  EXPECT_TRUE(contains(node.err, "in node \"m0\"")) << node.err;
  json own = test::chain(40, {"test.map"}, {{"m0", {{"delay_us", 30000}}}});
  own["nodes"][1]["timeout"] = 5;
  Outcome graph_wins = reel_cli({"run", "--no-progress", write_graph(own, "own.json").string(), "--node-timeout", "0.01"});
  EXPECT_EQ(graph_wins.exit_code, 0) << "the graph's own limit wins: " << graph_wins.err;
}

TEST(TimeLimits, AHungCallEndsTheIsolatedRunWhichIsNamedAndTheNextGraphRuns) {
  fs::path dir = test::temp_dir();
  json hang = test::chain(5, {"test.map"},
                          {{"m0", {{"fail_phase", "process"}, {"fail_with", "hang"}, {"fail_frame", 1}}},
                           {"sink", {{"path", (dir / "hang.txt").string()}}}});
  hang["nodes"][1]["timeout"] = 0.2;
  fs::path graph = write_graph(hang, "hang.json");
  fs::path good = write_graph(test::chain(3, {"test.map"}, {{"sink", {{"path", (dir / "good.txt").string()}}}}), "good.json");
  Outcome o = reel_cli({"run", "--isolate", "--no-progress", graph.string(), good.string(), "--report",
                        (dir / "r.json").string()});
  EXPECT_EQ(o.exit_code, 124) << o.err;
  EXPECT_TRUE(contains(o.err, "timed out in node \"m0\" (test.map, libreel_testkit.so) at frame 1")) << o.err;
  EXPECT_TRUE(contains(o.err, "has not returned from process of frame 1")) << o.err;
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir)) left.push_back(entry.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"good.txt", "r.json"}));
  json reports = json::parse(slurp(dir / "r.json"));
  EXPECT_EQ(reports[0]["error"]["kind"], "timed out");
  EXPECT_EQ(reports[0]["error"]["node"], "m0");
  EXPECT_EQ(reports[1]["status"], "succeeded");
}

}  // namespace
}  // namespace reel
