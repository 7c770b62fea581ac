#pragma once
// Told of every temporary output file (OutputFile) as it is named, so that a supervising process
// can remove the ones a crashed run left behind (`reel run --isolate`). One journal per process,
// set before a run starts; it must not throw and should be quick.

namespace reel {

using OutputJournal = void (*)(const char* temporary_path) noexcept;
void set_output_journal(OutputJournal journal) noexcept;

}  // namespace reel
