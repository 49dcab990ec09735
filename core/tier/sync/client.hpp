#pragma once
// The blocking, thread-safe transport for apps and tierctl: a pool of hiredis
// connections, per-command timeouts, reconnect on the next use, pipelines.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "tier/endpoint.hpp"
#include "tier/errors.hpp"
#include "tier/op.hpp"

struct redisContext;

namespace tier {

struct ClientOptions {
  RedisEndpoint endpoint;
  /// Time allowed to connect (and AUTH/SELECT). 0ms means no limit.
  std::chrono::milliseconds connect_timeout{2000};
  /// Time allowed for one round trip (all commands of an op). 0ms means no limit.
  std::chrono::milliseconds command_timeout{2000};
  /// Most connections open at once.
  std::size_t pool_size = 8;
  /// Longest wait for a free connection when all are busy. 0ms means wait forever.
  std::chrono::milliseconds pool_wait{5000};
  /// Sent as CLIENT SETNAME; empty = none.
  std::string client_name;
};

/// A message received by a Subscription.
struct Message {
  std::string pattern;  ///< the matching pattern for pattern subscriptions, else empty
  std::string channel;
  std::string payload;
};

class Connection;

/// A blocking subscription on its own connection (like redis-py's pubsub.listen()).
class Subscription {
 public:
  Subscription(Subscription&&) noexcept;
  Subscription& operator=(Subscription&&) noexcept;
  ~Subscription();

  /// Waits up to `timeout` (0 = forever) for the next message; nullopt on timeout.
  /// Throws IoError if the connection is lost.
  std::optional<Message> next(std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

 private:
  friend class Client;
  explicit Subscription(std::unique_ptr<Connection> c);
  std::unique_ptr<Connection> conn_;
};

class Client {
 public:
  explicit Client(ClientOptions options);
  /// Shorthand: Client(ClientOptions{RedisEndpoint::parse(url)}).
  explicit Client(const std::string& url);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Runs an op; throws a TierError subclass on failure.
  template <class T>
  T run(const Op<T>& op) {
    return unwrap(try_run(op));
  }

  /// Runs an op; failures come back as Result errors.
  template <class T>
  Result<T> try_run(const Op<T>& op) {
    if (op.invalid) {
      return *op.invalid;
    }
    Result<std::vector<Reply>> replies = exec(op.commands, op.timeout);
    if (!replies.ok()) {
      return replies.error();
    }
    return op.decode(std::move(replies).value());
  }

  /// Sends the commands in one round trip and returns one reply per command.
  /// Error replies are replies, not failures; NOSCRIPT is handled here.
  Result<std::vector<Reply>> exec(const std::vector<Command>& commands,
                                  std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

  /// Opens a dedicated connection subscribed to these channels and patterns.
  Subscription subscribe(const std::vector<std::string>& channels,
                         const std::vector<std::string>& patterns);

  const ClientOptions& options() const noexcept { return options_; }

 private:
  std::unique_ptr<Connection> acquire();
  void release(std::unique_ptr<Connection> c);

  ClientOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;
};

/// Several ops sent in one round trip; each result goes to its callback.
class Pipeline {
 public:
  template <class T>
  void add(Op<T> op, std::type_identity_t<std::function<void(Result<T>)>> done) {
    if (op.invalid) {
      Error e = *op.invalid;
      immediate_.push_back([done, e] { done(e); });
      return;
    }
    std::size_t first = commands_.size();
    std::size_t n = op.commands.size();
    for (auto& c : op.commands) {
      commands_.push_back(std::move(c));
    }
    slices_.push_back(Slice{
        first, n, [decode = std::move(op.decode), done](std::vector<Reply>* r, const Error* err) {
          if (err != nullptr) {
            done(*err);
          } else {
            done(decode(std::move(*r)));
          }
        }});
  }

  /// Sends everything; every callback runs before this returns.
  void run(Client& client);
  std::size_t size() const noexcept { return slices_.size() + immediate_.size(); }

 private:
  struct Slice {
    std::size_t first;
    std::size_t count;
    std::function<void(std::vector<Reply>*, const Error*)> finish;
  };
  std::vector<Command> commands_;
  std::vector<Slice> slices_;
  std::vector<std::function<void()>> immediate_;
};

}  // namespace tier
