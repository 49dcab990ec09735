#include "tier/endpoint.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string_view>

#include "tier/errors.hpp"
#include "tier/keys.hpp"
#include "tier/numbers.hpp"

namespace tier {
namespace {

int parse_int(std::string_view s, const std::string& url, const char* what, int lo, int hi) {
  const auto parsed = s.starts_with('-') ? std::nullopt : parse_integer<int>(s);
  if (!parsed) {
    throw InvalidArgument("redis url '" + url + "': bad " + what);
  }
  const int v = *parsed;
  if (v < lo || v > hi) {
    throw InvalidArgument("redis url '" + url + "': " + what + " out of range");
  }
  return v;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    auto hex = [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    };
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) && hex(s[i + 2])) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The user name as it must be written in a URL for parse() to read it back.
std::string percent_encode(std::string_view s) {
  static const char* const kHex = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '%' || c == ':' || c == '@' || c == '/' || u < 0x20 || u == 0x7F) {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    } else {
      out += c;
    }
  }
  return out;
}

bool has_control(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      return true;
    }
  }
  return false;
}

// TIERD_REDIS_PASSWORD, then TIERD_REDIS_PASSWORD_FILE (a file holding the password, e.g. a
// systemd credential in $CREDENTIALS_DIRECTORY, so the secret is in no environment block),
// then REDISCLI_AUTH. The file's trailing newlines are not part of the password.
std::string password_from_environment() {
  if (const char* v = std::getenv("TIERD_REDIS_PASSWORD"); v != nullptr && *v != '\0') {
    return v;
  }
  if (const char* path = std::getenv("TIERD_REDIS_PASSWORD_FILE");
      path != nullptr && *path != '\0') {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      throw InvalidArgument(std::string("TIERD_REDIS_PASSWORD_FILE '") + path +
                            "': cannot read: " + std::strerror(errno));
    }
    std::string password((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
      password.pop_back();
    }
    if (password.empty()) {
      throw InvalidArgument(std::string("TIERD_REDIS_PASSWORD_FILE '") + path + "' is empty");
    }
    return password;
  }
  if (const char* v = std::getenv("REDISCLI_AUTH"); v != nullptr && *v != '\0') {
    return v;
  }
  return {};
}

}  // namespace

RedisEndpoint RedisEndpoint::parse(const std::string& url) {
  RedisEndpoint ep = parse_url(url);
  if (ep.password.empty()) {
    ep.password = password_from_environment();
  }
  return ep;
}

RedisEndpoint RedisEndpoint::parse_url(const std::string& url) {
  RedisEndpoint ep;
  // The URL itself is never echoed with its password: errors show a redacted form.
  std::string shown = url;
  if (auto at = shown.rfind('@'); at != std::string::npos) {
    if (auto scheme = shown.find("://"); scheme != std::string::npos && scheme < at) {
      shown = shown.substr(0, scheme + 3) + "***" + shown.substr(at);
    }
  }
  // Control bytes escaped: a NUL would cut the message short, others garble a log line.
  shown = excerpt(shown, 200);
  std::string_view rest(url);
  if (rest.starts_with("unix://")) {
    rest.remove_prefix(7);
    if (auto q = rest.find("?db="); q != std::string_view::npos) {
      ep.db = parse_int(rest.substr(q + 4), shown, "db", 0, 1 << 20);
      rest = rest.substr(0, q);
    }
    if (rest.empty() || rest.front() != '/') {
      throw InvalidArgument("redis url '" + shown + "': unix socket path must be absolute");
    }
    if (has_control(rest)) {
      throw InvalidArgument("redis url '" + shown + "': control byte in the socket path");
    }
    ep.unix_path = std::string(rest);
  } else if (rest.starts_with("redis://")) {
    rest.remove_prefix(8);
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
      std::string_view auth = rest.substr(0, at);
      rest.remove_prefix(at + 1);
      if (auto colon = auth.find(':'); colon != std::string_view::npos) {
        ep.user = percent_decode(auth.substr(0, colon));
        ep.password = percent_decode(auth.substr(colon + 1));
      } else {
        ep.password = percent_decode(auth);  // redis://password@host, as redis-cli reads it
      }
    }
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
      if (slash + 1 < rest.size()) {
        ep.db = parse_int(rest.substr(slash + 1), shown, "db", 0, 1 << 20);
      }
      rest = rest.substr(0, slash);
    }
    std::string_view hostport = rest;
    if (hostport.starts_with("[")) {  // [::1]:6379
      auto close = hostport.find(']');
      if (close == std::string_view::npos) {
        throw InvalidArgument("redis url '" + shown + "': unterminated [ in host");
      }
      ep.host = std::string(hostport.substr(1, close - 1));
      hostport.remove_prefix(close + 1);
      if (hostport.starts_with(":")) {
        ep.port = parse_int(hostport.substr(1), shown, "port", 1, 65535);
      } else if (!hostport.empty()) {
        throw InvalidArgument("redis url '" + shown + "': expected ':port' after ']'");
      }
    } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
      ep.host = std::string(hostport.substr(0, colon));
      ep.port = parse_int(hostport.substr(colon + 1), shown, "port", 1, 65535);
      if (ep.host.find(':') != std::string::npos) {
        // redis://::1:6379 is ambiguous: which colon starts the port?
        throw InvalidArgument("redis url '" + shown +
                              "': an IPv6 address must be written in brackets, e.g. [::1]:6379");
      }
    } else if (!hostport.empty()) {
      ep.host = std::string(hostport);
    }
    if (ep.host.empty()) {
      throw InvalidArgument("redis url '" + shown + "': empty host");
    }
    // A host that redacted() could not print back, or that a resolver would read only up
    // to a NUL.
    if (ep.host.find_first_of("[]") != std::string::npos || has_control(ep.host)) {
      throw InvalidArgument("redis url '" + shown + "': invalid host");
    }
  } else {
    throw InvalidArgument("redis url '" + shown + "': must start with redis:// or unix://");
  }
  return ep;
}

std::string RedisEndpoint::redacted() const {
  std::string auth;
  if (!user.empty() || !password.empty()) {
    auth = (user.empty() ? std::string() : percent_encode(user) + ":") +
           (password.empty() ? "" : "***") + "@";
  }
  if (!unix_path.empty()) {
    return "unix://" + auth + unix_path + (db != 0 ? "?db=" + std::to_string(db) : "");
  }
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return "redis://" + auth + h + ":" + std::to_string(port) + "/" + std::to_string(db);
}

}  // namespace tier
