#include <reel/compute.h>
#include <reel/error.h>
#include <reel/runtime/failure.h>

#include <c10/util/Exception.h>
#include <torch/cuda.h>

namespace reel {

namespace {

// libtorch's exceptions for the classifier in libreel-base, which does not link libtorch: the
// message without the C++ backtrace what() appends, and the out-of-memory type.
bool translate_torch_exception(const std::exception& error, TranslatedException& out) noexcept {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&error);
  if (torch_error == nullptr) return false;
  try {
    out.text = torch_error->what_without_backtrace();
  } catch (...) {
    return false;
  }
  out.out_of_memory = dynamic_cast<const c10::OutOfMemoryError*>(&error) != nullptr;
  return true;
}

[[maybe_unused]] const bool torch_exceptions_registered = (add_exception_translator(&translate_torch_exception), true);

}  // namespace

std::string resolve_device(const std::string& wanted) {
  const bool cuda = torch::cuda::is_available();
  if (wanted == "cpu" || (wanted == "auto" && !cuda)) return "cpu";
  if (wanted == "auto") return "cuda:0";
  if (wanted == "cuda" || wanted.rfind("cuda:", 0) == 0) {
    if (!cuda)
      throw InvalidParamError("device", "device '" + wanted + "' was asked for, but no CUDA device is usable here",
                              "this reel's libtorch has no CUDA support or no GPU is visible; use device cpu or auto");
    if (wanted == "cuda") return "cuda:0";
    std::size_t used = 0;
    int index = -1;
    try {
      index = std::stoi(wanted.substr(5), &used);
    } catch (const std::exception&) {
    }
    if (index < 0 || used != wanted.size() - 5 || index >= static_cast<int>(torch::cuda::device_count()))
      throw InvalidParamError("device", "device '" + wanted + "' does not exist: there are " +
                                            std::to_string(torch::cuda::device_count()) + " CUDA devices");
    return wanted;
  }
  throw InvalidParamError("device", "device '" + wanted + "' is not cpu, cuda, cuda:N or auto");
}

c10::ScalarType resolve_precision(const std::string& precision, const std::string& device) {
  if (precision == "fp16") {
    if (device == "cpu")
      throw InvalidParamError("precision", "precision fp16 needs a CUDA device; libtorch has no fp16 convolution on the CPU",
                              "use fp32 (or bf16) on the CPU");
    return c10::kHalf;
  }
  if (precision == "bf16") return c10::kBFloat16;
  if (precision == "fp32") return c10::kFloat;
  throw InvalidParamError("precision", "precision '" + precision + "' is not fp32, fp16 or bf16");
}

}  // namespace reel
