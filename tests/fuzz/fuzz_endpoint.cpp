// Addresses read from the config and the environment: tier::RedisEndpoint (Redis URLs),
// tierd::ListenAddress and tierd::parse_listen (the HTTP listen address, daemon and config
// side), and the PostgreSQL conninfo check of the config reader. Each either returns a value
// or throws its documented exception (tier::InvalidArgument, tierd::ConfigError); a parsed
// value is well-formed and survives a round trip through its printed form; and no password
// reaches a printed form or an error message.
//
// Passwords are traced with a canary: every '$' of the input becomes kCanary, so an input can
// put a password anywhere (the dictionary suggests where) and its leak is unmistakable.

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <typeinfo>

#include "config/config.hpp"
#include "config/error.hpp"
#include "daemon/http.hpp"
#include "tier/endpoint.hpp"
#include "tier/errors.hpp"
#include "tier/keys.hpp"

namespace {

constexpr std::string_view kCanary = "Zq7x9Kw2Vb";

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_endpoint: %s\n", what.c_str());
  std::abort();
}

void require(bool ok, const std::string& what) {
  if (!ok) {
    finding(what);
  }
}

// False when the input itself spells part of the canary (the fuzzer learns it from the
// comparisons): a password can then not be traced.
bool g_tracing = true;

// Whether `text` shows any 6 consecutive bytes of the canary.
bool shows_canary(std::string_view text) {
  for (std::size_t i = 0; i + 6 <= kCanary.size(); ++i) {
    if (text.find(kCanary.substr(i, 6)) != std::string_view::npos) {
      return true;
    }
  }
  return false;
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

// A numeric address as inet_pton reads it, the whole text (an IPv6 zone "%eth0" aside).
bool ip_literal(const std::string& host) {
  if (host.find('\0') != std::string::npos) {
    return false;
  }
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) {
    return true;
  }
  const std::string address = host.substr(0, host.find('%'));
  return inet_pton(AF_INET6, address.c_str(), buf) == 1;
}

// ---- Redis URLs ------------------------------------------------------------------------

// Whether every canary in `text` lies in [begin, end).
bool canaries_within(const std::string& text, std::size_t begin, std::size_t end) {
  if (!g_tracing) {
    return false;
  }
  bool any = false;
  for (auto p = text.find(kCanary); p != std::string::npos; p = text.find(kCanary, p + 1)) {
    if (p < begin || p + kCanary.size() > end) {
      return false;
    }
    any = true;
  }
  return any;
}

void redis_url(const std::string& url) {
  // Errors show the URL with everything between "://" and the last '@' hidden.
  const auto scheme = url.find("://");
  const auto at = url.rfind('@');
  const bool in_hidden = scheme != std::string::npos && at != std::string::npos &&
                         at > scheme + 3 && canaries_within(url, scheme + 3, at);
  // The password itself: after the first ':' of the user info (all of it without a ':').
  bool in_password = false;
  if (url.starts_with("redis://") && at != std::string::npos && at >= 8) {
    const auto colon = url.find(':', 8);
    in_password = canaries_within(url, colon < at ? colon + 1 : 8, at);
  }

  tier::RedisEndpoint ep;
  try {
    ep = tier::RedisEndpoint::parse_url(url);
  } catch (const tier::InvalidArgument& e) {
    // The text outside the hidden part may spell a canary fragment by itself once its
    // control bytes are escaped ("Zq\x17x9Kw2" holds "7x9Kw2"): that is not the password.
    const bool outside_shows =
        in_hidden && shows_canary(tier::excerpt(url.substr(0, scheme + 3) + url.substr(at), 400));
    require(!in_hidden || outside_shows || !shows_canary(e.what()),
            "a Redis URL error shows the password: " + std::string(e.what()));
    return;
  } catch (const std::exception& e) {
    finding("RedisEndpoint::parse_url threw " + std::string(typeid(e).name()) + ": " + e.what());
  }
  if (ep.unix_path.empty()) {
    require(!ep.host.empty(), "empty host accepted: " + url);
    require(ep.port >= 1 && ep.port <= 65535, "port out of range: " + url);
  } else {
    require(ep.unix_path.front() == '/', "relative unix socket path: " + url);
  }
  require(ep.db >= 0 && ep.db <= (1 << 20), "db out of range: " + url);

  // redacted() does not depend on the password, only on whether there is one.
  const std::string shown = ep.redacted();
  if (!ep.password.empty()) {
    tier::RedisEndpoint other = ep;
    other.password = "x";
    require(other.redacted() == shown, "redacted() depends on the password: " + shown);
    require(shown.find("***") != std::string::npos, "redacted() hides that there is a password");
  }
  // The whole canary: redacted() was just shown not to depend on the password, and a user
  // name's percent-encoding can spell a fragment by itself ("%17x9Kw2" holds "7x9Kw2").
  require(!in_password || shown.find(kCanary) == std::string::npos,
          "redacted() shows the password: " + shown);

  // The printed form reads back as the same endpoint (the password shown as "***").
  tier::RedisEndpoint back;
  try {
    back = tier::RedisEndpoint::parse_url(shown);
  } catch (const std::exception& e) {
    finding("redacted() '" + shown + "' of '" + url + "' does not parse: " + e.what());
  }
  require(back.host == ep.host && back.port == ep.port && back.db == ep.db &&
              back.unix_path == ep.unix_path && back.user == ep.user &&
              back.password.empty() == ep.password.empty(),
          "redacted() '" + shown + "' reads back as another endpoint than '" + url + "'");
}

// ---- HTTP listen addresses ---------------------------------------------------------------

// tier::ListenAddress::parse is the one listen parser (config and daemon). It once left the
// host to libuv's uv_ip4_addr/uv_ip6_addr, which read only up to a NUL, took any bytes as an
// IPv6 zone and cut a zoned address at 39 bytes; corpus/fuzz_endpoint/listen_*_known keep
// those inputs as regressions.
constexpr bool kCheckListenAddressHost = true;

void listen_address(const std::string& text) {
  tierd::ListenAddress a;
  try {
    a = tierd::ListenAddress::parse(text);
  } catch (const tier::InvalidArgument&) {
    return;
  } catch (const std::exception& e) {
    finding("ListenAddress::parse threw " + std::string(typeid(e).name()) + ": " + e.what());
  }
  require(a.port >= 0 && a.port <= 65535, "listen port out of range");
  if (kCheckListenAddressHost) {
    require(!has_control(a.host), "listen host with a control byte accepted: " + a.to_string());
    require(a.host == "localhost" || ip_literal(a.host),
            "listen host that is not an IP address accepted: '" + a.host + "'");
  }
  tierd::ListenAddress b;
  try {
    b = tierd::ListenAddress::parse(a.to_string());
  } catch (const std::exception& e) {
    finding("ListenAddress '" + a.to_string() + "' does not parse back: " + e.what());
  }
  require(b.host == a.host && b.port == a.port,
          "ListenAddress '" + a.to_string() + "' reads back as '" + b.to_string() + "'");
}

void config_listen(const std::string& text) {
  std::pair<std::string, int> a;
  try {
    a = tierd::parse_listen(text, "http.listen", 1);
  } catch (const tierd::ConfigError&) {
    return;
  } catch (const std::exception& e) {
    finding("parse_listen threw " + std::string(typeid(e).name()) + ": " + e.what());
  }
  const auto& [host, port] = a;
  require(port >= 0 && port <= 65535, "http.listen port out of range");
  require(host == "localhost" || ip_literal(host),
          "http.listen host that is not an IP address accepted: '" + host + "'");
  const std::string printed =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  try {
    require(tierd::parse_listen(printed, "http.listen", 1) == a,
            "http.listen '" + printed + "' reads back differently");
  } catch (const tierd::ConfigError& e) {
    finding("http.listen '" + printed + "' does not parse back: " + e.what());
  }
}

// ---- PostgreSQL conninfo -----------------------------------------------------------------

// Where the canary stands as a password: after "password=" (a keyword, or a URI query
// parameter), or in a URI's user info after the ':'.
bool canary_is_password(const std::string& conninfo) {
  const auto p = conninfo.find(kCanary);
  if (p == std::string::npos || !g_tracing) {
    return false;
  }
  if (conninfo.rfind("password=", p) != std::string::npos) {
    return true;
  }
  const auto scheme = conninfo.find("://");
  if (scheme == std::string::npos || scheme > p) {
    return false;
  }
  const auto colon = conninfo.find(':', scheme + 3);
  return colon < p && conninfo.find('@', p) != std::string::npos;
}

void postgres_conninfo(const std::string& conninfo) {
  if (conninfo.empty()) {
    return;  // the environment variable counts as unset
  }
  auto env = [&](const char* name) -> std::optional<std::string> {
    if (std::string_view(name) == "TIERD_POSTGRES_URL") {
      return conninfo;
    }
    return std::nullopt;
  };
  try {
    (void)tierd::parse_config("", "fuzz.yaml", env);
  } catch (const tierd::ConfigError& e) {
    require(!canary_is_password(conninfo) || !shows_canary(e.what()),
            "a PostgreSQL conninfo error shows the password: " + std::string(e.what()));
  } catch (const std::exception& e) {
    finding("the conninfo check threw " + std::string(typeid(e).name()) + ": " + e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // RedisEndpoint::parse would fill a missing password from these.
  for (const char* v : {"TIERD_REDIS_PASSWORD", "TIERD_REDIS_PASSWORD_FILE", "REDISCLI_AUTH"}) {
    ::unsetenv(v);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string raw(reinterpret_cast<const char*>(data), size);
  g_tracing = !shows_canary(raw);
  std::string text;
  for (char c : raw) {
    if (c == '$') {
      text += kCanary;
    } else {
      text += c;
    }
  }
  redis_url(text);
  listen_address(raw);
  config_listen(raw);
  postgres_conninfo(text);
  return 0;
}
