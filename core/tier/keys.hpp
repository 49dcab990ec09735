#pragma once
// The key contract (DESIGN §4) and the checks on ids that come from users.

#include <optional>
#include <string>
#include <string_view>

#include "tier/result.hpp"

namespace tier {

/// Longest id or key part accepted from a user, in bytes.
inline constexpr std::size_t kMaxIdBytes = 512;

/// nullopt when `id` is acceptable as a key part: non-empty, at most kMaxIdBytes, valid
/// UTF-8, no control characters. Otherwise an `invalid` error naming `what`.
std::optional<Error> check_id(std::string_view id, std::string_view what);
/// check_id, and no '{' or '}': the id goes between a key's literal braces (its hash tag).
std::optional<Error> check_tagged_id(std::string_view id, std::string_view what);

/// Escapes the glob characters * ? [ ] \ so that `s` matches only itself in a SCAN MATCH.
std::string glob_escape(std::string_view s);

/// True when `s` is valid UTF-8 (strictly: no overlong forms, no surrogates, nothing past
/// U+10FFFF), by the same rules as the JSON validator.
bool valid_utf8(std::string_view s);

/// Lowercase hex of `n` bytes (digests).
std::string to_hex(const unsigned char* bytes, std::size_t n);

/// "host:pid": this process among others, for consumer names and instance ids.
std::string host_pid();

/// A short, printable excerpt of untrusted text for log lines (control bytes escaped).
std::string excerpt(std::string_view s, std::size_t max_bytes = 80);

}  // namespace tier
