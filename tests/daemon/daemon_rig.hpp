#pragma once
// A tierd App on a test loop against a real redis-server, shared by the daemon tests.

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "daemon/app.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/metrics.hpp"
#include "tier/op.hpp"

namespace tierd_test {

using namespace std::chrono_literals;
using tier::metrics::Labels;

inline std::shared_ptr<spdlog::logger> quiet_logger() {
  auto l =
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
  return l;
}

inline const tierd::EnvLookup kNoEnv = [](const char*) -> std::optional<std::string> {
  return std::nullopt;
};

/// A tierd App on its own loop, subscribed to the harness's Redis, keys under `keys`.
struct Daemon {
  explicit Daemon(const std::string& handlers_yaml, const std::string& name,
                  const std::string& config_path = "", const std::string& postgres = "",
                  tiertest::RedisServer& server = tiertest::redis(),
                  const std::string& redis_extra = "", const tierd::EnvLookup& env = kNoEnv)
      : client(server.client()), keys(client, name) {
    yaml = (postgres.empty() ? "" : "postgres:\n  conninfo: \"" + postgres + "\"\n") +
           "redis:\n  url: " + server.url() + "\n" + redis_extra +
           "http:\n  listen: 127.0.0.1:0\nnamespace: \"" + keys.prefix() +
           "\"\nshutdown_timeout_ms: 3000\n" + handlers_yaml;
    tierd::AppOptions o;
    o.config = tierd::parse_config(yaml, "test.yaml", env);
    o.config_path = config_path;
    o.env = env;
    o.handle_signals = false;
    o.logger = quiet_logger();
    app = std::make_unique<tierd::App>(loop.get(), std::move(o));
    REQUIRE(app->start().ok());
    REQUIRE(loop.run_until([&] { return app->readiness().ready; }, 5s));
  }
  ~Daemon() {
    app->shutdown();
    loop.run_until([&] { return app->finished(); }, 5s);
    app.reset();
    loop.run_until([] { return false; }, 50ms);  // let close callbacks run
  }

  void set(const std::string& key) { client.run(tier::raw({"SET", keys(key), "v"})); }
  bool exists(const std::string& key) {
    return client.run(tier::raw({"EXISTS", keys(key)})).integer == 1;
  }
  void publish(const std::string& channel, const std::string& payload) {
    client.run(tier::raw({"PUBLISH", channel, payload}));
  }
  double metric(const std::string& name, const Labels& labels) {
    return app->metrics().value(name, labels);
  }
  /// Runs the loop until `pred` holds (2 s).
  bool until(const std::function<bool()>& pred) { return loop.run_until(pred, 2s); }

  /// Another tierd instance on the same loop, config and namespace (as a second host would
  /// run), started; the caller shuts it down.
  std::unique_ptr<tierd::App> another() {
    tierd::AppOptions o;
    o.config = tierd::parse_config(yaml, "another.yaml", kNoEnv);
    o.env = kNoEnv;
    o.handle_signals = false;
    o.logger = quiet_logger();
    auto other = std::make_unique<tierd::App>(loop.get(), std::move(o));
    REQUIRE(other->start().ok());
    return other;
  }

  tiertest::TestLoop loop;
  tier::Client& client;
  tiertest::TestKeys keys;
  std::string yaml;
  std::unique_ptr<tierd::App> app;
};

}  // namespace tierd_test
