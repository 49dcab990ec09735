#include "config/config.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include "config/glob.hpp"
#include "config/yaml.hpp"
#include "tier/endpoint.hpp"
#include "tier/errors.hpp"
#include "tier/keys.hpp"
#include "tier/listen.hpp"

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

// libpq's parse errors quote part of the input: an option name, but also a malformed
// percent-encoded token, the whole URI, or the word after an unquoted value with a space,
// any of which can be (part of) the password. When the input could hold a password, the
// quoted part (from the first quote to the last) is withheld.
std::string libpq_message_without_secrets(std::string what, const std::string& conninfo) {
  std::string lower = conninfo;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const bool may_hold_password =
      lower.find("pass") != std::string::npos || conninfo.find_first_of("@%") != std::string::npos;
  const auto first = what.find('"');
  const auto last = what.rfind('"');
  if (may_hold_password && first != std::string::npos) {
    what = what.substr(0, first) + "\"...\"" + (last > first ? what.substr(last + 1) : "") +
           " (the quoted part is not shown: it may hold the password)";
  }
  return what;
}

void check_postgres(const std::string& conninfo, const std::string& path, int line,
                    bool from_file) {
  if (conninfo.find('\0') != std::string::npos) {
    // libpq would read up to the NUL and silently drop the rest.
    throw ConfigError(path, line, "invalid PostgreSQL conninfo: it contains a NUL byte");
  }
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    std::string what = err != nullptr ? err : "out of memory";
    PQfreemem(err);
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) {
      what.pop_back();
    }
    throw ConfigError(
        path, line,
        "invalid PostgreSQL conninfo: " + libpq_message_without_secrets(what, conninfo));
  }
  bool has_password = false;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (std::string(o->keyword) == "password" && o->val != nullptr && o->val[0] != '\0') {
      has_password = true;
    }
  }
  PQconninfoFree(opts);
  if (from_file && has_password) {
    throw ConfigError(path, line,
                      "the conninfo contains a password; remove it from the file and use "
                      "PGPASSWORD or ~/.pgpass (or TIERD_POSTGRES_URL) instead");
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
      reachable = reachable || globs_overlap(s, h.on[i]);
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
  h.yaml_path = path;
}

}  // namespace

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
                {"redis", "postgres", "http", "log_level", "namespace", "subscribe",
                 "max_message_bytes", "shutdown_timeout_ms", "handlers"});

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
      if (globs_overlap(c.subscribe[i], c.subscribe[j])) {
        throw ConfigError(pj, line,
                          "'" + c.subscribe[j] + "' overlaps subscribe[" + std::to_string(i) +
                              "] '" + c.subscribe[i] +
                              "': a channel matching both would be delivered twice");
      }
    }
  }
  c.max_message_bytes =
      static_cast<std::size_t>(top.integer("max_message_bytes", 1 << 20, 64, 512LL << 20));
  c.shutdown_timeout =
      std::chrono::milliseconds(top.integer("shutdown_timeout_ms", 10000, 1, 3600 * 1000));

  // The first write_behind section, for the PostgreSQL check once the environment is in.
  std::string write_behind_path;
  int write_behind_line = 0;
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
      const Factory* factory = find_factory(h.type);
      if (factory == nullptr) {
        std::string known;
        for (const auto& t : handler_types()) {
          known += (known.empty() ? "" : ", ") + t;
        }
        yaml::fail(
            type, path + ".type",
            "unknown handler type '" + tier::excerpt(h.type, 40) + "' (known: " + known + ")");
      }
      h.build = (*factory)(section, path);
      if (h.type == "write_behind" && write_behind_path.empty()) {
        write_behind_path = path;
        write_behind_line = yaml::line_of(section);
      }
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
    check_postgres(c.postgres_conninfo, env_path("TIERD_POSTGRES_URL"), 0, false);
  }
  // Refused here rather than when the handler starts: --check-config and a reload say so
  // too, and the message tells where the URL goes.
  if (!write_behind_path.empty() && c.postgres_conninfo.empty()) {
    throw ConfigError(write_behind_path, write_behind_line,
                      "the write_behind handler needs PostgreSQL: set TIERD_POSTGRES_URL (or "
                      "postgres.conninfo), or remove this handler section");
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
