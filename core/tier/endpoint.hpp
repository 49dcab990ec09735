#pragma once
// Where Redis is and how to log in: redis://[user:password@]host:port/db or unix://path[?db=N].
// The password may also come from TIERD_REDIS_PASSWORD, TIERD_REDIS_PASSWORD_FILE (a file
// holding it, e.g. a systemd credential) or REDISCLI_AUTH. It is never printed: redacted() is
// what logs and errors show.

#include <string>

namespace tier {

struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_path;  ///< set for unix:// URLs; host/port are then unused
  std::string user;       ///< ACL user; empty = default user
  std::string password;   ///< empty = no AUTH
  int db = 0;

  /// Parses a URL; throws InvalidArgument naming what is wrong. When the URL has no
  /// password, TIERD_REDIS_PASSWORD, then the file named by TIERD_REDIS_PASSWORD_FILE, then
  /// REDISCLI_AUTH are used.
  static RedisEndpoint parse(const std::string& url);
  /// The same without the environment: `password` is the URL's own (empty when it has none).
  static RedisEndpoint parse_url(const std::string& url);
  /// The URL with the password replaced by "***".
  std::string redacted() const;
};

}  // namespace tier
