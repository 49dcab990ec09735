// The config reader and the handler factories (handlers::resolve): no servers needed, plus
// `tierd --check-config` run as users run it.
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <map>

#include "config/config.hpp"
#include "handlers/registry.hpp"
#include "support/servers.hpp"

namespace {

using tierd::Config;
using tierd::ConfigError;
using namespace std::string_literals;

tierd::EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

const tierd::EnvLookup kNoEnv = env_of({});

// As --check-config, start and reload read a config: parsed, then every handler section
// through its factory.
Config parse(const std::string& yaml, const tierd::EnvLookup& env = kNoEnv) {
  Config c = tierd::parse_config(yaml, "test.yaml", env);
  (void)tierd::resolve(c);
  return c;
}

/// The message of the ConfigError `yaml` raises (fails the test if it parses).
std::string error_of(const std::string& yaml) {
  try {
    parse(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("config was accepted:\n" << yaml);
  return {};
}

struct Run {
  int status;
  std::string output;
};

// `env` goes before the command: "VAR=value " or "env -u VAR ".
Run run_tierd(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + std::string(TIERD_PATH) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
    out.append(buf, n);
  }
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace

namespace {
bool text_has_commented_webhook() {
  const std::string text(tierd::default_config_text());
  return text.find("#   type: webhook") != std::string::npos &&
         text.find("\n        type: webhook") == std::string::npos;
}
}  // namespace

TEST_CASE("the built-in default config is the documented example and is valid") {
  const Config c = tierd::parse_config(
      tierd::default_config_text(), "<built-in>",
      env_of({{"TIERD_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"}}));
  CHECK(c.redis_url == "redis://127.0.0.1:6379/0");
  CHECK(c.http_host == "127.0.0.1");
  CHECK(c.http_port == 9464);
  CHECK(c.subscribe == std::vector<std::string>{"events:*", "system:*", "notifications:*"});
  CHECK(c.max_message_bytes == 1048576);
  REQUIRE(c.handlers.size() == 5);
  CHECK(c.handlers[0].type == "invalidate");
  CHECK(c.handlers[0].on.size() == 2);
  // The demo table of scripts/demo_schema.sql, so scripts/run persists rows out of the box.
  CHECK(c.handlers[1].type == "write_behind");
  CHECK(c.handlers[1].on == std::vector<std::string>{"system:write_behind_flush"});
  CHECK(c.handlers[2].type == "warm");
  CHECK(c.handlers[3].type == "quota_alerts");
  CHECK(c.handlers[4].type == "notify");
  // The webhook sink stays commented out: no webhook exists by default.
  CHECK(text_has_commented_webhook());
  const std::string text(tierd::default_config_text());
  CHECK(text.find("- name: analysis_results") != std::string::npos);
  CHECK(text.find("key_columns: [project_id, code_hash]") != std::string::npos);
  // The example file on disk and the embedded text are the same.
  std::ifstream in(std::string(TIERD_SOURCE_DIR) + "/config/tierd.example.yaml");
  std::string disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(disk == tierd::default_config_text());
}

TEST_CASE("the built-in config without PostgreSQL is refused, naming the section and the fix") {
  try {
    (void)tierd::resolve(tierd::parse_config(tierd::default_config_text(), "<built-in>", kNoEnv));
    FAIL("no error");
  } catch (const tierd::ConfigError& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(e.path() == "handlers[1]");
    CHECK(e.line() > 0);
    CHECK_THAT(what, Catch::Contains("write_behind handler needs PostgreSQL"));
    CHECK_THAT(what, Catch::Contains("TIERD_POSTGRES_URL"));
  }
  // postgres.conninfo in the file works as well as the environment.
  const Config c = parse(
      "postgres:\n  conninfo: \"host=/tmp dbname=app\"\nhandlers:\n  - type: write_behind\n"
      "    on: [\"system:write_behind_flush\"]\n    tables:\n      - name: t\n"
      "        key_columns: [id]\n");
  CHECK(c.handlers.size() == 1);
}

TEST_CASE("a write_behind table with more columns than the worker takes is refused up front") {
  // --check-config passed, the daemon then threw at start (fuzz_config builds every
  // accepted config).
  std::string columns;
  for (int i = 0; i < 64; ++i) {
    columns += (columns.empty() ? "" : ", ") + std::string("c") + std::to_string(i);
  }
  const std::string yaml =
      "postgres:\n  conninfo: \"host=/tmp dbname=app\"\nhandlers:\n  - type: write_behind\n"
      "    on: [\"system:write_behind_flush\"]\n    tables:\n      - name: t\n"
      "        key_columns: [id]\n        columns: [" +
      columns + "]\n";
  try {
    parse(yaml);
    FAIL("no error");
  } catch (const tierd::ConfigError& e) {
    CHECK(e.path() == "handlers[0].tables[0].columns");
    CHECK_THAT(std::string(e.what()), Catch::Contains("at most 64 columns"));
  }
}

TEST_CASE("an empty config takes every default") {
  const Config c = parse("");
  CHECK(c.log_level == "info");
  CHECK(c.handlers.empty());
  CHECK(c.shutdown_timeout == std::chrono::milliseconds(10000));
}

TEST_CASE("handler common keys and type-specific keys are read") {
  const Config c = parse(R"(
handlers:
  - type: invalidate
    name: inv-a
    on: ["system:cache_invalidation"]
    max_concurrency: 3
    queue_limit: 7
    max_attempts: 5
    retry_backoff_ms: 50
    dedup_ttl_s: 600
    scan_batch: 10
)");
  REQUIRE(c.handlers.size() == 1);
  const auto& h = c.handlers[0];
  CHECK(h.name == "inv-a");
  CHECK(h.max_concurrency == 3);
  CHECK(h.queue_limit == 7);
  CHECK(h.max_attempts == 5);
  CHECK(h.retry_backoff == std::chrono::milliseconds(50));
  CHECK(h.dedup_ttl == std::chrono::seconds(600));
  const auto resolved = tierd::resolve(c);
  REQUIRE(resolved.size() == 1);
  CHECK(resolved[0].build);
}

TEST_CASE("broken configs are refused with the YAML path and line") {
  struct Case {
    const char* name;
    const char* yaml;
    const char* expect;  // substring of the message
  };
  const Case cases[] = {
      {"unknown top-level key", "redis:\n  url: redis://127.0.0.1:6379\nbogus: 1\n",
       "bogus (line 3): unknown key"},
      {"unknown nested key", "redis:\n  url: redis://127.0.0.1:6379\n  colour: blue\n",
       "redis.colour (line 3): unknown key"},
      {"wrong type: string for integer", "max_message_bytes: lots\n",
       "max_message_bytes (line 1): expected an integer"},
      {"wrong type: list for string", "log_level: [info]\n",
       "log_level (line 1): expected a string"},
      {"wrong type: number for list", "subscribe: 5\n", "subscribe (line 1): expected a list"},
      {"out of range", "shutdown_timeout_ms: 0\n", "shutdown_timeout_ms (line 1): must be between"},
      {"overlapping patterns", "subscribe:\n  - events:*\n  - events:version_*\n",
       "subscribe[1] (line 3): 'events:version_*' overlaps subscribe[0] 'events:*'"},
      {"overlapping patterns via classes", "subscribe:\n  - \"a:[xy]1\"\n  - \"a:?1\"\n",
       "subscribe[1] (line 3)"},
      {"password in the Redis URL", "redis:\n  url: redis://:hunter2@127.0.0.1:6379/0\n",
       "redis.url (line 2): the URL contains a password"},
      // Both are passwords to the URL parser (found by tests/fuzz/fuzz_config).
      {"password without a user in the Redis URL", "redis:\n  url: redis://hunter2@h:6379/0\n",
       "redis.url (line 2): the URL contains a password"},
      {"password holding a '/' in the Redis URL", "redis:\n  url: redis://:hun/ter2@h:6379/0\n",
       "redis.url (line 2): the URL contains a password"},
      {"password key", "redis:\n  password: hunter2\n", "TIERD_REDIS_PASSWORD"},
      {"password in the PostgreSQL conninfo",
       "postgres:\n  conninfo: \"host=x dbname=y password=hunter2\"\n",
       "postgres.conninfo (line 2): the conninfo contains a password"},
      {"password in a PostgreSQL URL", "postgres:\n  conninfo: postgresql://u:pw@h/db\n",
       "postgres.conninfo (line 2)"},
      {"bad Redis URL", "redis:\n  url: http://example.com\n",
       "redis.url (line 2): invalid Redis URL"},
      {"bad listen host", "http:\n  listen: example.com:80\n",
       "http.listen (line 2): invalid listen address 'example.com:80': host must be an IP address"},
      {"bad listen port", "http:\n  listen: 127.0.0.1:99999\n",
       "http.listen (line 2): invalid listen address '127.0.0.1:99999': port must be"},
      {"listen host with a NUL", "http:\n  listen: \"127.0.0.1\\0junk:80\"\n",
       "http.listen (line 2): invalid listen address '127.0.0.1\\x00junk:80': control byte"},
      {"bad log level", "log_level: loud\n", "log_level (line 1): unknown log level"},
      {"unknown handler type", "handlers:\n  - type: teleport\n    on: [\"events:*\"]\n",
       "handlers[0].type (line 2): unknown handler type 'teleport' (known: count, invalidate"},
      {"handler without on", "handlers:\n  - type: invalidate\n",
       "handlers[0].on (line 2): required key is missing"},
      {"handler glob that is never delivered",
       "handlers:\n  - type: invalidate\n    on: [\"other:*\"]\n",
       "handlers[0].on[0] (line 3): 'other:*' matches no channel"},
      {"unknown handler key",
       "handlers:\n  - type: invalidate\n    on: [\"system:*\"]\n    speed: 3\n",
       "handlers[0].speed (line 4): unknown key"},
      {"count takes no keys of its own",
       "handlers:\n  - type: count\n    on: [\"events:*\"]\n    rules: []\n",
       "handlers[0].rules (line 4): unknown key"},
      {"count without on", "handlers:\n  - type: count\n",
       "handlers[0].on (line 2): required key is missing"},
      {"wrong handler key type",
       "handlers:\n  - type: invalidate\n    on: [\"system:*\"]\n    max_concurrency: many\n",
       "handlers[0].max_concurrency (line 4): expected an integer"},
      {"negative dedup_ttl_s",
       "handlers:\n  - type: invalidate\n    on: [\"system:*\"]\n    dedup_ttl_s: -1\n",
       "handlers[0].dedup_ttl_s (line 4): must be between"},
      {"dedup_ttl_s longer than 30 days",
       "handlers:\n  - type: invalidate\n    on: [\"system:*\"]\n    dedup_ttl_s: 2592001\n",
       "handlers[0].dedup_ttl_s (line 4): must be between"},
      {"dedup_ttl_s not a number",
       "handlers:\n  - type: invalidate\n    on: [\"system:*\"]\n    dedup_ttl_s: 1h\n",
       "handlers[0].dedup_ttl_s (line 4): expected an integer"},
      {"duplicate handler names",
       "handlers:\n  - type: invalidate\n    on: [\"system:*\"]\n  - type: invalidate\n    on: "
       "[\"events:*\"]\n",
       "handlers[1].name (line 4): handler name 'invalidate' is already used"},
      {"rule template without a literal prefix",
       "handlers:\n  - type: invalidate\n    on: [\"events:*\"]\n    rules:\n      - on: "
       "events:x\n        invalidate: [\"{project_id}:*\"]\n",
       "handlers[0].rules[0].invalidate[0] (line 6): key template"},
      {"rule template with a bad placeholder",
       "handlers:\n  - type: invalidate\n    on: [\"events:*\"]\n    rules:\n      - on: "
       "events:x\n        invalidate: [\"project:{a b}:*\"]\n",
       "handlers[0].rules[0].invalidate[0] (line 6): placeholder {a b}"},
      {"unknown rule key",
       "handlers:\n  - type: invalidate\n    on: [\"events:*\"]\n    rules:\n      - when: x\n",
       "handlers[0].rules[0].when (line 5): unknown key"},
      {"YAML syntax error", "redis: [\n", "YAML syntax"},
      {"glob characters in the namespace", "namespace: \"a*\"\n", "namespace (line 1)"},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      const std::string msg = error_of(c.yaml);
      INFO(msg);
      CHECK(msg.find(c.expect) != std::string::npos);
      CHECK(msg.find("hunter2") == std::string::npos);  // secrets never echoed
    }
  }
}

TEST_CASE("a malformed conninfo is named without the password libpq would quote") {
  // libpq's message quotes the token it cannot decode (tests/fuzz/fuzz_endpoint checks this).
  auto error_with = [](const std::string& conninfo) {
    try {
      parse("", env_of({{"TIERD_POSTGRES_URL", conninfo}}));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string uri = error_with("postgresql://app:sec%zzret@db/app");
  CHECK_THAT(uri, Catch::Contains("invalid percent-encoded token"));
  CHECK_THAT(uri, !Catch::Contains("sec"));
  const std::string words = error_with("host=db password=my secret");
  CHECK_THAT(words, Catch::Contains("missing"));
  CHECK_THAT(words, !Catch::Contains("secret"));
  // Without a password anywhere, libpq's message is shown whole.
  CHECK_THAT(error_with("host=db hots=x"), Catch::Contains("invalid connection option \"hots\""));
  CHECK_THAT(error_with("host=db\0password=x"s), Catch::Contains("NUL"));
}

TEST_CASE("the environment overrides the file, and its values are checked too") {
  const std::string yaml = "redis:\n  url: redis://10.0.0.1:6379/0\nlog_level: info\n";
  const Config c = parse(yaml, env_of({{"TIERD_REDIS_URL", "redis://:pw@127.0.0.2:6380/1"},
                                       {"TIERD_HTTP_LISTEN", "[::1]:0"},
                                       {"TIERD_LOG_LEVEL", "debug"},
                                       {"TIERD_POSTGRES_URL", "postgresql://u:pw@h/db"}}));
  // A password is fine in the environment (that is where it belongs).
  CHECK(c.redis_url == "redis://:pw@127.0.0.2:6380/1");
  CHECK(c.http_host == "::1");
  CHECK(c.http_port == 0);
  CHECK(c.log_level == "debug");
  CHECK(c.postgres_conninfo == "postgresql://u:pw@h/db");
  try {
    parse(yaml, env_of({{"TIERD_LOG_LEVEL", "chatty"}}));
    FAIL("accepted a bad TIERD_LOG_LEVEL");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("TIERD_LOG_LEVEL (environment)") != std::string::npos);
  }
}

TEST_CASE("log_format: text or json, from the file or TIERD_LOG_FORMAT; anything else is refused") {
  const std::string base = "redis:\n  url: redis://10.0.0.1:6379/0\n";
  CHECK(parse(base, env_of({})).log_format == "text");
  CHECK(parse(base + "log_format: json\n", env_of({})).log_format == "json");
  CHECK(parse(base + "log_format: json\n", env_of({{"TIERD_LOG_FORMAT", "text"}})).log_format ==
        "text");
  auto error = [&](const std::string& yaml, const std::map<std::string, std::string>& env) {
    try {
      parse(yaml, env_of(env));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK_THAT(error(base + "log_format: xml\n", {}),
             Catch::Contains("log_format") && Catch::Contains("unknown log format 'xml'"));
  CHECK_THAT(error(base + "log_format: [json]\n", {}), Catch::Contains("log_format"));
  CHECK_THAT(error(base, {{"TIERD_LOG_FORMAT", "logfmt"}}),
             Catch::Contains("TIERD_LOG_FORMAT (environment)"));
}

TEST_CASE("validate: all (the default) or when_parsed; anything else is refused by path") {
  const std::string base = "redis:\n  url: redis://10.0.0.1:6379/0\n";
  CHECK(parse(base, env_of({})).validate == tierd::Config::Validate::all);
  CHECK(parse(base + "validate: when_parsed\n", env_of({})).validate ==
        tierd::Config::Validate::when_parsed);
  CHECK(parse(base + "validate: all\n", env_of({})).validate == tierd::Config::Validate::all);
  for (const char* bad : {"validate: sometimes\n", "validate: [all]\n", "validate: ''\n"}) {
    INFO(bad);
    try {
      parse(base + bad, env_of({}));
      FAIL("accepted");
    } catch (const ConfigError& e) {
      CHECK_THAT(std::string(e.what()), Catch::Contains("validate"));
    }
  }
}

TEST_CASE("tierd --check-config: exit 0 for a valid file, 78 with path and line otherwise") {
  tiertest::TempDir dir("checkcfg");
  auto write = [&](const std::string& name, const std::string& text) {
    const std::string p = dir.path() + "/" + name;
    std::ofstream(p) << text;
    return p;
  };
  const std::string example = std::string(TIERD_SOURCE_DIR) + "/config/tierd.example.yaml";
  const Run ok = run_tierd("--check-config " + example,
                           "TIERD_POSTGRES_URL=postgresql://postgres@127.0.0.1:1/postgres ");
  INFO(ok.output);
  CHECK(ok.status == 0);
  CHECK(ok.output.find("ok (5 handler(s))") != std::string::npos);
  // Its write_behind section needs PostgreSQL from the file or the environment.
  const Run no_pg = run_tierd("--check-config " + example, "env -u TIERD_POSTGRES_URL ");
  INFO(no_pg.output);
  CHECK(no_pg.status == 78);
  CHECK(no_pg.output.find("handlers[1] (line") != std::string::npos);
  CHECK(no_pg.output.find("set TIERD_POSTGRES_URL") != std::string::npos);

  const Run bad = run_tierd("--check-config " +
                            write("bad.yaml",
                                  "subscribe: [\"events:*\"]\nhandlers:\n  - type: invalidate\n"
                                  "    on: [\"events:*\"]\n  - type: invalidate\n    name: b\n"
                                  "    on:\n      - \"nothing:*\"\n"));
  INFO(bad.output);
  CHECK(bad.status == 78);
  CHECK(bad.output.find("bad.yaml: handlers[1].on[0] (line 8)") != std::string::npos);

  const Run secret =
      run_tierd("--check-config " + write("secret.yaml", "redis:\n  url: redis://:s3cr3t@h:1\n"));
  CHECK(secret.status == 78);
  CHECK(secret.output.find("s3cr3t") == std::string::npos);
  CHECK(secret.output.find("TIERD_REDIS_PASSWORD") != std::string::npos);

  // The same corpus as users meet it: each exits 78 naming the file, path and line.
  const std::pair<const char*, const char*> corpus[] = {
      {"log_level: info\nspeling: 1\n", "speling (line 2): unknown key"},
      {"redis:\n  connect_timeout_ms: soon\n", "redis.connect_timeout_ms (line 2)"},
      {"subscribe: [\"events:*\", \"events:version_*\"]\n", "subscribe[1] (line 1)"},
      {"postgres:\n  conninfo: \"dbname=x password=pw\"\n", "postgres.conninfo (line 2)"},
      {"redis:\n  url: \"redis://[::1\"\n", "redis.url (line 2)"},
      {"handlers:\n  - type: warp\n    on: [\"events:*\"]\n", "handlers[0].type (line 2)"},
  };
  int n = 0;
  for (const auto& [yaml, expect] : corpus) {
    const std::string name = "c" + std::to_string(n++) + ".yaml";
    const Run r = run_tierd("--check-config " + write(name, yaml));
    INFO(r.output);
    CHECK(r.status == 78);
    CHECK(r.output.find(name + ": " + expect) != std::string::npos);
  }

  const Run missing = run_tierd("--check-config " + dir.path() + "/nope.yaml");
  CHECK(missing.status == 78);
  CHECK(missing.output.find("cannot read") != std::string::npos);

  CHECK(run_tierd("--version").output.find("tierd ") == 0);
  CHECK(run_tierd("--bogus").status == 64);
}
