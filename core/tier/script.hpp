#pragma once
// Lua scripts from core/lua/*.lua, embedded at build time. Transports run them with
// EVALSHA and fall back to EVAL on NOSCRIPT.

#include <string>
#include <string_view>
#include <vector>

namespace tier {

struct Script {
  std::string name;    ///< file name without .lua
  std::string source;  ///< the script text, byte for byte as in core/lua
  std::string sha1;    ///< lowercase hex SHA-1 of source, as Redis computes it
};

/// The embedded script with this name; throws std::out_of_range for an unknown name.
const Script& script(std::string_view name);
/// All embedded scripts (for SCRIPT LOAD at start-up and for tests).
const std::vector<Script>& all_scripts();

}  // namespace tier
