#include "tier/keys.hpp"

#include <cstdio>

namespace tier {

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    unsigned char c = p[i];
    std::size_t n;
    unsigned min;
    unsigned cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) {
      return false;
    }
    for (std::size_t k = 1; k <= n; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::optional<Error> check_id(std::string_view id, std::string_view what) {
  if (id.empty()) {
    return Error{ErrorKind::invalid, std::string(what) + " is empty"};
  }
  if (id.size() > kMaxIdBytes) {
    return Error{ErrorKind::invalid,
                 std::string(what) + " is longer than " + std::to_string(kMaxIdBytes) + " bytes"};
  }
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7F) {
      return Error{ErrorKind::invalid,
                   std::string(what) + " contains a control character: '" + excerpt(id) + "'"};
    }
  }
  if (!valid_utf8(id)) {
    return Error{ErrorKind::invalid,
                 std::string(what) + " is not valid UTF-8: '" + excerpt(id) + "'"};
  }
  return std::nullopt;
}

std::string glob_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

std::string excerpt(std::string_view s, std::size_t max_bytes) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && out.size() < max_bytes; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F || c >= 0x80) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (out.size() >= max_bytes && s.size() > max_bytes) {
    out += "...";
  }
  return out;
}

}  // namespace tier
