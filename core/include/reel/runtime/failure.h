#pragma once
// One classified failure: what went wrong, where, and what the user should do next.
// classify_exception() is the one place that turns an exception into a Failure.

#include <reel/error.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace reel {

enum class Phase { parse, validate, configure, plan, load, produce, process, finish, unload, run };
const char* to_string(Phase phase) noexcept;

struct Failure {
  ErrorKind kind = ErrorKind::internal;
  std::string node_id;  // empty when no node is to blame (parse errors, cancellation)
  std::string node_type;
  std::string plugin;  // library file name
  Phase phase = Phase::run;
  std::optional<std::int64_t> frame;
  std::string file;     // graph file, for graph errors
  std::string pointer;  // JSON pointer, for graph errors
  std::string reason;   // the exception's own text (what())
  std::string hint;     // what to try next
  std::string detail;   // exception type and full text, for the log and report

  // The short message for a person: what failed, where, what was done, what to try.
  std::string user_message() const;
};

// Call inside a catch block: classifies the in-flight exception by type first, then by text
// (TorchScript loses the type of an exception raised inside a module).
Failure classify_exception(std::exception_ptr error);

// Exceptions of a library that libreel-base does not link (libtorch's c10::Error): the part that
// links it registers a translator when it loads (a process without libtorch never meets them).
// A translator returns false for an exception that is not its library's; otherwise it sets the
// message without any backtrace and whether the type itself says out of memory. Must not throw.
struct TranslatedException {
  std::string text;
  bool out_of_memory = false;
};
using ExceptionTranslator = bool (*)(const std::exception& error, TranslatedException& out) noexcept;
void add_exception_translator(ExceptionTranslator translator) noexcept;

// `text` safe to print and to write as JSON: invalid UTF-8 bytes become U+FFFD, control characters
// (escape sequences, bell; not newline and tab) are shown as \xNN. Never throws.
std::string printable_text(std::string_view text);

// sysexits.h-style exit code for a failure kind (docs/errors.md).
int exit_code(ErrorKind kind) noexcept;

}  // namespace reel
