#include "tier/glob.hpp"

namespace tier {

namespace {

using Token = Glob::Token;

std::vector<Token> compile(std::string_view p) {
  std::vector<Token> out;
  for (std::size_t i = 0; i < p.size(); ++i) {
    Token t;
    const char c = p[i];
    if (c == '*') {
      // Consecutive stars are one star.
      if (out.empty() || !out.back().star) {
        t.star = true;
        out.push_back(t);
      }
      continue;
    }
    if (c == '?') {
      t.chars.set();
    } else if (c == '\\' && i + 1 < p.size()) {
      t.chars.set(static_cast<unsigned char>(p[++i]));
    } else if (c == '[') {
      std::size_t j = i + 1;
      bool negate = false;
      if (j < p.size() && p[j] == '^') {
        negate = true;
        ++j;
      }
      std::bitset<256> set;
      // Like Redis stringmatchlen: an unterminated class runs to the end of the pattern.
      while (j < p.size() && p[j] != ']') {
        if (p[j] == '\\' && j + 1 < p.size()) {
          ++j;
          set.set(static_cast<unsigned char>(p[j]));
        } else if (j + 2 < p.size() && p[j + 1] == '-') {
          // As Redis reads it, even when the range ends in ']': "[a-]" is the range ']'..'a'
          // (swapped), not 'a' or '-' (checked against redis-server in the test suite).
          unsigned char lo = static_cast<unsigned char>(p[j]);
          unsigned char hi = static_cast<unsigned char>(p[j + 2]);
          if (lo > hi) {
            std::swap(lo, hi);
          }
          for (unsigned v = lo; v <= hi; ++v) {
            set.set(v);
          }
          j += 2;
        } else {
          set.set(static_cast<unsigned char>(p[j]));
        }
        ++j;
      }
      t.chars = negate ? ~set : set;
      i = j < p.size() ? j : p.size() - 1;
    } else {
      t.chars.set(static_cast<unsigned char>(c));
    }
    out.push_back(t);
  }
  return out;
}

// Walks both token lists at once; memo[i][j] remembers visited states so the search is
// O(|a|*|b|) even for many stars.
class Overlap {
 public:
  Overlap(std::vector<Token> a, std::vector<Token> b)
      : a_(std::move(a)), b_(std::move(b)), seen_((a_.size() + 1) * (b_.size() + 1), false) {}

  bool run(std::size_t i, std::size_t j) {
    const std::size_t key = i * (b_.size() + 1) + j;
    if (seen_[key]) {
      return false;  // already explored (and it did not succeed, or we would have returned)
    }
    seen_[key] = true;
    const bool a_end = i == a_.size();
    const bool b_end = j == b_.size();
    if (a_end && b_end) {
      return true;
    }
    if (!a_end && a_[i].star) {
      // The star matches nothing, or it swallows whatever b's next token produces.
      if (run(i + 1, j)) {
        return true;
      }
      if (!b_end && run(i, j + 1)) {
        return true;
      }
      return false;
    }
    if (!b_end && b_[j].star) {
      if (run(i, j + 1)) {
        return true;
      }
      return !a_end && run(i + 1, j);
    }
    if (a_end || b_end) {
      return false;
    }
    if ((a_[i].chars & b_[j].chars).none()) {
      return false;
    }
    return run(i + 1, j + 1);
  }

 private:
  std::vector<Token> a_;
  std::vector<Token> b_;
  std::vector<bool> seen_;
};

bool match_tokens(const std::vector<Token>& p, std::string_view text) {
  // Classic two-pointer match with backtracking to the last star.
  std::size_t pi = 0;
  std::size_t ti = 0;
  std::size_t star_p = std::string_view::npos;
  std::size_t star_t = 0;
  while (ti < text.size()) {
    if (pi < p.size() && p[pi].star) {
      star_p = pi++;
      star_t = ti;
    } else if (pi < p.size() && p[pi].chars.test(static_cast<unsigned char>(text[ti]))) {
      ++pi;
      ++ti;
    } else if (star_p != std::string_view::npos) {
      pi = star_p + 1;
      ti = ++star_t;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi].star) {
    ++pi;
  }
  return pi == p.size();
}

}  // namespace

Glob::Glob(std::string_view pattern) : tokens_(compile(pattern)) {}

bool Glob::match(std::string_view text) const {
  return match_tokens(tokens_, text);
}

bool glob_match(std::string_view pattern, std::string_view text) {
  return match_tokens(compile(pattern), text);
}

bool globs_overlap(std::string_view a, std::string_view b) {
  Overlap o(compile(a), compile(b));
  return o.run(0, 0);
}

}  // namespace tier
