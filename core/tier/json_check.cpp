#include "tier/json_check.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>

#include "tier/keys.hpp"

namespace tier::json {

namespace {

using Byte = unsigned char;
using Ptr = const Byte*;

constexpr std::size_t kDepthCap = 1024;

// The bytes of `x` (8, little-endian) that need a closer look inside a string: '"', '\\',
// a control byte (< 0x20) or a byte >= 0x80, each flagged by its high bit. Only the lowest
// flag is exact (a borrow may flag a byte above it), which is the one the caller wants.
// Strings are most of a message, and this looks at them 8 bytes at a time, not one.
static_assert(std::endian::native == std::endian::little, "special8 reads bytes little-endian");
inline std::uint64_t special8(std::uint64_t x) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t highs = 0x8080808080808080ULL;
  const std::uint64_t q = x ^ (ones * '"');
  const std::uint64_t b = x ^ (ones * '\\');
  const std::uint64_t quote = (q - ones) & ~q;
  const std::uint64_t backslash = (b - ones) & ~b;
  const std::uint64_t control = (x - ones * 0x20) & ~x;
  return (quote | backslash | control | x) & highs;
}

inline bool is_ws(Byte c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

inline void skip_ws(Ptr& p, Ptr end) {
  while (p < end && is_ws(*p)) {
    ++p;
  }
}

inline bool cont(Byte c) {
  return (c & 0xC0) == 0x80;
}

// One multi-byte UTF-8 sequence starting at p (*p >= 0x80), strictly: no overlong forms,
// no surrogates, nothing past U+10FFFF (RFC 3629 table).
bool utf8_seq(Ptr& p, Ptr end) {
  const Byte c = *p;
  const std::ptrdiff_t left = end - p;
  if (c >= 0xC2 && c <= 0xDF) {
    if (left < 2 || !cont(p[1])) {
      return false;
    }
    p += 2;
    return true;
  }
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || !cont(p[1]) || !cont(p[2])) {
      return false;
    }
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F)) {
      return false;  // overlong, or a UTF-16 surrogate
    }
    p += 3;
    return true;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || !cont(p[1]) || !cont(p[2]) || !cont(p[3])) {
      return false;
    }
    if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F)) {
      return false;  // overlong, or past U+10FFFF
    }
    p += 4;
    return true;
  }
  return false;
}

inline int hex(Byte c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Four hex digits at p.
bool hex4(Ptr& p, Ptr end, unsigned& cp) {
  if (end - p < 4) {
    return false;
  }
  cp = 0;
  for (int i = 0; i < 4; ++i) {
    const int h = hex(p[i]);
    if (h < 0) {
      return false;
    }
    cp = (cp << 4) | static_cast<unsigned>(h);
  }
  p += 4;
  return true;
}

// What scan_string found: p past the closing quote (nullptr: not a valid string), and
// whether the string holds escapes. Returned by value so that the caller's position stays
// in a register (a pointer passed by reference lives in memory across the call).
struct Scanned {
  Ptr p;
  bool escaped;
};

// A string body, from just past the opening quote. Inlined: most of a message is short
// strings, and the call would cost about as much as scanning one.
[[gnu::always_inline]] inline Scanned scan_string(Ptr p, Ptr end) {
  bool escaped = false;
  for (;;) {
    while (end - p >= 8) {
      std::uint64_t x;
      std::memcpy(&x, p, 8);
      if (const std::uint64_t m = special8(x); m != 0) {
        p += std::countr_zero(m) >> 3;  // straight to the first byte that matters
        break;
      }
      p += 8;
    }
    if (p == end) {
      return {nullptr, false};
    }
    const Byte c = *p;
    if (c == '"') {
      ++p;
      return {p, escaped};
    }
    if (c == '\\') {
      escaped = true;
      ++p;
      if (p == end) {
        return {nullptr, false};
      }
      switch (*p) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          ++p;
          break;
        case 'u': {
          ++p;
          unsigned cp = 0;
          if (!hex4(p, end, cp)) {
            return {nullptr, false};
          }
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return {nullptr, false};  // a low surrogate without its high half
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned low = 0;
            if (end - p < 2 || p[0] != '\\' || p[1] != 'u') {
              return {nullptr, false};  // a high surrogate must be followed by its low half
            }
            p += 2;
            if (!hex4(p, end, low) || low < 0xDC00 || low > 0xDFFF) {
              return {nullptr, false};
            }
          }
          break;
        }
        default:
          return {nullptr, false};
      }
      continue;
    }
    if (c < 0x20) {
      return {nullptr, false};  // control characters must be escaped
    }
    if (c < 0x80) {
      ++p;
      continue;
    }
    if (!utf8_seq(p, end)) {
      return {nullptr, false};
    }
  }
}

inline bool digit(Byte c) {
  return c >= '0' && c <= '9';
}

// A number (RFC 8259 §6) from p at '-' or a digit, to the position past it (nullptr: not a
// number). Numbers past a double's range are refused,
// as a DOM parser refuses them (an underflow to 0 is accepted, as there).
Ptr scan_number(Ptr p, Ptr end) {
  const Ptr start = p;
  if (*p == '-') {
    ++p;
  }
  if (p == end) {
    return nullptr;
  }
  // Decimal magnitude of the first significant digit, for telling overflow from underflow.
  long magnitude = 0;
  bool zero_int = false;
  if (*p == '0') {
    zero_int = true;
    ++p;
  } else if (digit(*p)) {
    const Ptr d = p;
    while (p < end && digit(*p)) {
      ++p;
    }
    magnitude = static_cast<long>(p - d);
  } else {
    return nullptr;
  }
  if (p < end && *p == '.') {
    ++p;
    const Ptr d = p;
    while (p < end && digit(*p)) {
      ++p;
    }
    if (p == d) {
      return nullptr;
    }
    if (zero_int) {
      const Ptr nz = std::find_if(d, p, [](Byte c) { return c != '0'; });
      magnitude = -static_cast<long>(nz - d);
    }
  }
  bool exponent = false;
  long exp = 0;
  if (p < end && (*p == 'e' || *p == 'E')) {
    exponent = true;
    ++p;
    bool negative = false;
    if (p < end && (*p == '+' || *p == '-')) {
      negative = *p == '-';
      ++p;
    }
    const Ptr d = p;
    while (p < end && digit(*p)) {
      exp = std::min<long>(exp * 10 + (*p - '0'), 1L << 40);
      ++p;
    }
    if (p == d) {
      return nullptr;
    }
    exp = negative ? -exp : exp;
  }
  // Only long numbers or ones with an exponent can leave a double's range.
  if (exponent || p - start > 300) {
    double v = 0;
    auto r = std::from_chars(reinterpret_cast<const char*>(start), reinterpret_cast<const char*>(p),
                             v, std::chars_format::general);
    if (r.ec == std::errc::result_out_of_range && magnitude + exp > 0) {
      return nullptr;
    }
  }
  return p;
}

inline bool literal(Ptr& p, Ptr end, const char* word, std::size_t n) {
  if (static_cast<std::size_t>(end - p) < n || std::memcmp(p, word, n) != 0) {
    return false;
  }
  p += n;
  return true;
}

// Nesting of brackets outside strings, without the grammar: how deep a malformed text
// would go, so that the reported reason does not depend on where its first error is.
bool brackets_too_deep(std::string_view text, std::size_t max_depth) {
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) {
        return true;
      }
    } else if (c == '}' || c == ']') {
      depth = depth > 0 ? depth - 1 : 0;
    }
  }
  return false;
}

}  // namespace

const char* reason(Problem p) {
  switch (p) {
    case Problem::none:
      return "";
    case Problem::not_json:
      return "not_json";
    case Problem::not_object:
      return "not_object";
    case Problem::invalid_utf8:
      return "invalid_utf8";
    case Problem::too_deep:
      return "too_deep";
  }
  return "not_json";
}

namespace {

Checked check_impl(std::string_view text, std::size_t max_depth, std::string_view member,
                   bool require_object) {
  max_depth = std::min(max_depth, kDepthCap);
  const Ptr begin = reinterpret_cast<Ptr>(text.data());
  const Ptr end = begin + text.size();
  Ptr p = begin;
  if (end - p >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
    p += 3;
  }
  Checked out;
  // Per open level: object or array. Left uninitialized (a level is written when it opens,
  // before it is read): zeroing it would cost more than checking a small message.
  std::array<bool, kDepthCap> is_object;
  std::size_t depth = 0;
  bool top_object = false;
  bool capture = false;  // the current top-level member is the one asked for
  Ptr value_start = nullptr;

  auto fail = [&](Problem problem) {
    // Rare path: report the reason the whole text deserves, not just its first error.
    if (!valid_utf8(text)) {
      out.problem = Problem::invalid_utf8;
    } else if (problem == Problem::too_deep || brackets_too_deep(text, max_depth)) {
      out.problem = Problem::too_deep;
    } else {
      out.problem = problem;
    }
    out.member = {};
    return out;
  };

  // The grammar as a loop over two states: expecting a value, or just past one.
  for (;;) {
    // --- a value ---
    skip_ws(p, end);
    if (p == end) {
      return fail(Problem::not_json);
    }
    switch (*p) {
      case '{':
      case '[': {
        const bool obj = *p == '{';
        if (++depth > max_depth) {
          return fail(Problem::too_deep);
        }
        is_object[depth - 1] = obj;
        if (depth == 1) {
          top_object = obj;
        }
        ++p;
        skip_ws(p, end);
        if (p < end && *p == (obj ? '}' : ']')) {
          ++p;
          --depth;
          break;  // an empty container is a complete value
        }
        if (!obj) {
          continue;  // the first element
        }
        // The first key; the rest of the object goes through the "after a value" state.
        if (p == end || *p != '"') {
          return fail(Problem::not_json);
        }
        const Ptr key = ++p;
        const Scanned scanned = scan_string(p, end);
        if (scanned.p == nullptr) {
          return fail(Problem::not_json);
        }
        p = scanned.p;
        const bool key_escaped = scanned.escaped;
        if (depth == 1 && !member.empty()) {
          const std::string_view k(reinterpret_cast<const char*>(key),
                                   static_cast<std::size_t>(p - 1 - key));
          capture = key_escaped ? unescape(k) == member : k == member;
        }
        skip_ws(p, end);
        if (p == end || *p != ':') {
          return fail(Problem::not_json);
        }
        ++p;
        skip_ws(p, end);
        if (depth == 1) {
          value_start = p;
        }
        continue;
      }
      case '"':
        p = scan_string(p + 1, end).p;
        if (p == nullptr) {
          return fail(Problem::not_json);
        }
        break;
      case 't':
        if (!literal(p, end, "true", 4)) {
          return fail(Problem::not_json);
        }
        break;
      case 'f':
        if (!literal(p, end, "false", 5)) {
          return fail(Problem::not_json);
        }
        break;
      case 'n':
        if (!literal(p, end, "null", 4)) {
          return fail(Problem::not_json);
        }
        break;
      default:
        if (*p != '-' && !digit(*p)) {
          return fail(Problem::not_json);
        }
        p = scan_number(p, end);
        if (p == nullptr) {
          return fail(Problem::not_json);
        }
        break;
    }

    // --- after a value: close containers, or a comma and the next element or member ---
    for (;;) {
      if (capture && depth == 1) {
        // The asked-for member's value is complete (a scalar, or a container just closed).
        capture = false;
        out.member.present = true;
        out.member.is_string = *value_start == '"';
        const Ptr last = out.member.is_string ? p - 1 : p;
        const Ptr first = out.member.is_string ? value_start + 1 : value_start;
        out.member.raw = std::string_view(reinterpret_cast<const char*>(first),
                                          static_cast<std::size_t>(last - first));
      }
      skip_ws(p, end);
      if (depth == 0) {
        if (p != end) {
          return fail(Problem::not_json);  // trailing garbage
        }
        if (require_object && !top_object) {
          return fail(Problem::not_object);
        }
        return out;
      }
      if (p == end) {
        return fail(Problem::not_json);
      }
      const bool obj = is_object[depth - 1];
      if (*p == (obj ? '}' : ']')) {
        ++p;
        --depth;
        continue;
      }
      if (*p != ',') {
        return fail(Problem::not_json);
      }
      ++p;
      skip_ws(p, end);
      if (obj) {
        if (p == end || *p != '"') {
          return fail(Problem::not_json);
        }
        const Ptr key = ++p;
        const Scanned scanned = scan_string(p, end);
        if (scanned.p == nullptr) {
          return fail(Problem::not_json);
        }
        p = scanned.p;
        const bool key_escaped = scanned.escaped;
        if (depth == 1 && !member.empty()) {
          const std::string_view k(reinterpret_cast<const char*>(key),
                                   static_cast<std::size_t>(p - 1 - key));
          capture = key_escaped ? unescape(k) == member : k == member;
        }
        skip_ws(p, end);
        if (p == end || *p != ':') {
          return fail(Problem::not_json);
        }
        ++p;
        skip_ws(p, end);
        if (depth == 1) {
          value_start = p;
        }
      }
      break;  // a value follows
    }
  }
}

}  // namespace

Checked check(std::string_view text, std::size_t max_depth, std::string_view member) {
  return check_impl(text, max_depth, member, /*require_object=*/true);
}

Problem check_value(std::string_view text, std::size_t max_depth) {
  return check_impl(text, max_depth, {}, /*require_object=*/false).problem;
}

std::string unescape(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  auto put = [&out](unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  };
  Ptr p = reinterpret_cast<Ptr>(raw.data());
  const Ptr end = p + raw.size();
  while (p < end) {
    if (*p != '\\' || end - p < 2) {
      out += static_cast<char>(*p++);
      continue;
    }
    ++p;
    const Byte e = *p++;
    switch (e) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        unsigned cp = 0;
        if (!hex4(p, end, cp)) {
          return out;  // not from check(); stop rather than guess
        }
        if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
          Ptr q = p + 2;
          unsigned low = 0;
          if (hex4(q, end, low) && low >= 0xDC00 && low <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            p = q;
          }
        }
        put(cp);
        break;
      }
      default:  // '"', '\\', '/'
        out += static_cast<char>(e);
        break;
    }
  }
  return out;
}

bool valid_utf8(std::string_view s) {
  auto p = reinterpret_cast<Ptr>(s.data());
  const auto end = p + s.size();
  while (p < end) {
    if (*p < 0x80) {
      ++p;
    } else if (!utf8_seq(p, end)) {
      return false;
    }
  }
  return true;
}

}  // namespace tier::json
