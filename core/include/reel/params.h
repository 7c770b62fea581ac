#pragma once
// Typed node parameters: a schema each node type declares, and the validated values a node gets.
// The executor checks types, ranges, choices, unknown and missing names against the schema before
// anything is configured, so a node reads its parameters without re-checking them.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace reel {

enum class ParamType { integer, number, boolean, string, choice };
const char* to_string(ParamType type) noexcept;

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::string;
  std::string description;
  nlohmann::json default_value;  // null when required
  bool required = false;
  std::optional<double> min;  // integer and number only, inclusive
  std::optional<double> max;
  // choice: the allowed values. integer: words accepted in place of a number (e.g. "auto"); the
  // node then finds the word, a JSON string, in Params::json().
  std::vector<std::string> choices;

  // Builders, so a node type's schema reads as one expression per parameter.
  static ParamSpec integer(std::string name, std::int64_t fallback, std::string description);
  static ParamSpec number(std::string name, double fallback, std::string description);
  static ParamSpec boolean(std::string name, bool fallback, std::string description);
  static ParamSpec string(std::string name, std::string fallback, std::string description);
  static ParamSpec choice(std::string name, std::string fallback, std::vector<std::string> choices,
                          std::string description);
  // No default: the graph must set it.
  ParamSpec& make_required();
  ParamSpec& range(std::optional<double> lo, std::optional<double> hi);
  ParamSpec& or_words(std::vector<std::string> words);

  // "from 1 to 8192", "at least 0", "at most 10"; empty without a range.
  std::string range_text() const;
};

// Validated values with every default filled in.
class Params {
 public:
  Params() = default;
  explicit Params(nlohmann::json values) : values_(std::move(values)) {}

  std::int64_t integer(const std::string& name) const;
  double number(const std::string& name) const;
  bool boolean(const std::string& name) const;
  const std::string& string(const std::string& name) const;
  const nlohmann::json& json() const noexcept { return values_; }

 private:
  const nlohmann::json& at(const std::string& name) const;
  nlohmann::json values_ = nlohmann::json::object();
};

}  // namespace reel
