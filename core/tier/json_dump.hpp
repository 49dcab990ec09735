#pragma once
// JSON text of a DOM, byte for byte what nlohmann's compact dump() writes, without its
// per-byte string escaping: runs of plain bytes are copied at once after one UTF-8 check.
// A cache SET of a JSON value spent more time in nlohmann's string escaping than in
// everything else the library does for it.

#include <string>

#include <nlohmann/json.hpp>

namespace tier::json {

/// Appends the compact JSON text of `value` to `out`. Throws what nlohmann's dump() throws
/// (type_error 316 for a string that is not UTF-8), having appended nothing then.
void dump(const nlohmann::json& value, std::string& out);

/// The compact JSON text of `value` (same exceptions).
std::string dump(const nlohmann::json& value);

}  // namespace tier::json
