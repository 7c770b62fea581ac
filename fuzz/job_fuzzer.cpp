// libFuzzer target: a `reel worker` input line, as untrusted input. The worker's own steps run:
// the nesting limit, JSON parsing, the id of a broken line, and every field check of a job
// (an override's syntax, a report path's folder). A rejection is the expected answer to a bad
// line; anything else (a crash, undefined behaviour, an exception of another type) is a bug.
#include "job.h"

#include <reel/runtime/graph.h>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string line(reinterpret_cast<const char*>(data), size);
  (void)reel::host::id_in_broken_line(line);
  if (reel::json_nesting_depth(line) > reel::kMaxJsonDepth) return 0;
  const nlohmann::json message = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded() || !message.is_object()) return 0;
  try {
    (void)reel::host::parse_job(message, false);
  } catch (const reel::host::Rejection&) {
  }
  return 0;
}
