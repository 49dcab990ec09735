#pragma once
// tierd's configuration: YAML -> typed structs, validated up front (unknown keys refused,
// every error names the YAML path and line), then the environment overrides the file
// (TIERD_REDIS_URL, TIERD_POSTGRES_URL, TIERD_HTTP_LISTEN, TIERD_LOG_LEVEL).
// config/tierd.example.yaml documents every key and is the built-in default config.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/error.hpp"

namespace tierd {

/// Keys every handler section may carry, read here (name, type, on, max_concurrency,
/// queue_limit, max_attempts, retry_backoff_ms, dedup_ttl_s). A handler's factory accepts
/// them plus its own.
const std::vector<std::string>& common_handler_keys();

/// One handler section: the settings the core applies to every handler instance, and the
/// raw section for the handler's factory (handlers::resolve() runs it).
struct HandlerConfig {
  std::string type;
  std::string name;                  ///< unique; defaults to the type
  std::vector<std::string> on;       ///< channel globs routed to this instance
  std::size_t max_concurrency = 16;  ///< events handled at once
  std::size_t queue_limit = 10000;   ///< events waiting; past it new ones are dropped (counted)
  std::uint32_t max_attempts = 3;    ///< 1 = no retry
  std::chrono::milliseconds retry_backoff{200};  ///< first retry delay; doubles per attempt
  /// How long an envelope id is remembered (SET NX EX) so that an event carrying an id seen
  /// before is not handled again, in seconds; 0 = no de-duplication.
  std::chrono::seconds dedup_ttl{0};
  /// dedup_ttl_s was given; when not, the handler's own default applies
  /// (Handler::default_dedup_ttl, e.g. quota_alerts).
  bool dedup_ttl_set = false;
  std::string yaml_path;  ///< "handlers[0]", for log lines
  YAML::Node section;     ///< the whole mapping, common keys included
};

struct Config {
  std::string redis_url = "redis://127.0.0.1:6379/0";
  std::chrono::milliseconds redis_connect_timeout{2000};
  std::chrono::milliseconds redis_command_timeout{2000};
  /// libpq conninfo or URL; empty = no PostgreSQL.
  std::string postgres_conninfo;
  /// It came from TIERD_POSTGRES_URL: a password in it is accepted (never from the file).
  bool postgres_conninfo_from_env = false;
  std::string http_host = "127.0.0.1";
  int http_port = 9464;  ///< 0 = any free port (tests)
  std::string log_level = "info";
  std::string log_format = "text";  ///< text | json (JSON lines for log collectors)
  /// Prepended to every key tierd touches (DESIGN §4); empty = none.
  std::string key_prefix;
  std::vector<std::string> subscribe{"events:*", "system:*", "notifications:*"};
  std::size_t max_message_bytes = 1 << 20;  ///< larger messages are rejected (counted)
  /// Which messages are validated in full before routing: every one (`all`), or only those
  /// routed to a handler that parses the body or de-duplicates by id (`when_parsed`).
  enum class Validate { all, when_parsed };
  Validate validate = Validate::all;
  std::chrono::milliseconds shutdown_timeout{10000};  ///< drain deadline on SIGTERM/SIGHUP
  std::vector<HandlerConfig> handlers;
  std::string source;  ///< file name, or "<built-in>"
};

/// Reads an environment variable; tests inject their own.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
EnvLookup process_env();

/// Parses and validates `yaml_text` (named `source` in errors), then applies the
/// environment. Handler sections are checked for the keys every handler shares; their own
/// keys are the factories' (handlers::resolve()). Throws ConfigError.
Config parse_config(std::string_view yaml_text, const std::string& source,
                    const EnvLookup& env = process_env());
/// The same from a file; a missing/unreadable file is a ConfigError too.
Config load_config(const std::string& path, const EnvLookup& env = process_env());

/// The text of config/tierd.example.yaml, embedded at build time.
std::string_view default_config_text();

/// "host:port" / "[v6]:port" -> host, port; throws ConfigError at `path`.
std::pair<std::string, int> parse_listen(const std::string& value, const std::string& path,
                                         int line);

}  // namespace tierd
