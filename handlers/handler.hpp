#pragma once
// The handler framework (DESIGN §2). A handler gets each event it subscribed to as an
// immutable, already validated Event and answers Ok / Retry / Fail through a callback; the
// core owns queues, concurrency, retries and backoff. Handlers reach the world only through
// Context (async Redis, PostgreSQL, timers, metrics, logger): they never include <uv.h> or
// hiredis headers.
//
// A handler type registers one Factory in handlers/registry.cpp. The factory validates the
// handler's YAML section up front (throwing ConfigError with the YAML path and line) and
// returns a Builder, a closure over the validated settings that builds the handler once the
// daemon has a loop and connections. So `tierd --check-config` runs every factory without
// connecting anywhere.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"

namespace YAML {
class Node;
}
namespace spdlog {
class logger;
}
namespace tier {
class AsyncClient;
class PgConn;
namespace uv {
class HttpClient;
}
namespace metrics {
class Registry;
}
}  // namespace tier

namespace tierd {

/// One pub/sub message, validated once and shared by every handler it is routed to.
struct Event {
  std::string channel;  ///< e.g. "events:version_promoted"
  std::string pattern;  ///< the subscription pattern it matched, e.g. "events:*"
  /// The parsed message, a JSON object. Parsed only when a handler it is routed to
  /// needs_body(); otherwise null (the message was still fully validated, unless the
  /// config says `validate: when_parsed`).
  nlohmann::json body;
  std::size_t raw_bytes = 0;
  std::chrono::system_clock::time_point received;  ///< when the loop turn that read it began
  std::optional<std::string> id;  ///< the envelope's "id" field when it is a string
};

struct HandlerResult {
  enum class Kind { ok, retry, fail };
  Kind kind = Kind::ok;
  std::string detail;  ///< why, for retry/fail (logged, rate-limited; never secrets)

  static HandlerResult ok() { return {Kind::ok, {}}; }
  static HandlerResult retry(std::string why) { return {Kind::retry, std::move(why)}; }
  static HandlerResult fail(std::string why) { return {Kind::fail, std::move(why)}; }
};

/// Called exactly once per handle().
using Done = std::function<void(HandlerResult)>;

class Handler {
 public:
  virtual ~Handler() = default;

  /// Called once on the loop before the first event.
  virtual void start() {}
  /// Processes one event; calls `done` exactly once, now or later (on the loop).
  virtual void handle(std::shared_ptr<const Event> event, Done done) = 0;
  /// Stop: the core sends no more events. Call `drained` once no work of this handler
  /// remains (background jobs included). The default has nothing in the background.
  virtual void stop(std::function<void()> drained) { drained(); }
  /// Top-level body fields every routed event must carry; events lacking one are
  /// rejected by the core (counted as missing_field) and never reach handle().
  virtual std::vector<std::string> required_fields() const { return {}; }
  /// Whether handle() reads event->body. When no handler an event is routed to needs it
  /// (and none declares required_fields()), the core skips building the DOM: most of the
  /// cost of a message. Asked once, when the handler is installed.
  virtual bool needs_body() const { return true; }
  /// De-duplication by envelope id when the section does not set dedup_ttl_s (0 = none):
  /// a handler whose effects must happen once across tierd instances turns it on.
  virtual std::chrono::seconds default_dedup_ttl() const { return std::chrono::seconds(0); }
};

/// A running timer; cancel() (or destroying the handle) stops it. Safe to cancel twice.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void cancel() = 0;
};
using TimerHandle = std::unique_ptr<Timer>;

/// A campaign for leadership of a job; destroying it stops campaigning and steps down.
class Leadership {
 public:
  virtual ~Leadership() = default;
  virtual bool leading() const = 0;
};
using LeadershipHandle = std::unique_ptr<Leadership>;

/// What a handler may use. Owned by the daemon; outlives every handler it built.
class Context {
 public:
  virtual ~Context() = default;

  virtual tier::AsyncClient& redis() = 0;
  /// A Redis connection of this handler's own, for what must not wait behind the shared
  /// link (a blocking stream read). Opened, started and owned by the host, which watches it
  /// like its own links (logs, /readyz, tierd_redis_link_up{link=label}); it lives as long
  /// as the context. The handler may close() it when it stops.
  virtual tier::AsyncClient& redis_connection(const std::string& label,
                                              std::chrono::milliseconds command_timeout) = 0;
  /// HTTP requests on the loop (webhooks, provider probes); this handler's own client,
  /// created on first use and closed with the context.
  virtual tier::uv::HttpClient& http() = 0;
  /// PostgreSQL connection, or nullptr when no postgres is configured.
  virtual tier::PgConn* postgres() = 0;
  /// Runs `cb` after `delay`, then every `repeat` when repeat > 0. The callback runs on the
  /// loop; it must not outlive what it captures, so handlers cancel their timers in stop().
  virtual TimerHandle start_timer(std::chrono::milliseconds delay, std::chrono::milliseconds repeat,
                                  std::function<void()> cb) = 0;
  /// Campaigns for leadership of `job` across every tierd instance (a lock like any other,
  /// lock:{tierd:leader:<job>}, renewed at a third of `lease`) for as long as the handle
  /// lives. `on_change(true)` when this instance becomes the leader, `on_change(false)` when
  /// it stops being one; when a leader dies, another takes over within one lease.
  virtual LeadershipHandle lead(const std::string& job, std::chrono::milliseconds lease,
                                std::function<void(bool leading)> on_change) = 0;
  virtual tier::metrics::Registry& metrics() = 0;
  virtual spdlog::logger& log() = 0;
  /// Tells readiness (/readyz) whether one part of this handler works, e.g.
  /// ("write_behind_tables", "orders", false) while a table fails its start-up check.
  /// /readyz lists a part under "<group>_down" while no live handler instance reports it
  /// ready (during a reload the old instance's report counts until it is gone); an
  /// instance's reports are forgotten with its context.
  virtual void report_ready(const std::string& group, const std::string& item, bool ready) = 0;
  /// "host:pid", for leader locks and consumer names.
  virtual const std::string& instance_id() const = 0;
  /// Prefix that stands before every key this daemon touches (DESIGN §4); may be empty.
  virtual const std::string& key_prefix() const = 0;
  /// This handler instance's configured name (for metric labels and log lines).
  virtual const std::string& handler_name() const = 0;
};

using Builder = std::function<std::unique_ptr<Handler>(Context&)>;

/// What a factory may need to know about the daemon that will run the handler, decided
/// from the config before anything connects.
struct HostInfo {
  bool postgres = false;  ///< a PostgreSQL connection is configured
  /// The environment secrets come from (a webhook's header values name variables in it);
  /// never the YAML.
  EnvLookup env = process_env();
};

/// Validates `section` (the whole handler mapping, common keys included, found at
/// `yaml_path` e.g. "handlers[1]") for this host and returns the builder. Throws
/// ConfigError.
using Factory = std::function<Builder(const YAML::Node& section, const std::string& yaml_path,
                                      const HostInfo& host)>;

}  // namespace tierd
