#pragma once
// Key templates of handler configs ("project:{project_id}:baseline_metrics"): literal text
// and {field} placeholders filled from a message or a row. Shared by invalidate and warm.

#include <string>
#include <vector>

namespace tierd {

/// One piece of a key template: literal text, or a {field} placeholder.
struct KeyPiece {
  bool field = false;
  std::string text;
};

/// Parses `t`; it must start with a literal key prefix. Throws ConfigError naming `path`.
std::vector<KeyPiece> parse_key_template(const std::string& t, const std::string& path, int line);

}  // namespace tierd
