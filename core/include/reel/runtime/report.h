#pragma once
// The run report: one JSON document per run, written on success, failure and cancel alike.

#include <reel/runtime/executor.h>

#include <nlohmann/json.hpp>

namespace reel {

nlohmann::json run_report(const RunResult& result);
nlohmann::json failure_json(const Failure& failure);

}  // namespace reel
