#pragma once
// The tierd lifecycle on one libuv loop: Redis command link + subscriber, the dispatcher
// and its handlers, HTTP endpoints, signals and sd_notify. main() builds an App and runs
// the loop; tests build one on their own loop.
//
//   start()    connect (in the background), subscribe, listen; READY=1
//   SIGHUP     reload(): re-read the config; a valid one replaces the handlers (the old
//              ones drain), an invalid one is logged and the running config kept
//   SIGTERM    shutdown(): stop taking messages, drain within shutdown_timeout, close
//              everything; the loop then runs out and exit_code() is the process status

#include <functional>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "tier/result.hpp"

typedef struct uv_loop_s uv_loop_t;

namespace spdlog {
class logger;
}
namespace tier::metrics {
class Registry;
}

namespace tierd {

class Dispatcher;

struct AppOptions {
  Config config;
  /// Where SIGHUP re-reads the config; empty = the built-in default.
  std::string config_path;
  EnvLookup env = process_env();
  /// Install SIGTERM/SIGINT/SIGHUP handlers on the loop (main does; tests may not).
  bool handle_signals = true;
  /// Where logs go; nullptr = a stderr logger named "tierd".
  std::shared_ptr<spdlog::logger> logger;
};

/// Readiness as served by /readyz.
struct Readiness {
  bool ready = false;
  std::string json;  ///< {"ready":..,"redis_commands":"ready",...}
};

class App {
 public:
  App(uv_loop_t* loop, AppOptions options);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  /// Starts everything. Fails only for what cannot be retried (the HTTP port cannot be
  /// bound); Redis being down is a degraded state, not an error.
  tier::Status start();
  /// SIGHUP: re-reads options.config_path. Returns false (and keeps the running config)
  /// when the new one is invalid.
  bool reload();
  /// Installs an already parsed config (the second half of reload()).
  bool apply(const Config& config);
  /// SIGTERM/SIGINT: drain, then close every handle. Safe to call twice.
  void shutdown();

  bool finished() const;
  int exit_code() const;
  Readiness readiness() const;
  /// The bound HTTP port (useful with port 0); 0 when HTTP is not up.
  int http_port() const;
  tier::metrics::Registry& metrics();
  Dispatcher& dispatcher();
  const Config& config() const;
  spdlog::logger& log();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// "tierd 0.1.0".
std::string version_string();

}  // namespace tierd
