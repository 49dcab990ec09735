#pragma once
// Typed reads from a YAML tree that refuse anything unexpected and name the YAML path and
// line in every error. Shared by the config reader and the handler factories.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "config/error.hpp"

namespace tierd::yaml {

/// 1-based line of a node, 0 when unknown.
int line_of(const YAML::Node& node);

/// Throws ConfigError at `node`.
[[noreturn]] void fail(const YAML::Node& node, const std::string& path, const std::string& what);

/// A mapping node whose keys must all be in `allowed`; checks both on construction.
class Map {
 public:
  Map(const YAML::Node& node, std::string path, std::initializer_list<const char*> allowed);
  Map(const YAML::Node& node, std::string path, const std::vector<std::string>& allowed);

  const std::string& path() const { return path_; }
  const YAML::Node& node() const { return node_; }
  std::string path_of(const std::string& key) const;
  bool has(const std::string& key) const;
  YAML::Node get(const std::string& key) const { return node_[key]; }

  std::string string(const std::string& key, const std::string& fallback) const;
  std::optional<std::string> optional_string(const std::string& key) const;
  std::string required_string(const std::string& key) const;
  /// Integer in [min, max].
  std::int64_t integer(const std::string& key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max) const;
  /// A finite number in [min, max] (integers are numbers too).
  double number(const std::string& key, double fallback, double min, double max) const;
  bool boolean(const std::string& key, bool fallback) const;
  /// A sequence of strings (a single string is refused: lists stay lists).
  std::vector<std::string> strings(const std::string& key,
                                   const std::vector<std::string>& fallback) const;

 private:
  void check(const std::vector<std::string>& allowed) const;

  YAML::Node node_;
  std::string path_;
};

/// A scalar that must be a string (not a number, bool, list or map).
std::string as_string(const YAML::Node& node, const std::string& path);

}  // namespace tierd::yaml
