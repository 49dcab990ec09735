#include "config/yaml.hpp"

#include "tier/numbers.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <limits>

namespace tierd::yaml {

namespace {

const char* kind_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// A key that looks like a credential gets a pointed message instead of "unknown key":
// secrets never come from YAML (DESIGN §6).
bool looks_secret(const std::string& key) {
  std::string k = key;
  std::transform(k.begin(), k.end(), k.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return k.find("password") != std::string::npos || k.find("secret") != std::string::npos ||
         k.find("token") != std::string::npos || k == "pass" || k == "auth";
}

}  // namespace

int line_of(const YAML::Node& node) {
  if (!node.IsDefined()) {
    return 0;
  }
  const YAML::Mark m = node.Mark();
  return m.line < 0 ? 0 : m.line + 1;
}

void fail(const YAML::Node& node, const std::string& path, const std::string& what) {
  throw ConfigError(path, line_of(node), what);
}

std::string as_string(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) {
    fail(node, path, std::string("expected a string, got ") + kind_name(node));
  }
  // yaml-cpp keeps every scalar as text; refuse the ones YAML means as other types only
  // when they were unquoted, so `"5"` is a string but 5 and true are not.
  if (node.Tag() != "!") {
    const std::string& s = node.Scalar();
    static const char* const kNonStrings[] = {"true", "false", "yes",   "no",   "null",
                                              "~",    "True",  "False", "TRUE", "FALSE"};
    for (const char* t : kNonStrings) {
      if (s == t) {
        fail(node, path, "expected a string, got " + s + " (quote it if it is meant as text)");
      }
    }
  }
  return node.Scalar();
}

Map::Map(const YAML::Node& node, std::string path, std::initializer_list<const char*> allowed)
    : node_(node), path_(std::move(path)) {
  std::vector<std::string> keys;
  for (const char* k : allowed) {
    keys.emplace_back(k);
  }
  check(keys);
}

Map::Map(const YAML::Node& node, std::string path, const std::vector<std::string>& allowed)
    : node_(node), path_(std::move(path)) {
  check(allowed);
}

void Map::check(const std::vector<std::string>& allowed) const {
  if (!node_.IsMap()) {
    fail(node_, path_.empty() ? "config" : path_,
         std::string("expected a mapping, got ") + kind_name(node_));
  }
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (!it->first.IsScalar()) {
      fail(it->first, path_, "keys must be strings");
    }
    const std::string key = it->first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) {
      continue;
    }
    if (looks_secret(key)) {
      fail(it->first, path_of(key),
           "secrets are not read from the config file; set TIERD_REDIS_PASSWORD (Redis) or "
           "PGPASSWORD / ~/.pgpass (PostgreSQL) in the environment instead");
    }
    std::string list;
    for (const auto& a : allowed) {
      list += (list.empty() ? "" : ", ") + a;
    }
    fail(it->first, path_of(key), "unknown key (allowed here: " + list + ")");
  }
}

std::string Map::path_of(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

bool Map::has(const std::string& key) const {
  const YAML::Node& n = node_;
  return static_cast<bool>(n[key]);
}

std::string Map::string(const std::string& key, const std::string& fallback) const {
  auto v = optional_string(key);
  return v ? *v : fallback;
}

std::optional<std::string> Map::optional_string(const std::string& key) const {
  const YAML::Node& n = node_;
  YAML::Node v = n[key];
  if (!v || v.IsNull()) {
    return std::nullopt;
  }
  return as_string(v, path_of(key));
}

std::string Map::required_string(const std::string& key) const {
  auto v = optional_string(key);
  if (!v) {
    fail(node_, path_of(key), "required key is missing");
  }
  return *v;
}

std::int64_t Map::integer(const std::string& key, std::int64_t fallback, std::int64_t min,
                          std::int64_t max) const {
  const YAML::Node& n = node_;
  YAML::Node v = n[key];
  if (!v || v.IsNull()) {
    return fallback;
  }
  const std::string p = path_of(key);
  if (!v.IsScalar() || v.Tag() == "!") {
    fail(v, p,
         std::string("expected an integer, got ") + (v.IsScalar() ? "a string" : kind_name(v)));
  }
  const std::string& s = v.Scalar();
  const auto parsed = tier::parse_integer<long long>(s);
  if (!parsed) {
    fail(v, p, "expected an integer, got '" + s + "'");
  }
  const long long out = *parsed;
  if (out < min || out > max) {
    fail(v, p,
         "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + s);
  }
  return out;
}

double Map::number(const std::string& key, double fallback, double min, double max) const {
  YAML::Node v = node_[key];
  if (!v || v.IsNull()) {
    return fallback;
  }
  const std::string p = path_of(key);
  if (!v.IsScalar() || v.Tag() == "!") {
    fail(v, p, std::string("expected a number, got ") + (v.IsScalar() ? "a string" : kind_name(v)));
  }
  const std::string& s = v.Scalar();
  const auto parsed = tier::parse_double(s);
  if (!parsed) {
    fail(v, p, "expected a number, got '" + s + "'");
  }
  if (*parsed < min || *parsed > max) {
    auto text = [](double d) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", d);
      return std::string(buf);
    };
    fail(v, p, "must be between " + text(min) + " and " + text(max) + ", got " + s);
  }
  return *parsed;
}

bool Map::boolean(const std::string& key, bool fallback) const {
  const YAML::Node& n = node_;
  YAML::Node v = n[key];
  if (!v || v.IsNull()) {
    return fallback;
  }
  if (v.IsScalar() && v.Tag() != "!") {
    const std::string& s = v.Scalar();
    if (s == "true") {
      return true;
    }
    if (s == "false") {
      return false;
    }
  }
  fail(v, path_of(key), "expected true or false");
}

std::vector<std::string> Map::strings(const std::string& key,
                                      const std::vector<std::string>& fallback) const {
  const YAML::Node& n = node_;
  YAML::Node v = n[key];
  if (!v || v.IsNull()) {
    return fallback;
  }
  const std::string p = path_of(key);
  if (!v.IsSequence()) {
    fail(v, p, std::string("expected a list of strings, got ") + kind_name(v));
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    out.push_back(as_string(v[i], p + "[" + std::to_string(i) + "]"));
  }
  return out;
}

}  // namespace tierd::yaml
