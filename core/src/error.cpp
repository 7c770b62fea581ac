#include <reel/error.h>

namespace reel {

const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::invalid_graph:
      return "invalid graph";
    case ErrorKind::bad_input:
      return "bad input";
    case ErrorKind::plugin:
      return "plugin error";
    case ErrorKind::io:
      return "I/O error";
    case ErrorKind::out_of_memory:
      return "out of memory";
    case ErrorKind::device:
      return "device error";
    case ErrorKind::cancelled:
      return "cancelled";
    case ErrorKind::internal:
      return "internal error";
    case ErrorKind::usage:
      return "usage error";
    case ErrorKind::timeout:
      return "timed out";
  }
  return "internal error";
}

Error::Error(ErrorKind kind, const std::string& message, std::string hint)
    : std::runtime_error(message), kind_(kind), hint_(std::move(hint)) {}
Error::~Error() = default;

InvalidParamError::InvalidParamError(std::string param, const std::string& message, std::string hint)
    : Error(ErrorKind::invalid_graph, message, std::move(hint)), param_(std::move(param)) {}
InvalidParamError::~InvalidParamError() = default;

BadInputError::BadInputError(const std::string& message, std::string hint)
    : Error(ErrorKind::bad_input, message, std::move(hint)) {}
BadInputError::~BadInputError() = default;

IoError::IoError(std::string path, const std::string& message, std::string hint)
    : Error(ErrorKind::io, message, std::move(hint)), path_(std::move(path)) {}
IoError::~IoError() = default;

OutOfMemoryError::OutOfMemoryError(const std::string& message, std::string hint)
    : Error(ErrorKind::out_of_memory, message, std::move(hint)) {}
OutOfMemoryError::~OutOfMemoryError() = default;

DeviceError::DeviceError(const std::string& message, std::string hint)
    : Error(ErrorKind::device, message, std::move(hint)) {}
DeviceError::~DeviceError() = default;

CancelledError::CancelledError() : Error(ErrorKind::cancelled, "the run was cancelled") {}
CancelledError::~CancelledError() = default;

}  // namespace reel
