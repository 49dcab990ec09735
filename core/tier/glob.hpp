#pragma once
// Redis-style globs (the syntax of PSUBSCRIBE and SCAN MATCH): * ? [abc] [^a-z] and
// backslash escapes. Used to route messages to handlers and to refuse overlapping
// subscriptions, which would deliver one message twice.

#include <bitset>
#include <string_view>
#include <vector>

namespace tier {

/// A glob compiled once, for matching many texts (routing) without re-reading the pattern.
class Glob {
 public:
  explicit Glob(std::string_view pattern);
  bool match(std::string_view text) const;

  /// One position of the pattern: a star, or the set of bytes that position may hold.
  struct Token {
    bool star = false;
    std::bitset<256> chars;
  };

 private:
  std::vector<Token> tokens_;
};

/// True when `text` matches `pattern`.
bool glob_match(std::string_view pattern, std::string_view text);

/// True when at least one string matches both patterns.
bool globs_overlap(std::string_view a, std::string_view b);

}  // namespace tier
