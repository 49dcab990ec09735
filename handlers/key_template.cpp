#include "handlers/key_template.hpp"

#include <string_view>

#include "config/error.hpp"

namespace tierd {

std::vector<KeyPiece> parse_key_template(const std::string& t, const std::string& path, int line) {
  std::vector<KeyPiece> out;
  std::size_t i = 0;
  while (i < t.size()) {
    const auto open = t.find('{', i);
    const auto stray = t.find('}', i);
    if (stray < open) {
      throw ConfigError(path, line, "unbalanced '}' in key template '" + t + "'");
    }
    if (open == std::string::npos) {
      out.push_back({false, t.substr(i)});
      break;
    }
    if (open > i) {
      out.push_back({false, t.substr(i, open - i)});
    }
    const auto close = t.find('}', open);
    if (close == std::string::npos) {
      throw ConfigError(path, line, "unclosed '{' in key template '" + t + "'");
    }
    const std::string name = t.substr(open + 1, close - open - 1);
    if (name.empty() ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789_") != std::string::npos) {
      throw ConfigError(
          path, line, "placeholder {" + name + "} must name a message field (letters, digits, _)");
    }
    out.push_back({true, name});
    i = close + 1;
  }
  const auto glob = [](std::string_view s) {
    return s.find_first_of("*?[]\\") != std::string_view::npos;
  };
  if (out.empty() || out.front().field || glob(out.front().text.substr(0, 1))) {
    throw ConfigError(path, line,
                      "key template '" + t +
                          "' must start with a literal key prefix (e.g. "
                          "'project:{project_id}:...')");
  }
  return out;
}

}  // namespace tierd
