#pragma once
// The one way a sink writes a file: to a temporary name beside the target, renamed over it only
// when the whole output is complete. A failed or cancelled run leaves neither a partial target
// nor a temporary file behind.

#include <filesystem>
#include <string>

namespace reel {

class OutputFile {
 public:
  // Checks at once (configure time) that the target may be written: its folder exists and is
  // writable, and the target does not exist unless `overwrite`. Throws IoError naming the path.
  OutputFile(std::filesystem::path target, bool overwrite);
  ~OutputFile();  // discards an uncommitted temporary file
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  const std::filesystem::path& target() const noexcept { return target_; }
  // Where to write; keeps the target's extension so format guessing by name still works.
  const std::filesystem::path& temporary() const noexcept { return temporary_; }
  // Rename the temporary file onto the target. Throws IoError.
  void commit();
  // Remove the temporary file, if any. Never throws.
  void discard() noexcept;
  // Take back a committed output (remove the target): for sinks that write several files and
  // must not leave some of them when a later one fails. Never throws.
  void withdraw() noexcept;

 private:
  std::filesystem::path target_;
  std::filesystem::path temporary_;
  bool overwrite_;
  bool committed_ = false;
};

}  // namespace reel
