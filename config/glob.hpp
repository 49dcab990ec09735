#pragma once
// Redis-style globs (the syntax of PSUBSCRIBE and SCAN MATCH): * ? [abc] [^a-z] and
// backslash escapes. Used to route messages to handlers and to refuse overlapping
// subscriptions, which would deliver one message twice.

#include <string_view>

namespace tierd {

/// True when `text` matches `pattern`.
bool glob_match(std::string_view pattern, std::string_view text);

/// True when at least one string matches both patterns.
bool globs_overlap(std::string_view a, std::string_view b);

}  // namespace tierd
