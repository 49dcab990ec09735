#pragma once
// The one parser of a listen address ("host:port"), for the config reader and the HTTP
// server alike. Only IP literals (and "localhost") are taken: resolving a name would block
// the loop (getaddrinfo).

#include <string>
#include <string_view>

namespace tier {

struct ListenAddress {
  std::string host = "127.0.0.1";  ///< an IPv4 or IPv6 literal, or "localhost"
  int port = 9464;                 ///< 0 = an ephemeral port chosen by the kernel

  /// Parses "a.b.c.d:port", "[v6]:port" or "localhost:port". Refused, each with a message
  /// naming the problem and the input (control bytes escaped): a host that is not an IP
  /// literal, an IPv6 address without brackets or with a zone id, anything after ']' but
  /// ":port", a port outside 0-65535, and any control byte (a NUL would end the text
  /// inet_pton reads). Throws tier::InvalidArgument.
  static ListenAddress parse(std::string_view text);
  /// "127.0.0.1:9464" or "[::1]:9464"; parse(to_string()) gives the same address back.
  std::string to_string() const;
};

}  // namespace tier
