// The one place that turns an exception into a classified Failure, and a Failure into words.
#include <reel/compute.h>
#include <reel/runtime/failure.h>
#include <reel/runtime/graph.h>

#include <cxxabi.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <new>
#include <system_error>
#include <vector>

namespace reel {

const char* to_string(Phase phase) noexcept {
  switch (phase) {
    case Phase::parse:
      return "parse";
    case Phase::validate:
      return "validate";
    case Phase::configure:
      return "configure";
    case Phase::plan:
      return "plan";
    case Phase::load:
      return "load";
    case Phase::produce:
      return "produce";
    case Phase::process:
      return "process";
    case Phase::finish:
      return "finish";
    case Phase::unload:
      return "unload";
    case Phase::run:
      return "run";
  }
  return "run";
}

int exit_code(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::invalid_graph:
      return 65;  // EX_DATAERR
    case ErrorKind::bad_input:
      return 66;  // EX_NOINPUT
    case ErrorKind::device:
      return 69;  // EX_UNAVAILABLE
    case ErrorKind::internal:
      return 70;  // EX_SOFTWARE
    case ErrorKind::io:
      return 74;  // EX_IOERR
    case ErrorKind::out_of_memory:
      return 75;  // EX_TEMPFAIL: retry with less
    case ErrorKind::plugin:
      return 78;  // EX_CONFIG
    case ErrorKind::cancelled:
      return 130;  // 128 + SIGINT
    case ErrorKind::usage:
      return 64;  // EX_USAGE
    case ErrorKind::timeout:
      return 124;  // as timeout(1)
  }
  return 70;
}

namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

bool mentions(const std::string& lowered, std::initializer_list<const char*> needles) {
  return std::any_of(needles.begin(), needles.end(),
                     [&](const char* n) { return lowered.find(n) != std::string::npos; });
}

// Errors that lost their type (TorchScript re-raises everything as a plain error) keep their
// cause in the text.
bool says_out_of_memory(const std::string& lowered) {
  return mentions(lowered, {"out of memory", "can't allocate memory", "cannot allocate memory", "outofmemoryerror"});
}

ErrorKind kind_from_text(const std::string& text) {
  std::string t = lower(text);
  if (says_out_of_memory(t)) return ErrorKind::out_of_memory;
  if (mentions(t, {"cuda error", "cudnn_status", "cudnn error", "cublas_status", "device-side assert", "cuda driver",
                   "illegal memory access", "nccl error"}))
    return ErrorKind::device;
  return ErrorKind::internal;
}

std::string first_line(const std::string& text) {
  auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

std::string current_type_name() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (type == nullptr) return "unknown";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type->name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? name.get() : type->name();
}

bool io_errno(int code) {
  return code == ENOSPC || code == EACCES || code == EROFS || code == EDQUOT || code == EPERM || code == EIO ||
         code == ENOENT || code == EISDIR || code == ENOTDIR;
}

// Registered while libraries load (static initialisers, one thread), read afterwards.
std::vector<ExceptionTranslator>& translators() {
  static auto* list = new std::vector<ExceptionTranslator>();  // never destroyed: used until exit
  return *list;
}

bool translate(const std::exception& e, TranslatedException& out) noexcept {
  for (ExceptionTranslator t : translators())
    if (t(e, out)) return true;
  return false;
}

// what() may return null from a careless plugin; std::string of null is undefined behaviour.
std::string message_of(const char* what) { return what ? std::string(what) : std::string("(no message)"); }

Failure classify(std::exception_ptr error) {
  Failure f;
  try {
    std::rethrow_exception(error);
  } catch (const GraphError& e) {
    f.kind = e.kind(), f.reason = message_of(e.what()), f.hint = e.hint();
    f.file = e.file(), f.pointer = e.pointer(), f.node_id = e.node_id();
  } catch (const Error& e) {
    f.kind = e.kind(), f.reason = message_of(e.what()), f.hint = e.hint();
  } catch (const std::bad_alloc& e) {
    f.kind = ErrorKind::out_of_memory, f.reason = "host memory allocation failed (" + message_of(e.what()) + ")";
  } catch (const std::filesystem::filesystem_error& e) {
    f.kind = io_errno(e.code().value()) ? ErrorKind::io : ErrorKind::internal, f.reason = message_of(e.what());
  } catch (const std::system_error& e) {
    f.kind = e.code().category() == std::generic_category() || e.code().category() == std::system_category()
                 ? (io_errno(e.code().value()) ? ErrorKind::io : ErrorKind::internal)
                 : ErrorKind::internal;
    f.reason = message_of(e.what());
  } catch (const std::exception& e) {
    if (TranslatedException t; translate(e, t)) {
      f.kind = t.out_of_memory ? ErrorKind::out_of_memory : kind_from_text(t.text), f.reason = first_line(t.text);
    } else {
      f.kind = kind_from_text(message_of(e.what())), f.reason = first_line(message_of(e.what()));
    }
  } catch (...) {
    f.kind = ErrorKind::internal, f.reason = "an exception that is not a std::exception";
  }
  // The full text (backtraces included) and the type go to the log and report, not the terminal.
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    f.detail = current_type_name() + ": " + message_of(e.what());
  } catch (...) {
    f.detail = current_type_name();
  }
  // A plugin's text is shown to people and written as JSON: no escape sequences reach a
  // terminal, and every byte is valid UTF-8.
  f.reason = printable_text(f.reason);
  f.hint = printable_text(f.hint);
  f.detail = printable_text(f.detail);
  return f;
}

}  // namespace

std::string printable_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  auto escape = [&](unsigned char c) {
    char code[8];
    std::snprintf(code, sizeof code, "\\x%02x", c);
    out += code;
  };
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
        escape(c);
      else
        out += static_cast<char>(c);
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length from the lead byte, then continuation bytes 10xxxxxx, no
    // overlong forms, no surrogates, nothing above U+10FFFF.
    const std::size_t length = c >= 0xf0 ? (c <= 0xf4 ? 4 : 0) : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    bool valid = length > 0 && i + length <= text.size();
    std::uint32_t code_point = length == 2 ? c & 0x1f : length == 3 ? c & 0x0f : c & 0x07;
    for (std::size_t k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next & 0xc0) == 0x80;
      code_point = (code_point << 6) | (next & 0x3f);
    }
    if (valid)
      valid = !(length == 3 && (code_point < 0x800 || (code_point >= 0xd800 && code_point <= 0xdfff))) &&
              !(length == 4 && (code_point < 0x10000 || code_point > 0x10ffff));
    if (!valid) {
      out += "\xef\xbf\xbd";  // U+FFFD, the replacement character, for one bad byte
      ++i;
      continue;
    }
    if (code_point >= 0x80 && code_point <= 0x9f)
      escape(static_cast<unsigned char>(code_point));  // C1 controls (CSI among them)
    else
      out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

void add_exception_translator(ExceptionTranslator translator) noexcept {
  try {
    translators().push_back(translator);
  } catch (...) {
    // Out of memory while libraries load: the exceptions are then classified by their text.
  }
}

Failure classify_exception(std::exception_ptr error) {
  // The classifier is the error path's own safety net: nothing it meets may make it throw.
  try {
    return classify(error);
  } catch (...) {
    Failure f;
    f.kind = ErrorKind::internal;
    f.reason = "an exception that could not be described";
    f.detail = "classify_exception failed while describing an exception";
    return f;
  }
}

namespace {

// A terminal gets the first kMaxShown bytes (cut on a character boundary) and a marker; the log
// and the run report keep the whole text.
constexpr std::size_t kMaxShown = 600;

std::string cut_for_terminal(const std::string& text) {
  if (text.size() <= kMaxShown) return text;
  std::size_t end = kMaxShown;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) --end;
  return text.substr(0, end) + " [... " + std::to_string(text.size() - end) +
         " more bytes; the full text is in the log and the run report]";
}

}  // namespace

std::string Failure::user_message() const {
  std::string where;
  if (!node_id.empty()) {
    where = " in node \"" + node_id + "\"";
    if (!node_type.empty()) where += " (" + node_type + (plugin.empty() ? "" : ", " + plugin) + ")";
    switch (phase) {
      case Phase::process:
      case Phase::produce:
        where += frame ? " at frame " + std::to_string(*frame)
                       : " while " + std::string(phase == Phase::produce ? "producing" : "processing");
        break;
      case Phase::parse:
      case Phase::validate:
      case Phase::run:
        break;
      default:
        where += std::string(" during ") + to_string(phase);
    }
  }
  std::string text = std::string(to_string(kind)) + where;
  if (!file.empty()) text += " [" + file + (pointer.empty() ? "" : " at " + pointer) + "]";
  text += ": " + cut_for_terminal(reason);

  std::string done;
  switch (phase) {
    case Phase::parse:
    case Phase::validate:
      break;
    case Phase::configure:
    case Phase::plan:
      done = "Nothing was loaded.";
      break;
    default:
      done = kind == ErrorKind::cancelled ? "Every node was unloaded and partial outputs were removed."
                                          : "All models were unloaded, caches freed and partial outputs removed.";
  }
  std::string next = cut_for_terminal(hint);
  if (next.empty()) {
    switch (kind) {
      case ErrorKind::invalid_graph:
        next = "Fix the graph and check it with `reel validate`.";
        break;
      case ErrorKind::bad_input:
        next = "Check the input file: it may be missing, truncated or in an unsupported format.";
        break;
      case ErrorKind::plugin:
        next = "Rebuild the plugin against this reel, or remove it from the plugin path.";
        break;
      case ErrorKind::io:
        next = "Check the path, free disk space and permissions.";
        break;
      case ErrorKind::out_of_memory:
        next = "Try a lower resolution or a smaller tile, or disable this node.";
        break;
      case ErrorKind::device:
        next = "Retry the job; if it fails again, check the GPU driver (nvidia-smi).";
        break;
      case ErrorKind::cancelled:
        break;
      case ErrorKind::usage:
        next = "See `reel --help` and docs/graph-format.md for the syntax.";
        break;
      case ErrorKind::timeout:
        next = "If the work is legitimately this long, raise the limit (\"timeout\" in the graph, --node-timeout, "
               "--timeout); otherwise the node is stuck.";
        break;
      case ErrorKind::internal:
        next = plugin.empty() ? "This is a bug in reel; the log and run report have the full detail."
                              : "This looks like a bug in " + plugin + "; the log and run report have the full detail.";
        break;
    }
  }
  if (!next.empty()) next[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(next[0])));
  if (!done.empty()) text += "\n" + done;
  if (!next.empty()) text += (done.empty() ? "\n" : " ") + next;
  return text;
}

bool is_out_of_memory(const std::exception& error) noexcept {
  if (dynamic_cast<const std::bad_alloc*>(&error)) return true;
  try {
    if (TranslatedException t; translate(error, t)) return t.out_of_memory || says_out_of_memory(lower(t.text));
    return says_out_of_memory(lower(message_of(error.what())));
  } catch (...) {
    return false;
  }
}

}  // namespace reel
