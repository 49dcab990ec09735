#pragma once
// A strict one-pass JSON validator (RFC 8259): grammar, UTF-8 (no overlong forms, no
// surrogate code points, nothing past U+10FFFF), \u escapes (surrogates only in valid
// pairs), numbers that fit a double, and a nesting limit; no recursion, no allocation.
// It accepts what nlohmann::json::parse accepts, with one deliberate difference: nlohmann
// takes a NUL byte for the end of the input and ignores what follows it ({"a":1}\0garbage
// parses), while here a NUL anywhere is refused, as RFC 8259 allows it nowhere outside an
// escape. So a DOM built later from an accepted text cannot fail. It answers in one pass
// over the bytes what a DOM parser would take several times as long to decide. Optionally it hands
// back one top-level member (the envelope "id") without building anything.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tier::json {

enum class Problem {
  none,
  not_json,      ///< not a JSON text
  not_object,    ///< JSON, but the top-level value is not an object
  invalid_utf8,  ///< the bytes are not UTF-8
  too_deep,      ///< objects/arrays nested deeper than the limit
};

/// True when `s` is strictly valid UTF-8 (no overlong forms, no surrogates, nothing past
/// U+10FFFF, RFC 3629): the check this validator applies to every string.
bool valid_utf8(std::string_view s);

/// The metric label of a problem: "not_json", "not_object", "invalid_utf8", "too_deep"
/// ("" for none).
const char* reason(Problem p);

/// Where a top-level member's value sits in the text (views into it).
struct Member {
  bool present = false;
  bool is_string = false;
  /// The raw value: for a string, the bytes between the quotes, escapes undecoded.
  std::string_view raw;
};

struct Checked {
  Problem problem = Problem::none;
  /// The top-level member that was asked for (the last one when a key repeats, as a DOM
  /// parser keeps it).
  Member member;
  bool ok() const { return problem == Problem::none; }
};

/// Validates `text` as a JSON object nested at most `max_depth` deep (an object holding
/// an array is depth 2; max_depth is capped at 1024). When several problems are present,
/// the answer is the first of: invalid_utf8 (anywhere in the text), too_deep (brackets
/// outside strings, counted even past a grammar error), not_json, not_object. A leading
/// UTF-8 byte order mark is ignored (RFC 8259 §8.1 allows it, nlohmann ignores it).
/// `member`, when non-empty, names a top-level key whose value is reported in `member`.
Checked check(std::string_view text, std::size_t max_depth, std::string_view member = {});

/// Validates `text` as any JSON value (object, array, string, number, literal) nested at
/// most `max_depth` deep; never answers not_object.
Problem check_value(std::string_view text, std::size_t max_depth);

/// Decodes the raw contents of a string that check() accepted (escapes, \u pairs).
std::string unescape(std::string_view raw);

}  // namespace tier::json
