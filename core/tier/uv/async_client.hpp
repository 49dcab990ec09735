#pragma once
// Transports on a caller-owned libuv loop (DESIGN §2): AsyncClient runs ops,
// AsyncSubscriber receives pub/sub messages. Both reconnect with backoff and jitter.
// hiredis 0.14 has no async timeouts, so every op carries its own deadline: when one
// passes, the connection is dropped (a server that stopped answering) and every op
// waiting on it fails with `timeout`. Nothing here blocks the loop; all methods must be
// called on the loop's thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tier/endpoint.hpp"
#include "tier/op.hpp"
#include "tier/uv/link.hpp"

namespace tier {

struct AsyncOptions {
  RedisEndpoint endpoint;
  /// Time allowed for connect + AUTH/SELECT. 0ms is not allowed (defaults apply).
  std::chrono::milliseconds connect_timeout{2000};
  /// Default deadline of an op, from the moment it is submitted.
  std::chrono::milliseconds command_timeout{2000};
  /// Reconnect backoff: first delay, and the cap it doubles up to (with jitter).
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
  /// Most ops queued or in flight; past it new ops fail at once with `closed`.
  std::size_t max_pending = 100000;
  /// Sent as CLIENT SETNAME; empty = none.
  std::string client_name;
  /// Name used in log lines and state callbacks ("commands", "subscriber").
  std::string label = "redis";
};

struct LinkCounters {
  std::uint64_t connects = 0;     ///< successful connections (first one included)
  std::uint64_t disconnects = 0;  ///< connections lost or dropped after being ready
  std::uint64_t timeouts = 0;     ///< ops failed by their deadline
  std::uint64_t ops_sent = 0;
  std::uint64_t ops_failed = 0;
  std::uint64_t queue_overflows = 0;
};

namespace detail {
class AsyncLink;
}

class AsyncClient {
 public:
  AsyncClient(uv_loop_t* loop, AsyncOptions options);
  /// Closes without calling back: pending callbacks and the state callback are released
  /// unrun. Call close() first to have pending ops fail with `closed`.
  ~AsyncClient();
  AsyncClient(const AsyncClient&) = delete;
  AsyncClient& operator=(const AsyncClient&) = delete;

  /// Starts connecting. Ops submitted before the link is ready wait (until their deadline).
  void start();
  /// Fails everything pending with `closed` and releases the connection.
  void close();

  template <class T>
  void run(Op<T> op, std::type_identity_t<std::function<void(Result<T>)>> done) {
    if (op.invalid) {
      done(*op.invalid);
      return;
    }
    exec(std::move(op.commands), op.timeout,
         [decode = std::move(op.decode),
          done = std::move(done)](Result<std::vector<Reply>> r) mutable {
           if (!r.ok()) {
             done(r.error());
           } else {
             done(decode(std::move(r).value()));
           }
         });
  }

  /// Sends the commands in one write; `done` gets one reply per command, or the error.
  void exec(std::vector<Command> commands, std::chrono::milliseconds timeout,
            std::function<void(Result<std::vector<Reply>>)> done);

  LinkState state() const;
  void on_state(StateCallback cb);
  LinkCounters counters() const;
  std::size_t pending() const;
  uv_loop_t* loop() const;
  /// The options it was built with (e.g. to open another connection to the same server).
  const AsyncOptions& options() const;

 private:
  std::shared_ptr<detail::AsyncLink> link_;
};

struct SubscriberOptions {
  AsyncOptions link;
  std::vector<std::string> patterns;  ///< PSUBSCRIBE
  std::vector<std::string> channels;  ///< SUBSCRIBE
  /// How often the subscribed connection is checked, and how long the check may take.
  std::chrono::milliseconds health_interval{1000};
  std::chrono::milliseconds health_timeout{1000};
};

/// One pub/sub message; the views are valid only during the callback.
struct PushMessage {
  std::string_view pattern;  ///< empty for plain channel subscriptions
  std::string_view channel;
  std::string_view payload;
};

class AsyncSubscriber {
 public:
  AsyncSubscriber(uv_loop_t* loop, SubscriberOptions options,
                  std::function<void(const PushMessage&)> on_message);
  ~AsyncSubscriber();  ///< closes without calling back (see ~AsyncClient)
  AsyncSubscriber(const AsyncSubscriber&) = delete;
  AsyncSubscriber& operator=(const AsyncSubscriber&) = delete;

  void start();
  void close();
  /// ready = connected and every subscription confirmed.
  LinkState state() const;
  void on_state(StateCallback cb);
  LinkCounters counters() const;

 private:
  std::shared_ptr<detail::AsyncLink> link_;
};

}  // namespace tier
