#pragma once
// What every reconnecting connection on the loop shares (the Redis links and the
// PostgreSQL link): the state a caller watches, the connect deadline, name resolution off
// the loop, reconnection with backoff and jitter, and the periodic tick that checks
// deadlines. A connection owns one Reconnector and supplies what differs: how to dial,
// how to drop the socket, and what to check on each tick.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

typedef struct uv_loop_s uv_loop_t;

namespace tier {

enum class LinkState { disconnected, connecting, ready, closed };
const char* to_string(LinkState s) noexcept;

/// Why a link is down, in a word an operator can act on, from the reason a state callback
/// gave (a Redis or PostgreSQL link): "refused", "timeout", "auth refused", "name not
/// resolved", "unreachable", "closed by server", or "error" for anything else.
const char* failure_cause(std::string_view reason) noexcept;

/// Called on every state change with a one-line reason (never containing secrets).
using StateCallback = std::function<void(LinkState, const std::string& reason)>;

namespace uv {

class Timer;

struct ReconnectPolicy {
  /// Time allowed from the start of an attempt (resolution included) to ready().
  std::chrono::milliseconds connect_timeout{2000};
  /// Backoff between attempts: first delay, and the cap it doubles up to (with jitter).
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
  /// How often deadlines are checked.
  std::chrono::milliseconds tick{20};
};

class Reconnector {
 public:
  using Clock = std::chrono::steady_clock;

  struct Hooks {
    /// Keeps the owning connection alive while the Reconnector calls into it from the
    /// loop (a state callback may destroy the connection's user-facing handle).
    std::function<std::shared_ptr<void>()> hold;
    /// Begins one connection attempt; `address` is the resolved IP when a name was given
    /// to resolve, else empty. Ends later with ready() or lost().
    std::function<void(const std::string& address)> dial;
    /// Releases the current socket, if any, without calling back.
    std::function<void()> drop;
    /// Every tick after the connect deadline check, in any state but closed.
    std::function<void(Clock::time_point now)> tick;
  };

  Reconnector(uv_loop_t* loop, ReconnectPolicy policy, Hooks hooks);
  ~Reconnector();
  Reconnector(const Reconnector&) = delete;
  Reconnector& operator=(const Reconnector&) = delete;

  /// Starts the tick and the first attempt; `resolve` names a host to resolve on libuv's
  /// thread pool before each dial (empty = dial at once); `peer` names the server in
  /// reasons ("redis 127.0.0.1:6379"). Once only.
  void start(std::string resolve, std::string peer);
  /// The attempt succeeded: resets the backoff and reports ready.
  void ready(const std::string& reason);
  /// The connection failed or was lost: drops it, reports disconnected with `reason`
  /// (kept as last_error()), and schedules the next attempt. Ignored once closed.
  void lost(const std::string& reason);
  /// For good: reports closed, stops the timers; dial is never called again.
  void close();

  LinkState state() const { return state_; }
  bool started() const { return started_; }
  void on_state(StateCallback cb) { state_cb_ = std::move(cb); }
  void forget_state_callback() { state_cb_ = nullptr; }
  const std::string& last_error() const { return last_error_; }
  /// Connections lost after they were ready.
  std::uint64_t disconnects() const { return disconnects_; }

 private:
  void attempt();
  void set_state(LinkState s, const std::string& reason);

  uv_loop_t* loop_;
  ReconnectPolicy policy_;
  Hooks hooks_;
  std::unique_ptr<Timer> tick_;
  std::unique_ptr<Timer> retry_;
  LinkState state_ = LinkState::disconnected;
  bool started_ = false;
  StateCallback state_cb_;
  std::string resolve_;
  std::string peer_;
  std::string last_error_;
  Clock::time_point deadline_{};
  std::uint64_t attempt_id_ = 0;
  int backoff_attempt_ = 0;
  std::uint64_t disconnects_ = 0;
};

}  // namespace uv
}  // namespace tier
