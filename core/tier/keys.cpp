#include "tier/keys.hpp"

#include <unistd.h>

#include <cstdio>

#include "tier/json_check.hpp"

namespace tier {

bool valid_utf8(std::string_view s) {
  return json::valid_utf8(s);
}

std::string to_hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 15]);
  }
  return out;
}

std::string host_pid() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) {
    std::snprintf(host, sizeof(host), "localhost");
  }
  return std::string(host) + ":" + std::to_string(::getpid());
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

std::optional<Error> check_tagged_id(std::string_view id, std::string_view what) {
  if (auto bad = check_id(id, what)) {
    return bad;
  }
  if (id.find_first_of("{}") != std::string_view::npos) {
    return Error{ErrorKind::invalid, std::string(what) + " '" + excerpt(id) +
                                         "' must not contain '{' or '}' (hash tag)"};
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
