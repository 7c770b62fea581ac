#include <reel/error.h>
#include <reel/node.h>
#include <reel/plugin.h>

namespace reel {

// Key functions: the vtables and type_info of the SDK interfaces live here, in libreel, once.
Node::~Node() = default;
Registry::~Registry() = default;

bool Node::produce(Emitter&) { return false; }

void Node::process(const Frame&, int, Emitter&) {
  throw Error(ErrorKind::internal, "this node type declares input ports but does not implement process()");
}

void Emitter::emit(at::Tensor image, int output_port) {
  Frame frame;
  frame.image = std::move(image);
  frames_.emplace_back(output_port, std::move(frame));
}

void Emitter::emit(Frame frame, int output_port) { frames_.emplace_back(output_port, std::move(frame)); }

const char* to_string(PortKind kind) noexcept { return kind == PortKind::image ? "image" : "video"; }

}  // namespace reel
