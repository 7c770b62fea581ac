#pragma once
// The one error hierarchy of reel. Plugins throw these to say *what kind* of failure happened;
// the executor classifies everything else (std::bad_alloc, c10::OutOfMemoryError, ...) itself.
// Every class has its key function in libreel, so catching by type works across plugin libraries.

#include <stdexcept>
#include <string>

namespace reel {

// What the user is told to do next depends only on this. docs/errors.md lists the exit codes.
enum class ErrorKind {
  invalid_graph,  // graph file or parameter is wrong: fix the graph
  bad_input,      // input data is missing, corrupt or unsupported: fix the input
  plugin,         // a plugin library could not be used: rebuild or remove it
  io,             // reading or writing a path failed: check the path, disk and permissions
  out_of_memory,  // host or GPU memory ran out: lower resolution, tile, or disable a node
  device,         // the GPU runtime failed: retry, check the driver
  cancelled,      // the user or a signal stopped the run
  internal,       // anything else: a bug, in a plugin or in reel
  usage,          // the command line or job request is wrong (a --set, an option): fix the command
  timeout,        // a call into a node, or the whole run, took longer than its time limit
};

const char* to_string(ErrorKind kind) noexcept;

class Error : public std::runtime_error {
 public:
  // `message` says what went wrong in plain words; `hint` (optional) what to try next. The
  // executor adds where (node, phase, frame), so neither needs to repeat it.
  Error(ErrorKind kind, const std::string& message, std::string hint = {});
  ~Error() override;
  ErrorKind kind() const noexcept { return kind_; }
  const std::string& hint() const noexcept { return hint_; }

 private:
  ErrorKind kind_;
  std::string hint_;
};

// A parameter value is unusable (configure-time checks beyond the schema, e.g. odd width for
// 4:2:0). `param` names it so the message can point at the graph field.
class InvalidParamError : public Error {
 public:
  InvalidParamError(std::string param, const std::string& message, std::string hint = {});
  ~InvalidParamError() override;
  const std::string& param() const noexcept { return param_; }

 private:
  std::string param_;
};

// Input data is missing, corrupt, truncated or unsupported.
class BadInputError : public Error {
 public:
  explicit BadInputError(const std::string& message, std::string hint = {});
  ~BadInputError() override;
};

// Reading or writing `path` failed (disk full, permission, existing output).
class IoError : public Error {
 public:
  IoError(std::string path, const std::string& message, std::string hint = {});
  ~IoError() override;
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// Memory ran out in a way the plugin detected itself (allocator failures are classified anyway).
class OutOfMemoryError : public Error {
 public:
  explicit OutOfMemoryError(const std::string& message, std::string hint = {});
  ~OutOfMemoryError() override;
};

// The accelerator runtime failed.
class DeviceError : public Error {
 public:
  explicit DeviceError(const std::string& message, std::string hint = {});
  ~DeviceError() override;
};

// Thrown by a node that noticed Emitter::cancelled() in the middle of long work.
class CancelledError : public Error {
 public:
  CancelledError();
  ~CancelledError() override;
};

}  // namespace reel
