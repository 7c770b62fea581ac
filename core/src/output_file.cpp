#include <reel/error.h>
#include <reel/output_file.h>
#include <reel/runtime/output_journal.h>

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <atomic>
#include <system_error>

namespace fs = std::filesystem;

namespace reel {

namespace {
std::atomic<OutputJournal> g_journal{nullptr};

std::string temporary_suffix() {
  static std::atomic<unsigned> counter{0};
  return ".reel-partial-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}
}  // namespace

void set_output_journal(OutputJournal journal) noexcept { g_journal = journal; }

OutputFile::OutputFile(fs::path target, bool overwrite) : target_(std::move(target)), overwrite_(overwrite) {
  if (target_.empty()) throw IoError("", "no output path was given", "Set the node's path parameter.");
  fs::path folder = target_.has_parent_path() ? target_.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw IoError(target_.string(), "the output folder " + folder.string() + " does not exist",
                  "Create the folder or choose another path.");
  if (::access(folder.c_str(), W_OK) != 0)
    throw IoError(target_.string(), "the output folder " + folder.string() + " is not writable",
                  "Check its permissions or choose another path.");
  if (fs::is_directory(target_, ec))
    throw IoError(target_.string(), "the output " + target_.string() + " is a folder",
                  "Give a file name inside it, such as " + (target_ / "out.mp4").string() + ".");
  if (fs::exists(target_, ec) && !overwrite_)
    throw IoError(target_.string(), "the output " + target_.string() + " already exists",
                  "Pass --overwrite to replace it, or choose another path.");
  // "name.reel-partial-PID-N.ext": the extension stays last so writers that pick a format by
  // extension behave the same as for the final name.
  temporary_ = folder / (target_.stem().string() + temporary_suffix() + target_.extension().string());
  if (OutputJournal journal = g_journal.load()) journal(fs::absolute(temporary_, ec).c_str());
}

OutputFile::~OutputFile() { discard(); }

void OutputFile::commit() {
  // RENAME_NOREPLACE: a file that appeared at the target meanwhile is never replaced silently.
  if (::renameat2(AT_FDCWD, temporary_.c_str(), AT_FDCWD, target_.c_str(), overwrite_ ? 0 : RENAME_NOREPLACE) != 0) {
    int error = errno;
    if (error == EEXIST)
      throw IoError(target_.string(), "the output " + target_.string() + " appeared while the run was writing it",
                    "Pass --overwrite to replace it, or choose another path.");
    throw IoError(target_.string(),
                  "could not move the finished output into place: " + std::string(std::strerror(error)));
  }
  committed_ = true;
}

void OutputFile::withdraw() noexcept {
  if (!committed_) return discard();
  std::error_code ec;
  fs::remove(target_, ec);
  committed_ = false;
}

void OutputFile::discard() noexcept {
  if (committed_ || temporary_.empty()) return;
  std::error_code ec;
  fs::remove(temporary_, ec);
}

}  // namespace reel
