// classify_exception: type first, then text, for every kind of failure the taxonomy names.
#include <reel/runtime/failure.h>

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <new>
#include <system_error>

namespace reel {
namespace {

template <typename Throw>
Failure classify(Throw&& thrower) {
  try {
    thrower();
  } catch (...) {
    return classify_exception(std::current_exception());
  }
  ADD_FAILURE() << "nothing was thrown";
  return {};
}

c10::SourceLocation here() { return {"test", __FILE__, __LINE__}; }

TEST(Classify, C10OutOfMemoryByType) {
  Failure f = classify([] { throw c10::OutOfMemoryError(here(), "CUDA out of memory. Tried to allocate 2 GiB"); });
  EXPECT_EQ(f.kind, ErrorKind::out_of_memory);
  EXPECT_NE(f.reason.find("Tried to allocate"), std::string::npos);
  EXPECT_NE(f.detail.find("c10::OutOfMemoryError"), std::string::npos) << f.detail;
}

TEST(Classify, HostBadAlloc) {
  EXPECT_EQ(classify([] { throw std::bad_alloc(); }).kind, ErrorKind::out_of_memory);
}

TEST(Classify, TorchScriptOutOfMemoryByText) {
  Failure f = classify([] {
    throw std::runtime_error(
        "The following operation failed in the TorchScript interpreter.\nRuntimeError: CUDA out of memory.");
  });
  EXPECT_EQ(f.kind, ErrorKind::out_of_memory);
}

TEST(Classify, CpuAllocatorFailureByText) {
  Failure f = classify(
      [] { throw c10::Error(here(), "DefaultCPUAllocator: can't allocate memory: you tried to allocate 10 GB"); });
  EXPECT_EQ(f.kind, ErrorKind::out_of_memory);
}

TEST(Classify, CudaRuntimeErrorIsADeviceError) {
  EXPECT_EQ(classify([] { throw c10::Error(here(), "CUDA error: an illegal memory access was encountered"); }).kind,
            ErrorKind::device);
  EXPECT_EQ(classify([] { throw std::runtime_error("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"); }).kind,
            ErrorKind::device);
}

TEST(Classify, OtherC10ErrorIsInternal) {
  Failure f = classify([] { throw c10::Error(here(), "Expected tensor of shape [3]"); });
  EXPECT_EQ(f.kind, ErrorKind::internal);
  EXPECT_EQ(f.reason, "Expected tensor of shape [3]");
}

TEST(Classify, ReelErrorsKeepTheirKindAndHint) {
  Failure f = classify([] { throw BadInputError("the file is truncated", "Re-encode it."); });
  EXPECT_EQ(f.kind, ErrorKind::bad_input);
  EXPECT_EQ(f.hint, "Re-encode it.");
  EXPECT_EQ(classify([] { throw IoError("/x", "disk full"); }).kind, ErrorKind::io);
  EXPECT_EQ(classify([] { throw DeviceError("lost"); }).kind, ErrorKind::device);
  EXPECT_EQ(classify([] { throw CancelledError(); }).kind, ErrorKind::cancelled);
  EXPECT_EQ(classify([] { throw InvalidParamError("tile", "too big"); }).kind, ErrorKind::invalid_graph);
}

TEST(Classify, FilesystemErrorsAreIoErrors) {
  Failure f = classify([] {
    throw std::filesystem::filesystem_error("write", "/full/disk", std::make_error_code(std::errc::no_space_on_device));
  });
  EXPECT_EQ(f.kind, ErrorKind::io);
}

TEST(Classify, PlainRuntimeErrorIsInternal) {
  EXPECT_EQ(classify([] { throw std::runtime_error("index out of range"); }).kind, ErrorKind::internal);
}

TEST(Classify, NonStdExceptionIsInternalWithItsTypeInTheDetail) {
  struct Weird {};
  Failure f = classify([] { throw Weird{}; });
  EXPECT_EQ(f.kind, ErrorKind::internal);
  EXPECT_NE(f.detail.find("Weird"), std::string::npos) << f.detail;
}

TEST(Classify, ExitCodesAreDistinct) {
  std::set<int> codes;
  for (ErrorKind k : {ErrorKind::invalid_graph, ErrorKind::bad_input, ErrorKind::plugin, ErrorKind::io,
                      ErrorKind::out_of_memory, ErrorKind::device, ErrorKind::cancelled, ErrorKind::internal})
    codes.insert(exit_code(k));
  EXPECT_EQ(codes.size(), 8u);
  EXPECT_EQ(exit_code(ErrorKind::cancelled), 130);
}

TEST(Classify, UserMessageSaysWhatWhereAndWhatToTry) {
  Failure f;
  f.kind = ErrorKind::out_of_memory;
  f.node_id = "up";
  f.node_type = "upscaler.esrgan";
  f.plugin = "libreel_upscaler.so";
  f.phase = Phase::process;
  f.frame = 12;
  f.reason = "CUDA out of memory";
  std::string m = f.user_message();
  EXPECT_NE(m.find("out of memory in node \"up\" (upscaler.esrgan, libreel_upscaler.so) at frame 12"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("All models were unloaded"), std::string::npos);
  EXPECT_NE(m.find("smaller tile"), std::string::npos);
}

}  // namespace
}  // namespace reel
