#include "tier/listen.hpp"

#include <arpa/inet.h>

#include <charconv>

#include "tier/errors.hpp"
#include "tier/keys.hpp"

namespace tier {

ListenAddress ListenAddress::parse(std::string_view text) {
  auto fail = [&](const std::string& why) -> ListenAddress {
    throw InvalidArgument("invalid listen address '" + excerpt(text) + "': " + why +
                          " (expected host:port, e.g. 127.0.0.1:9464 or [::1]:9464)");
  };
  for (unsigned char ch : text) {
    if (ch < 0x20 || ch == 0x7f) {
      return fail("control byte");
    }
  }
  ListenAddress out;
  std::string_view host;
  std::string_view port;
  bool bracketed = false;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return fail("missing ']' after an IPv6 address");
    }
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return fail("expected ':port' right after ']'");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    bracketed = true;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return fail("missing ':port'");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return fail("an IPv6 address must be written in brackets");
    }
  }
  if (host.empty()) {
    return fail("empty host");
  }
  out.host = std::string(host);
  unsigned char buf[16];
  if (bracketed) {
    if (host.find('%') != std::string_view::npos) {
      return fail("zone ids are not supported");
    }
    if (inet_pton(AF_INET6, out.host.c_str(), buf) != 1) {
      return fail("not an IPv6 address");
    }
  } else if (out.host != "localhost" && inet_pton(AF_INET, out.host.c_str(), buf) != 1) {
    return fail("host must be an IP address or localhost");
  }
  int value = -1;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || port.size() > 5 || ec != std::errc() || end != port.data() + port.size() ||
      value < 0 || value > 65535 || port.front() == '-' || port.front() == '+') {
    return fail("port must be a number from 0 to 65535");
  }
  out.port = value;
  return out;
}

std::string ListenAddress::to_string() const {
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

}  // namespace tier
