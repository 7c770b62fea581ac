#include <reel/error.h>
#include <reel/params.h>

#include <cmath>

namespace reel {

const char* to_string(ParamType type) noexcept {
  switch (type) {
    case ParamType::integer:
      return "integer";
    case ParamType::number:
      return "number";
    case ParamType::boolean:
      return "boolean";
    case ParamType::string:
      return "string";
    case ParamType::choice:
      return "choice";
  }
  return "string";
}

namespace {
ParamSpec make(std::string name, ParamType type, nlohmann::json fallback, std::string description) {
  ParamSpec spec;
  spec.name = std::move(name);
  spec.type = type;
  spec.default_value = std::move(fallback);
  spec.description = std::move(description);
  return spec;
}
}  // namespace

ParamSpec ParamSpec::integer(std::string name, std::int64_t fallback, std::string description) {
  return make(std::move(name), ParamType::integer, fallback, std::move(description));
}
ParamSpec ParamSpec::number(std::string name, double fallback, std::string description) {
  return make(std::move(name), ParamType::number, fallback, std::move(description));
}
ParamSpec ParamSpec::boolean(std::string name, bool fallback, std::string description) {
  return make(std::move(name), ParamType::boolean, fallback, std::move(description));
}
ParamSpec ParamSpec::string(std::string name, std::string fallback, std::string description) {
  return make(std::move(name), ParamType::string, std::move(fallback), std::move(description));
}
ParamSpec ParamSpec::choice(std::string name, std::string fallback, std::vector<std::string> choices,
                            std::string description) {
  ParamSpec spec = make(std::move(name), ParamType::choice, std::move(fallback), std::move(description));
  spec.choices = std::move(choices);
  return spec;
}
ParamSpec& ParamSpec::make_required() {
  required = true;
  default_value = nullptr;
  return *this;
}
ParamSpec& ParamSpec::range(std::optional<double> lo, std::optional<double> hi) {
  min = lo;
  max = hi;
  return *this;
}

ParamSpec& ParamSpec::or_words(std::vector<std::string> words) {
  choices = std::move(words);
  return *this;
}

std::string ParamSpec::range_text() const {
  auto text = [](double v) {
    return v == std::floor(v) && std::abs(v) < 1e15 ? std::to_string(static_cast<long long>(v))
                                                    : nlohmann::json(v).dump();
  };
  if (min && max) return "from " + text(*min) + " to " + text(*max);
  if (min) return "at least " + text(*min);
  if (max) return "at most " + text(*max);
  return {};
}

const nlohmann::json& Params::at(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->is_null())
    throw Error(ErrorKind::internal, "node read parameter '" + name + "', which its type does not declare");
  return *it;
}

std::int64_t Params::integer(const std::string& name) const { return at(name).get<std::int64_t>(); }
double Params::number(const std::string& name) const { return at(name).get<double>(); }
bool Params::boolean(const std::string& name) const { return at(name).get<bool>(); }
const std::string& Params::string(const std::string& name) const { return at(name).get_ref<const std::string&>(); }

}  // namespace reel
