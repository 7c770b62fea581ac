#include <reel/error.h>
#include <reel/node.h>

#include <c10/core/ScalarType.h>

namespace reel {

// Key functions: the vtables and type_info of the SDK interfaces live here, in libreel, once.
Node::~Node() = default;

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

namespace {
const char* dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kByte: return "uint8";
    case at::kChar: return "int8";
    case at::kShort: return "int16";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kBool: return "bool";
    default: return c10::toString(type);
  }
}
}  // namespace

std::string frame_mismatch(const at::Tensor& image, const StreamDesc& stream) {
  if (!image.defined()) return "an undefined tensor (no image)";
  // The common case first, with no text built: this runs for every frame of every node.
  const bool readable = (image.device().is_cpu() || image.device().is_cuda()) && image.has_storage();
  if (readable && image.scalar_type() == at::kByte && image.dim() == 3 && image.size(0) == stream.channels &&
      image.size(1) == stream.height && image.size(2) == stream.width)
    return {};
  const std::string expected = "a uint8 tensor of shape [" + std::to_string(stream.channels) + ", " +
                               std::to_string(stream.height) + ", " + std::to_string(stream.width) + "]";
  std::string shape;
  for (auto size : image.sizes()) shape += (shape.empty() ? "" : ", ") + std::to_string(size);
  const std::string got = std::string("a ") + dtype_name(image.scalar_type()) + " tensor of shape [" + shape +
                          "] on " + image.device().str();
  if (!image.device().is_cpu() && !image.device().is_cuda()) return got + ", not in CPU or CUDA memory";
  if (!image.has_storage()) return got + " without storage";
  return got + " where the stream (" + stream.str() + ") needs " + expected;
}

}  // namespace reel
