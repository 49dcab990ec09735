#include "config/config.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include "config/yaml.hpp"
#include "tier/endpoint.hpp"
#include "tier/errors.hpp"
#include "tier/glob.hpp"
#include "tier/keys.hpp"
#include "tier/listen.hpp"
#include "tier/pg/conninfo.hpp"

namespace tierd {

namespace {

constexpr const char* kEnvHint = "; passwords come from the environment (TIERD_REDIS_PASSWORD)";

std::string env_path(const char* var) {
  return std::string(var) + " (environment)";
}

void check_redis_url(const std::string& url, const std::string& path, int line, bool from_file) {
  try {
    // The parser says what it would send as a password, so no spelling of one slips past
    // (redis://secret@host is one, as for redis-cli; so is a password holding a '/').
    if (from_file && !tier::RedisEndpoint::parse_url(url).password.empty()) {
      throw ConfigError(path, line,
                        "the URL contains a password; remove it from the file and set "
                        "TIERD_REDIS_PASSWORD in the environment instead");
    }
    (void)tier::RedisEndpoint::parse(url);
  } catch (const tier::TierError& e) {
    throw ConfigError(path, line, std::string("invalid Redis URL: ") + e.what() + kEnvHint);
  }
}

void check_postgres(const std::string& conninfo, const std::string& path, int line,
                    bool from_file) {
  tier::ConninfoParts parts;
  try {
    parts = tier::parse_conninfo(conninfo);
  } catch (const tier::InvalidArgument& e) {
    throw ConfigError(path, line, e.what());
  }
  if (from_file && parts.has_password) {
    throw ConfigError(path, line,
                      "the conninfo contains a password; remove it from the file and use "
                      "PGPASSWORD or ~/.pgpass (or TIERD_POSTGRES_URL) instead");
  }
}

void check_log_format(const std::string& format, const std::string& path, int line) {
  if (format != "text" && format != "json") {
    throw ConfigError(path, line,
                      "unknown log format '" + tier::excerpt(format, 40) + "' (text, json)");
  }
}

void check_log_level(const std::string& level, const std::string& path, int line) {
  static const char* const kLevels[] = {"trace", "debug",    "info", "warn",
                                        "error", "critical", "off"};
  for (const char* l : kLevels) {
    if (level == l) {
      return;
    }
  }
  throw ConfigError(path, line,
                    "unknown log level '" + tier::excerpt(level, 40) +
                        "' (trace, debug, info, warn, error, critical, off)");
}

void check_glob(const std::string& glob, const std::string& path, int line) {
  if (auto e = tier::check_id(glob, "pattern")) {
    throw ConfigError(path, line, e->message);
  }
}

// Reads the keys the core owns from a handler section the factory already checked.
void read_common(const YAML::Node& node, const std::string& path, HandlerConfig& h,
                 const std::vector<std::string>& subscribe) {
  std::vector<std::string> keys;
  for (auto it = node.begin(); it != node.end(); ++it) {
    keys.push_back(it->first.Scalar());
  }
  yaml::Map m(node, path, keys);
  h.name = m.string("name", h.type);
  if (h.name.empty() || h.name.size() > 64 ||
      h.name.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
          std::string::npos) {
    yaml::fail(m.has("name") ? m.get("name") : node, m.path_of("name"),
               "a handler name is 1-64 characters of letters, digits, '_' and '-'");
  }
  if (!m.has("on")) {
    yaml::fail(node, m.path_of("on"), "required key is missing (the channel globs to handle)");
  }
  h.on = m.strings("on", {});
  if (h.on.empty()) {
    yaml::fail(m.get("on"), m.path_of("on"), "needs at least one channel glob");
  }
  for (std::size_t i = 0; i < h.on.size(); ++i) {
    const std::string p = m.path_of("on") + "[" + std::to_string(i) + "]";
    const int line = yaml::line_of(m.get("on")[i]);
    check_glob(h.on[i], p, line);
    bool reachable = false;
    for (const auto& s : subscribe) {
      reachable = reachable || tier::globs_overlap(s, h.on[i]);
    }
    if (!reachable) {
      throw ConfigError(p, line,
                        "'" + h.on[i] +
                            "' matches no channel of the subscribe patterns, so the "
                            "handler would never run");
    }
  }
  h.max_concurrency = static_cast<std::size_t>(m.integer("max_concurrency", 16, 1, 10000));
  h.queue_limit = static_cast<std::size_t>(m.integer("queue_limit", 10000, 1, 10000000));
  h.max_attempts = static_cast<std::uint32_t>(m.integer("max_attempts", 3, 1, 100));
  h.retry_backoff = std::chrono::milliseconds(m.integer("retry_backoff_ms", 200, 1, 3600 * 1000));
  h.dedup_ttl = std::chrono::seconds(m.integer("dedup_ttl_s", 0, 0, 30 * 86400));
  h.dedup_ttl_set = m.has("dedup_ttl_s");
  h.yaml_path = path;
}

}  // namespace

const std::vector<std::string>& common_handler_keys() {
  static const std::vector<std::string> keys{
      "type",
      "name",
      "on",
      "max_concurrency",
      "queue_limit",
      "max_attempts",
      "retry_backoff_ms",
      "dedup_ttl_s",
  };
  return keys;
}

EnvLookup process_env() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr) {
      return std::nullopt;
    }
    return std::string(v);
  };
}

std::pair<std::string, int> parse_listen(const std::string& value, const std::string& path,
                                         int line) {
  try {
    const auto a = tier::ListenAddress::parse(value);
    return {a.host, a.port};
  } catch (const tier::InvalidArgument& e) {
    throw ConfigError(path, line, e.what());
  }
}

Config parse_config(std::string_view yaml_text, const std::string& source, const EnvLookup& env) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    throw ConfigError(source, e.mark.line >= 0 ? e.mark.line + 1 : 0, "YAML syntax: " + e.msg);
  }
  Config c;
  c.source = source;
  if (root.IsNull()) {
    root = YAML::Node(YAML::NodeType::Map);
  }
  yaml::Map top(root, "",
                {"redis", "postgres", "http", "log_level", "log_format", "namespace", "subscribe",
                 "max_message_bytes", "validate", "shutdown_timeout_ms", "handlers"});

  int redis_url_line = 0;
  if (top.has("redis")) {
    yaml::Map r(top.get("redis"), "redis", {"url", "connect_timeout_ms", "command_timeout_ms"});
    c.redis_url = r.string("url", c.redis_url);
    redis_url_line = yaml::line_of(r.get("url"));
    c.redis_connect_timeout =
        std::chrono::milliseconds(r.integer("connect_timeout_ms", 2000, 1, 600000));
    c.redis_command_timeout =
        std::chrono::milliseconds(r.integer("command_timeout_ms", 2000, 1, 600000));
    check_redis_url(c.redis_url, "redis.url", redis_url_line, true);
  }
  if (top.has("postgres")) {
    yaml::Map p(top.get("postgres"), "postgres", {"conninfo"});
    c.postgres_conninfo = p.string("conninfo", "");
    if (!c.postgres_conninfo.empty()) {
      check_postgres(c.postgres_conninfo, "postgres.conninfo", yaml::line_of(p.get("conninfo")),
                     true);
    }
  }
  if (top.has("http")) {
    yaml::Map h(top.get("http"), "http", {"listen"});
    if (h.has("listen")) {
      auto [host, port] =
          parse_listen(h.required_string("listen"), "http.listen", yaml::line_of(h.get("listen")));
      c.http_host = host;
      c.http_port = port;
    }
  }
  if (top.has("log_level")) {
    c.log_level = top.required_string("log_level");
    check_log_level(c.log_level, "log_level", yaml::line_of(top.get("log_level")));
  }
  if (top.has("log_format")) {
    c.log_format = top.required_string("log_format");
    check_log_format(c.log_format, "log_format", yaml::line_of(top.get("log_format")));
  }
  c.key_prefix = top.string("namespace", "");
  if (!c.key_prefix.empty()) {
    if (auto e = tier::check_id(c.key_prefix, "namespace")) {
      yaml::fail(top.get("namespace"), "namespace", e->message);
    }
    if (tier::glob_escape(c.key_prefix) != c.key_prefix) {
      yaml::fail(top.get("namespace"), "namespace",
                 "must not contain glob characters (* ? [ ] \\): it is put in SCAN patterns");
    }
  }
  c.subscribe = top.strings("subscribe", c.subscribe);
  if (c.subscribe.empty()) {
    yaml::fail(top.get("subscribe"), "subscribe", "needs at least one pattern");
  }
  for (std::size_t j = 0; j < c.subscribe.size(); ++j) {
    const std::string pj = "subscribe[" + std::to_string(j) + "]";
    const int line = top.has("subscribe") ? yaml::line_of(top.get("subscribe")[j]) : 0;
    check_glob(c.subscribe[j], pj, line);
    for (std::size_t i = 0; i < j; ++i) {
      if (tier::globs_overlap(c.subscribe[i], c.subscribe[j])) {
        throw ConfigError(pj, line,
                          "'" + c.subscribe[j] + "' overlaps subscribe[" + std::to_string(i) +
                              "] '" + c.subscribe[i] +
                              "': a channel matching both would be delivered twice");
      }
    }
  }
  c.max_message_bytes =
      static_cast<std::size_t>(top.integer("max_message_bytes", 1 << 20, 64, 512LL << 20));
  if (top.has("validate")) {
    const std::string v = top.required_string("validate");
    if (v == "all") {
      c.validate = Config::Validate::all;
    } else if (v == "when_parsed") {
      c.validate = Config::Validate::when_parsed;
    } else {
      yaml::fail(top.get("validate"), "validate",
                 "unknown mode '" + tier::excerpt(v, 40) + "' (all, when_parsed)");
    }
  }
  c.shutdown_timeout =
      std::chrono::milliseconds(top.integer("shutdown_timeout_ms", 10000, 1, 3600 * 1000));

  if (top.has("handlers")) {
    YAML::Node hs = top.get("handlers");
    if (!hs.IsSequence()) {
      yaml::fail(hs, "handlers", "expected a list of handler sections");
    }
    for (std::size_t i = 0; i < hs.size(); ++i) {
      const std::string path = "handlers[" + std::to_string(i) + "]";
      const YAML::Node section = hs[i];
      if (!section.IsMap()) {
        yaml::fail(section, path, "expected a mapping with at least `type` and `on`");
      }
      HandlerConfig h;
      const YAML::Node type = section["type"];
      if (!type) {
        yaml::fail(section, path + ".type", "required key is missing");
      }
      h.type = yaml::as_string(type, path + ".type");
      h.section = section;
      read_common(section, path, h, c.subscribe);
      for (const auto& other : c.handlers) {
        if (other.name == h.name) {
          yaml::fail(section, path + ".name",
                     "handler name '" + h.name + "' is already used by " + other.yaml_path +
                         "; give each instance its own `name`");
        }
      }
      c.handlers.push_back(std::move(h));
    }
  }

  // The environment wins over the file (containers).
  if (auto v = env("TIERD_REDIS_URL"); v && !v->empty()) {
    c.redis_url = *v;
    check_redis_url(c.redis_url, env_path("TIERD_REDIS_URL"), 0, false);
  }
  if (auto v = env("TIERD_POSTGRES_URL"); v && !v->empty()) {
    c.postgres_conninfo = *v;
    c.postgres_conninfo_from_env = true;
    check_postgres(c.postgres_conninfo, env_path("TIERD_POSTGRES_URL"), 0, false);
  }
  if (auto v = env("TIERD_HTTP_LISTEN"); v && !v->empty()) {
    auto [host, port] = parse_listen(*v, env_path("TIERD_HTTP_LISTEN"), 0);
    c.http_host = host;
    c.http_port = port;
  }
  if (auto v = env("TIERD_LOG_LEVEL"); v && !v->empty()) {
    check_log_level(*v, env_path("TIERD_LOG_LEVEL"), 0);
    c.log_level = *v;
  }
  if (auto v = env("TIERD_LOG_FORMAT"); v && !v->empty()) {
    check_log_format(*v, env_path("TIERD_LOG_FORMAT"), 0);
    c.log_format = *v;
  }
  return c;
}

Config load_config(const std::string& path, const EnvLookup& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError(path, 0, "cannot read the config file");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, env);
}

}  // namespace tierd
