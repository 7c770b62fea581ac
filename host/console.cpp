#include "console.h"

#include <reel/error.h>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>
#include <vector>

namespace reel::host {

namespace {

// One JSON object per line, for log collectors.
class JsonLineSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JsonLineSink(std::FILE* out) : out_(out) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    auto seconds = std::chrono::duration<double>(msg.time.time_since_epoch()).count();
    nlohmann::json line = {{"time", seconds},
                           {"level", spdlog::level::to_string_view(msg.level).data()},
                           {"message", std::string(msg.payload.data(), msg.payload.size())}};
    // A message may carry invalid UTF-8 (a plugin's text, a file name): replaced, never a throw.
    std::fprintf(out_, "%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  void flush_() override { std::fflush(out_); }

 private:
  std::FILE* out_;
};

std::atomic<bool> g_cancel{false};

extern "C" void on_signal(int) {
  if (g_cancel.exchange(true)) ::_exit(130);  // second signal: stop now
}

}  // namespace

void setup_logging(const LogOptions& options) {
  spdlog::sink_ptr sink;
  if (!options.file.empty()) {
    if (options.format == "json") {
      std::FILE* f = std::fopen(options.file.c_str(), "a");
      if (!f) throw Error(ErrorKind::io, "cannot open the log file " + options.file);
      sink = std::make_shared<JsonLineSink>(f);
    } else {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file);
    }
  } else if (options.format == "json") {
    sink = std::make_shared<JsonLineSink>(stderr);
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  if (options.format != "json") sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  auto logger = std::make_shared<spdlog::logger>("reel", sink);
  logger->set_level(spdlog::level::from_str(options.level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  // A reader that goes away (`reel run ... 2>&1 | head`) must not kill a run half-way, leaving
  // temporary outputs behind: writes to it fail instead, and the run finishes and cleans up.
  std::signal(SIGPIPE, SIG_IGN);
}

const std::atomic<bool>& cancel_flag() { return g_cancel; }

}  // namespace reel::host
