// Test node types with fault injection. Every type takes the same fault parameters, so a test can
// make any node, in any position, fail in any phase with any kind of exception, and read back the
// lifecycle calls it received from a journal file.
#include <reel/reel.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <new>
#include <thread>

namespace {

// A plugin's exception whose what() breaks its contract.
struct NullWhat : std::exception {
  const char* what() const noexcept override { return nullptr; }
};

struct NotAStdException {
  int code = 42;
};

std::mutex journal_mutex;

class FaultyNode : public reel::Node {
 public:
  std::vector<reel::StreamDesc> configure(const reel::NodeConfig& config) override {
    id_ = std::string(config.node_id);
    const reel::Params& p = config.params;
    journal_path_ = p.string("journal");
    fail_phase_ = p.string("fail_phase");
    fail_frame_ = p.integer("fail_frame");
    fail_with_ = p.string("fail_with");
    fail_times_ = p.integer("fail_times");
    degradable_ = p.boolean("degradable");
    model_mib_ = p.integer("model_mib");
    delay_us_ = p.integer("delay_us");
    device_ = p.string("device");
    print_ = p.string("print");
    record("configure");
    maybe_fail("configure", -1);
    return configure_streams(config);
  }

  std::vector<reel::MemoryEstimate> estimate() const override {
    return {{device_, static_cast<std::uint64_t>(model_mib_) * 1024 * 1024, 0}};
  }

  void load() override {
    record("load");
    if (model_mib_ > 0) {
      // A real allocation, written so it is resident: what a model's weights do to RSS.
      model_ = at::full({model_mib_ * 1024 * 1024 / 4}, 1.0f, at::TensorOptions(at::kFloat).device(device_));
    }
    maybe_fail("load", -1);
  }

  void finish(reel::Emitter& out) override {
    record("finish");
    maybe_fail("finish", -1);
    finish_streams(out);
  }

  void unload() override {
    record("unload");
    model_ = at::Tensor();
    if (fail_phase_ == "unload") throw std::runtime_error("injected failure in unload");
  }

  bool degrade() override {
    record("degrade");
    return degradable_;
  }

  void discard_outputs() override {
    record("discard_outputs");
    discard_streams();
    if (fail_phase_ == "discard") throw std::runtime_error("injected failure in discard_outputs");
  }

 protected:
  virtual std::vector<reel::StreamDesc> configure_streams(const reel::NodeConfig& config) = 0;
  virtual void finish_streams(reel::Emitter&) {}
  virtual void discard_streams() {}

  void record(const std::string& event, std::int64_t frame = -1) {
    if (!print_.empty()) {
      // A plugin that talks on stdout, through both C and C++ streams.
      std::printf("%s %s\n", print_.c_str(), event.c_str());
      std::fflush(stdout);
      std::cout << print_ << std::endl;
    }
    if (journal_path_.empty()) return;
    std::lock_guard lock(journal_mutex);
    std::ofstream journal(journal_path_, std::ios::app);
    journal << id_ << ' ' << event;
    if (frame >= 0) journal << ' ' << frame;
    journal << '\n';
  }

  // Throws the configured exception when `phase` and `frame` match (fail_frame -1: any frame).
  void maybe_fail(const std::string& phase, std::int64_t frame) {
    if (phase != fail_phase_ || (fail_frame_ >= 0 && frame >= 0 && frame != fail_frame_)) return;
    if (fail_times_ >= 0 && fired_ >= fail_times_) return;
    ++fired_;
    record("throw " + fail_with_, frame);
    std::string where = "injected failure in " + phase;
    if (fail_with_ == "c10_oom")
      throw c10::OutOfMemoryError({__func__, __FILE__, __LINE__},
                                  "CUDA out of memory. Tried to allocate 2.00 GiB (" + where + ")");
    if (fail_with_ == "bad_alloc") throw std::bad_alloc();
    if (fail_with_ == "c10_error")
      throw c10::Error({__func__, __FILE__, __LINE__}, "Expected tensor of shape [3] (" + where + ")");
    if (fail_with_ == "runtime_error") throw std::runtime_error(where);
    if (fail_with_ == "non_std") throw NotAStdException{};
    if (fail_with_ == "script_oom")
      throw std::runtime_error(
          "The following operation failed in the TorchScript interpreter.\nRuntimeError: CUDA out of memory. Tried to "
          "allocate 20.00 MiB");
    if (fail_with_ == "cuda_error")
      throw c10::Error({__func__, __FILE__, __LINE__}, "CUDA error: an illegal memory access was encountered");
    if (fail_with_ == "bad_input") throw reel::BadInputError(where + ": the input is corrupt");
    if (fail_with_ == "io") throw reel::IoError("/nonexistent/out.bin", where + ": disk full");
    if (fail_with_ == "invalid_param") throw reel::InvalidParamError("fail_with", where + ": rejected by configure");
    if (fail_with_ == "long_message") throw std::runtime_error(where + ": " + std::string(1 << 20, 'x'));
    if (fail_with_ == "hostile_message")
      throw std::runtime_error(where + ": \x1b[2J\x1b[31mred\a and invalid UTF-8 \xff\xfe\xc3 here");
    if (fail_with_ == "null_what") throw NullWhat{};
    // Crashes: what no exception handler survives (reel run --isolate does).
    if (fail_with_ == "segfault") {
      volatile int* nowhere = nullptr;
      *nowhere = 1;
    }
    if (fail_with_ == "abort") std::abort();
    if (fail_with_ == "terminate_thread") std::thread([] { throw std::runtime_error("escaped a plugin's thread"); }).join();
    if (fail_with_ == "throwing_destructor") {
      struct Throws {
        ~Throws() noexcept(false) { throw std::runtime_error("thrown by a destructor during unwinding"); }
      };
      Throws guard;
      throw std::runtime_error("unwinding");
    }
    if (fail_with_ == "hang")  // never returns, and ignores cancellation
      for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    if (fail_with_ == "exit0") std::exit(0);
    if (fail_with_ == "exit3") std::exit(3);
    throw std::logic_error("unknown fail_with " + fail_with_);
  }

  void pause() const {
    if (delay_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us_));
  }

  std::string id_;
  std::int64_t fail_frame_ = -1;
  std::int64_t delay_us_ = 0;

 private:
  std::string journal_path_, fail_phase_, fail_with_, device_, print_;
  std::int64_t fail_times_ = -1, fired_ = 0, model_mib_ = 0;
  bool degradable_ = false;
  at::Tensor model_;

 public:
  void fail_in_stream(std::int64_t frame) { maybe_fail("process", frame); }
};

// Frame k is a uniform image of value k % 256, with its index in metadata.
class Source : public FaultyNode {
 public:
  std::vector<reel::StreamDesc> configure_streams(const reel::NodeConfig& config) override {
    frames_ = config.params.integer("frames");
    reel::StreamDesc s;
    s.width = static_cast<int>(config.params.integer("width"));
    s.height = static_cast<int>(config.params.integer("height"));
    s.fps = {24, 1};
    s.frame_count = frames_;
    s.audio.reset();  // new frames, like a generator's: the input's sound no longer fits
    width_ = s.width, height_ = s.height;
    return {s};
  }
  bool produce(reel::Emitter& out) override {
    if (next_ >= frames_) return false;
    record("produce", next_);
    fail_in_stream(next_);
    pause();
    reel::Frame frame;
    frame.image = at::full({3, height_, width_}, static_cast<std::uint8_t>(next_ % 256), at::kByte);
    frame.metadata["source_index"] = std::to_string(next_);
    out.emit(std::move(frame));
    return ++next_ < frames_;
  }

 private:
  std::int64_t frames_ = 0, next_ = 0;
  int width_ = 8, height_ = 8;
};

// Passes frames on unchanged; `copies` > 1 emits each frame that many times (like an interpolator).
class Map : public FaultyNode {
 public:
  std::vector<reel::StreamDesc> configure_streams(const reel::NodeConfig& config) override {
    copies_ = config.params.integer("copies");
    reel::StreamDesc s = config.inputs.at(0);
    // promise_offset: a node that promises a length it does not keep.
    if (s.frame_count) s.frame_count = *s.frame_count * copies_ + config.params.integer("promise_offset");
    emit_ = config.params.string("emit");
    const std::string describe = config.params.string("describe");
    if (describe == "zero_size") s.width = 0;
    if (describe == "zero_fps") s.fps = {0, 1};
    if (describe == "negative_count") s.frame_count = -2;
    return {s};
  }
  void process(const reel::Frame& frame, int, reel::Emitter& out) override {
    record("process", frame.index);
    fail_in_stream(frame.index);
    pause();
    // Uneven work per frame, so concurrent instances finish out of order.
    if (delay_us_ > 0 && frame.index % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us_ * 2));
    for (std::int64_t k = 0; k < copies_; ++k) out.emit(reel::Frame{misshapen(frame.image), 0, frame.metadata});
  }

 private:
  // `emit`: a node whose frames do not match the stream it declared.
  at::Tensor misshapen(const at::Tensor& image) const {
    if (emit_ == "float") return image.to(at::kFloat);
    if (emit_ == "one_channel") return image.narrow(0, 0, 1).contiguous();
    if (emit_ == "four_channels") return at::cat({image, image.narrow(0, 0, 1)}, 0);
    if (emit_ == "wrong_size") return image.narrow(1, 0, image.size(1) / 2).contiguous();
    if (emit_ == "undefined") return at::Tensor();
    return image;
  }

  std::int64_t copies_ = 1;
  std::string emit_;
};

// A generator with an optional input: unconnected, it is a source of `frames` counting frames;
// connected, it takes in its whole input first and then produces `frames` frames, one per
// produce() call, whose value is the number of input frames plus k.
class Conditioned : public FaultyNode {
 public:
  std::vector<reel::StreamDesc> configure_streams(const reel::NodeConfig& config) override {
    frames_ = config.params.integer("frames");
    reel::StreamDesc s = config.inputs.at(0);
    conditioned_ = s.width > 0;
    if (!conditioned_) s.width = s.height = 8;
    s.fps = {24, 1};
    s.frame_count = frames_;
    s.audio.reset();  // new frames, like a generator's: the input's sound no longer fits
    width_ = s.width, height_ = s.height;
    return {s};
  }
  void process(const reel::Frame& frame, int port, reel::Emitter&) override {
    if (port != 0) throw std::logic_error("a frame on port " + std::to_string(port));
    record("process", frame.index);
    fail_in_stream(frame.index);
    ++received_;
  }
  bool produce(reel::Emitter& out) override {
    if (next_ >= frames_) return false;
    record("produce", next_);
    fail_in_stream(next_);
    reel::Frame frame;
    frame.image = at::full({3, height_, width_}, static_cast<std::uint8_t>((received_ + next_) % 256), at::kByte);
    frame.metadata["source_index"] = std::to_string(received_ + next_);
    out.emit(std::move(frame));
    return ++next_ < frames_;
  }

 private:
  std::int64_t frames_ = 0, next_ = 0, received_ = 0;
  int width_ = 8, height_ = 8;
  bool conditioned_ = false;
};

// Writes "index source_index" per frame to `path` (temporary name, renamed at finish) and refuses
// frames that arrive out of order.
class Sink : public FaultyNode {
 public:
  std::vector<reel::StreamDesc> configure_streams(const reel::NodeConfig& config) override {
    if (!config.params.string("path").empty() && !config.dry_run) {
      output_ = std::make_unique<reel::OutputFile>(config.params.string("path"), config.overwrite_outputs);
    }
    return {};
  }
  void process(const reel::Frame& frame, int, reel::Emitter&) override {
    record("process", frame.index);
    fail_in_stream(frame.index);
    pause();
    if (frame.index != expected_)
      throw std::logic_error("frame " + std::to_string(frame.index) + " arrived, expected " +
                             std::to_string(expected_));
    ++expected_;
    if (output_) {
      if (!file_.is_open()) file_.open(output_->temporary());
      auto it = frame.metadata.find("source_index");
      file_ << frame.index << ' ' << (it == frame.metadata.end() ? "-" : it->second) << '\n';
    }
  }
  void finish_streams(reel::Emitter&) override {
    if (!output_) return;
    if (!file_.is_open()) file_.open(output_->temporary());
    file_.close();
    output_->commit();
    committed_ = true;
  }
  std::vector<std::string> written_files() const override {
    if (!committed_) return {};
    return {output_->target().string()};
  }
  void discard_streams() override {
    if (file_.is_open()) file_.close();
    if (output_) output_->discard();
  }

 private:
  std::unique_ptr<reel::OutputFile> output_;
  std::ofstream file_;
  std::int64_t expected_ = 0;
  bool committed_ = false;
};

std::vector<reel::ParamSpec> fault_params() {
  using reel::ParamSpec;
  return {
      ParamSpec::choice("fail_phase", "none", {"none", "configure", "load", "process", "finish", "unload", "discard"},
                        "Lifecycle call that throws ('process' means produce for a source)"),
      ParamSpec::integer("fail_frame", -1, "Frame at which process/produce throws; -1: the first")
          .range(-1, std::nullopt),
      ParamSpec::choice("fail_with", "runtime_error",
                        {"c10_oom", "bad_alloc", "c10_error", "runtime_error", "non_std", "script_oom", "cuda_error",
                         "bad_input", "io", "invalid_param", "long_message", "hostile_message", "null_what",
                         "segfault", "abort", "terminate_thread", "throwing_destructor", "exit0", "exit3", "hang"},
                        "What is thrown"),
      ParamSpec::integer("fail_times", -1, "How many times the fault fires; -1: every time").range(-1, std::nullopt),
      ParamSpec::boolean("degradable", false, "degrade() returns true (out-of-memory retries)"),
      ParamSpec::integer("model_mib", 0, "MiB held from load to unload, like model weights").range(0, 1 << 24),
      ParamSpec::integer("delay_us", 0, "Microseconds of work per frame").range(0, 10000000),
      ParamSpec::string("journal", "", "File that receives one line per lifecycle call"),
      ParamSpec::choice("device", "cpu", {"cpu", "cuda"}, "Where the model_mib allocation lives"),
      ParamSpec::string("print", "", "Printed to stdout at every lifecycle call, like a chatty plugin"),
  };
}

// test.map and test.parallel_map.
std::vector<reel::ParamSpec> map_params() {
  using reel::ParamSpec;
  return {ParamSpec::integer("copies", 1, "Copies emitted per input frame").range(0, 16),
          ParamSpec::integer("promise_offset", 0, "Added to the frame count promised at configure"),
          ParamSpec::choice("emit", "as_received",
                            {"as_received", "float", "one_channel", "four_channels", "wrong_size", "undefined"},
                            "Frames emitted: as received, or not matching the declared stream"),
          ParamSpec::choice("describe", "as_input", {"as_input", "zero_size", "zero_fps", "negative_count"},
                            "The output stream configure describes: the input's, or an impossible one")};
}

reel::NodeType with_fault_params(reel::NodeType type) {
  auto common = fault_params();
  type.params.insert(type.params.end(), common.begin(), common.end());
  return type;
}

void register_nodes(reel::Registry& registry) {
  using reel::ParamSpec;
  registry.add(with_fault_params({
      .name = "test.source",
      .description = "Counting frames (value k at frame k), with fault injection",
      .params = {ParamSpec::integer("frames", 0, "Frames to produce").range(0, std::nullopt).make_required(),
                 ParamSpec::integer("width", 8, "Width").range(1, 8192),
                 ParamSpec::integer("height", 8, "Height").range(1, 8192)},
      .outputs = {{"out", reel::PortKind::video, "Counting frames"}},
      .example_params = {{"frames", 3}},
      .create = [] { return std::make_unique<Source>(); },
  }));
  registry.add(with_fault_params({
      .name = "test.map",
      .description = "Passes frames on (copies times each), with fault injection",
      .params = map_params(),
      .inputs = {{"in", reel::PortKind::video, "Frames"}},
      .outputs = {{"out", reel::PortKind::video, "The same frames"}},
      .create = [] { return std::make_unique<Map>(); },
  }));
  registry.add(with_fault_params({
      .name = "test.parallel_map",
      .description = "test.map that processes up to 4 frames at once",
      .params = map_params(),
      .inputs = {{"in", reel::PortKind::video, "Frames"}},
      .outputs = {{"out", reel::PortKind::video, "The same frames, in order"}},
      .concurrency = 4,
      .create = [] { return std::make_unique<Map>(); },
  }));
  registry.add(with_fault_params({
      .name = "test.sink",
      .description = "Checks frame order and writes one line per frame to path",
      .params = {ParamSpec::string("path", "", "Output text file; empty: write nothing")},
      .inputs = {{"in", reel::PortKind::video, "Frames"}},
      .create = [] { return std::make_unique<Sink>(); },
  }));
  registry.add(with_fault_params({
      .name = "test.conditioned",
      .description = "A source, or with its optional input connected, frames made after that input ended",
      .params = {ParamSpec::integer("frames", 3, "Frames to produce").range(0, std::nullopt)},
      .inputs = {{"in", reel::PortKind::video, "Frames to take in first", true}},
      .outputs = {{"out", reel::PortKind::video, "Counting frames"}},
      .create = [] { return std::make_unique<Conditioned>(); },
  }));
  registry.add(with_fault_params({
      .name = "test.image_sink",
      .description = "test.sink with an image (one-frame) input",
      .params = {ParamSpec::string("path", "", "Output text file; empty: write nothing")},
      .inputs = {{"image", reel::PortKind::image, "One frame"}},
      .create = [] { return std::make_unique<Sink>(); },
  }));
}

}  // namespace

REEL_PLUGIN(register_nodes)
