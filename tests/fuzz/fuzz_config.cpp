// The config reader, as `tierd --check-config` runs it: parse_config() (YAML, typed core
// settings, every handler factory). Any input either parses or throws tierd::ConfigError;
// anything else escaping would end the daemon in std::terminate instead of "exit 78".
//
// A config that parses must also start: its handler builders ("build what cannot fail",
// handler.hpp) run here against a context whose Redis and PostgreSQL links are never
// started, and must not throw. And no password may have come from the file.
//
// The environment is not read: parse_config gets an empty lookup, and the variables that
// tier::RedisEndpoint::parse consults itself are unset before the first input.

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeinfo>

#include "config/config.hpp"
#include "config/error.hpp"
#include "handlers/handler.hpp"
#include "handlers/registry.hpp"
#include "tier/endpoint.hpp"
#include "tier/metrics.hpp"
#include "tier/pg/conn.hpp"
#include "tier/uv/async_client.hpp"

namespace {

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_config: %s\n", what.c_str());
  std::abort();
}

// Links that exist but never connect: the builders only keep references to them.
struct Links {
  uv_loop_t loop{};
  std::unique_ptr<tier::AsyncClient> redis;
  std::unique_ptr<tier::PgConn> postgres;
  std::shared_ptr<spdlog::logger> log;

  Links() {
    uv_loop_init(&loop);
    redis = std::make_unique<tier::AsyncClient>(&loop, tier::AsyncOptions{});
    tier::PgOptions po;
    po.conninfo = "host=/nonexistent dbname=fuzz";
    postgres = std::make_unique<tier::PgConn>(&loop, po);
    log = std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
  }
};

Links& links() {
  static Links* l = new Links();  // never destroyed: handlers of the last input may refer to it
  return *l;
}

class FuzzContext final : public tierd::Context {
 public:
  FuzzContext(tier::metrics::Registry& metrics, std::string prefix, std::string name)
      : metrics_(metrics), prefix_(std::move(prefix)), name_(std::move(name)) {}

  tier::AsyncClient& redis() override { return *links().redis; }
  tier::AsyncClient& redis_connection(const std::string&, std::chrono::milliseconds) override {
    finding("a handler builder opened a connection (it must wait for start())");
  }
  tier::PgConn* postgres() override { return links().postgres.get(); }
  tierd::TimerHandle start_timer(std::chrono::milliseconds, std::chrono::milliseconds,
                                 std::function<void()>) override {
    finding("a handler builder started a timer (it must wait for start())");
  }
  tier::uv::HttpClient& http() override {
    finding("a handler builder made an HTTP client (it must wait for start())");
  }
  tierd::LeadershipHandle lead(const std::string&, std::chrono::milliseconds,
                               std::function<void(bool)>) override {
    finding("a handler builder campaigned for leadership (it must wait for start())");
  }
  tier::metrics::Registry& metrics() override { return metrics_; }
  spdlog::logger& log() override { return *links().log; }
  void report_ready(const std::string&, const std::string&, bool) override {}
  const std::string& instance_id() const override { return instance_; }
  const std::string& key_prefix() const override { return prefix_; }
  const std::string& handler_name() const override { return name_; }

 private:
  tier::metrics::Registry& metrics_;
  std::string prefix_;
  std::string name_;
  std::string instance_ = "fuzz:1";
};

std::optional<std::string> no_env(const char*) {
  return std::nullopt;
}

void check_accepted(const tierd::Config& c, const tierd::ResolvedHandlers& handlers) {
  // Passwords come from the environment only (DESIGN §6), and it is empty here.
  try {
    const auto ep = tier::RedisEndpoint::parse_url(c.redis_url);
    if (!ep.password.empty()) {
      finding("a Redis URL with a password was accepted from the file: " + c.redis_url);
    }
  } catch (const std::exception& e) {
    finding("an accepted Redis URL does not parse: " + std::string(e.what()));
  }
  if (c.subscribe.empty()) {
    finding("no subscribe pattern");
  }
  tier::metrics::Registry metrics;
  if (handlers.size() != c.handlers.size()) {
    finding("resolve() returned another number of handlers than the config has");
  }
  for (const auto& [h, build] : handlers) {
    if (!build) {
      finding("handler " + h.yaml_path + " has no builder");
    }
    FuzzContext ctx(metrics, c.key_prefix, h.name);
    try {
      auto handler = build(ctx);
      if (!handler) {
        finding("handler " + h.yaml_path + " built nothing");
      }
      (void)handler->required_fields();
      (void)handler->needs_body();
    } catch (const std::exception& e) {
      finding("handler " + h.yaml_path + " (" + h.type + ") passed the config check but its " +
              "builder threw " + typeid(e).name() + ": " + e.what());
    }
  }
  // Closed handles (none are expected) are freed by a turn of the loop.
  uv_run(&links().loop, UV_RUN_NOWAIT);
}

}  // namespace

namespace {

// The environment handlers see (notify's header values name variables): one secret.
constexpr std::string_view kSecret = "Zq7FuzzSecret";
std::optional<std::string> secret_env(const char* name) {
  if (std::string_view(name) == "TIERD_FUZZ_SECRET") {
    return std::string(kSecret);
  }
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  for (const char* v :
       {"TIERD_REDIS_PASSWORD", "TIERD_REDIS_PASSWORD_FILE", "REDISCLI_AUTH", "TIERD_REDIS_URL",
        "TIERD_POSTGRES_URL", "TIERD_HTTP_LISTEN", "TIERD_LOG_LEVEL"}) {
    ::unsetenv(v);
  }
  spdlog::set_level(spdlog::level::off);
  (void)links();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::optional<tierd::Config> config;
  tierd::ResolvedHandlers handlers;
  try {
    // As --check-config: parsed, then every handler section through its factory.
    config = tierd::parse_config(text, "fuzz.yaml", no_env);
    handlers = tierd::resolve(*config, secret_env);
  } catch (const tierd::ConfigError& e) {
    // A header value that names the secret's variable must never put it in an error (unless
    // the input itself spells the secret, which an error may quote).
    if (text.find(kSecret) == std::string_view::npos &&
        std::string_view(e.what()).find(kSecret) != std::string_view::npos) {
      finding(std::string("a config error shows a secret from the environment: ") + e.what());
    }
    return 0;  // refused, with a YAML path: what it is for
  } catch (const std::exception& e) {
    finding(std::string("parse_config threw ") + typeid(e).name() +
            " instead of ConfigError: " + e.what());
  } catch (...) {
    finding("parse_config threw something that is not a std::exception");
  }
  check_accepted(*config, handlers);
  return 0;
}
