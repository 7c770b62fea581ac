#pragma once
// A `reel worker` job line, read as untrusted input (docs/worker.md): the fields checked one by
// one, and the id of a line too broken to parse, so the rejection can name the job.

#include <nlohmann/json.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace reel::host {

struct Job {
  nlohmann::json id;
  nlohmann::json graph;  // a path (string) or an inline graph document (object)
  std::vector<std::string> sets;
  bool overwrite = false;
  std::string report;
  std::atomic<bool> cancel{false};
};

// A line that cannot become a job: the field at fault (empty: the whole line) and why.
struct Rejection {
  std::string field, message;
};

// The job a parsed line asks for. Throws Rejection naming the first field at fault.
std::shared_ptr<Job> parse_job(const nlohmann::json& line, bool default_overwrite);

// The "id" of a line that is not valid JSON (cut short, a stray comma), when it can still be read,
// so the client learns which of its jobs was refused; null when it cannot. Only a key of the outer
// object counts (an inline graph's nodes have ids too), and the value must be a whole string or
// integer.
nlohmann::json id_in_broken_line(const std::string& line);

}  // namespace reel::host
