#pragma once
// The dispatcher: validates each pub/sub message in one pass, rejects what is malformed,
// and routes one immutable Event to every handler instance whose `on` globs match the
// channel (routes cached per channel). The JSON tree is built once, and only when a handler
// it goes to needs the body. Each instance has a bounded queue and a concurrency limit;
// Retry results are re-run after a backoff, up to max_attempts (the core owns retries,
// not the handlers). A reload installs a new generation of handlers; the old one stops
// taking events and drains in the background.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "daemon/host_context.hpp"
#include "handlers/handler.hpp"
#include "handlers/registry.hpp"

typedef struct uv_loop_s uv_loop_t;

namespace tier {
class AsyncClient;
namespace metrics {
class Registry;
class Counter;
}  // namespace metrics
}  // namespace tier

namespace tierd {

/// What the dispatcher lends to the handlers it builds.
using DispatcherEnv = HostEnv;

/// Deepest JSON nesting accepted in a message; deeper ones are rejected before parsing.
inline constexpr std::size_t kMaxJsonDepth = 64;

/// Why a message was refused (too_large, invalid_utf8, too_deep, not_json, not_object), or
/// nullopt: the size, then one strict pass over the bytes (tier::json::check).
std::optional<std::string> check_message(std::string_view payload, std::size_t max_bytes);

class Dispatcher {
 public:
  explicit Dispatcher(DispatcherEnv env);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  /// Builds and starts `handlers` (resolve(config)), then lets the previous generation
  /// drain (bounded by config.shutdown_timeout). Throws if a builder throws; the old
  /// generation then stays in place.
  void install(const Config& config, const ResolvedHandlers& handlers);

  /// One message from the subscriber (views valid during the call only).
  void on_message(std::string_view pattern, std::string_view channel, std::string_view payload);

  /// Stops taking messages and drains every generation: queued and in-flight events finish,
  /// pending retries are dropped, then each handler's stop(). `done(clean)` runs once all is
  /// drained (clean = true) or when `timeout` passes (clean = false).
  void drain(std::chrono::milliseconds timeout, std::function<void(bool clean)> done);

  /// Events queued or being handled, across all generations.
  std::size_t busy() const;
  /// Handler instances of the current generation, by name.
  std::vector<std::string> handler_names() const;

  struct Generation;
  struct Slot;

 private:
  void retire(std::shared_ptr<Generation> gen, std::chrono::milliseconds timeout,
              std::function<void(bool)> done);

  /// The per-message counters of one channel_pattern label, looked up once, not per message.
  struct PatternCounters {
    tier::metrics::Counter* received = nullptr;
    tier::metrics::Counter* dispatched = nullptr;
    tier::metrics::Counter* unrouted = nullptr;
  };
  PatternCounters& pattern_counters(std::string_view label);
  /// Event::received: the wall clock read once per loop turn.
  std::chrono::system_clock::time_point received_time();

  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  DispatcherEnv env_;
  Config config_;  ///< the current one (limits, prefix)
  /// Bounded (labels are patterns, or channels of plain subscriptions): cleared when full.
  std::unordered_map<std::string, PatternCounters, StringHash, std::equal_to<>> patterns_;
  std::string last_label_;  ///< a burst on one pattern skips even the hash
  PatternCounters* last_counters_ = nullptr;
  std::uint64_t received_tick_ = 0;  ///< uv_now() of received_at_
  std::chrono::system_clock::time_point received_at_{};
  std::shared_ptr<Generation> current_;
  std::vector<std::shared_ptr<Generation>> retiring_;
  bool accepting_ = true;
};

}  // namespace tierd
