#pragma once
// A DOM from JSON text, the same DOM nlohmann::json::parse builds (same types down to the
// number kinds: unsigned for a non-negative integer, integer for a negative one, float for
// anything with a fraction or exponent or out of 64-bit range; the last of repeated keys
// kept), built in one pass after json_check has accepted the text. nlohmann's lexer appends
// every byte of a token to two growing buffers: for a 64-byte cached value that was eight
// allocations and the largest part of a pipelined cache GET's own time.

#include <cstddef>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tier::json {

/// What nlohmann::json::parse(text) gives, for every input: the DOM, or nullopt where it
/// would fail. Texts that json::check_value accepts within `max_depth` are built here; the
/// rest (deeper values, texts that are not JSON, and a NUL byte, which nlohmann takes for
/// the end of the input) go to nlohmann's own parser, so that nothing changes for them.
std::optional<nlohmann::json> parse(std::string_view text, std::size_t max_depth = 512);

}  // namespace tier::json
