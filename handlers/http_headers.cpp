#include "handlers/http_headers.hpp"

#include <yaml-cpp/yaml.h>

#include "config/yaml.hpp"
#include "tier/keys.hpp"

namespace tierd {

namespace {

bool header_name_ok(const std::string& n) {
  if (n.empty() || n.size() > 128) {
    return false;
  }
  for (char c : n) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

/// Replaces each ${NAME} with the environment variable's value.
std::string expand(const std::string& value, const YAML::Node& node, const std::string& path,
                   const EnvLookup& env) {
  std::string out;
  std::size_t i = 0;
  while (i < value.size()) {
    const std::size_t open = value.find("${", i);
    if (open == std::string::npos) {
      out.append(value, i);
      break;
    }
    out.append(value, i, open - i);
    const std::size_t close = value.find('}', open);
    if (close == std::string::npos) {
      yaml::fail(node, path, "unterminated ${ in a header value");
    }
    const std::string name = value.substr(open + 2, close - open - 2);
    const std::optional<std::string> v = name.empty() || !env ? std::nullopt : env(name.c_str());
    if (!v) {
      yaml::fail(node, path, "environment variable '" + tier::excerpt(name, 64) + "' is not set");
    }
    out += *v;
    i = close + 1;
  }
  if (out.find_first_of("\r\n") != std::string::npos || out.find('\0') != std::string::npos) {
    yaml::fail(node, path, "a header value must not contain CR, LF or NUL");
  }
  return out;
}

}  // namespace

std::vector<std::string> http_headers(const YAML::Node& headers, const std::string& path,
                                      const EnvLookup& env) {
  std::vector<std::string> out;
  if (!headers) {
    return out;
  }
  if (!headers.IsMap()) {
    yaml::fail(headers, path, "expected a mapping of header names to values");
  }
  for (const auto& h : headers) {
    const std::string name = h.first.Scalar();
    const std::string hp = path + "." + name;
    if (!header_name_ok(name)) {
      yaml::fail(h.first, hp, "not a valid header name");
    }
    const std::string value = yaml::as_string(h.second, hp);
    out.push_back(name + ": " + expand(value, h.second, hp, env));
  }
  return out;
}

}  // namespace tierd
