#pragma once
// Operations as values (DESIGN §2): the commands to send plus the function that turns
// the replies into a typed result. Transports (Client, AsyncClient) run any Op<T>; each
// operation is written once.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tier/endpoint.hpp"
#include "tier/reply.hpp"
#include "tier/result.hpp"
#include "tier/script.hpp"

namespace tier {

/// One Redis command. For a script, args are [numkeys, keys..., argv...] and the
/// transport puts EVALSHA sha (or EVAL source) in front.
struct Command {
  std::vector<std::string> args;
  const Script* script = nullptr;

  static Command of(std::vector<std::string> a) { return Command{std::move(a), nullptr}; }
  static Command eval(const Script& s, const std::vector<std::string>& keys,
                      const std::vector<std::string>& argv);
};

template <class T>
struct Op {
  using value_type = T;
  using Decoder = std::function<Result<T>(std::vector<Reply>&&)>;

  std::vector<Command> commands;  ///< sent in one round trip, one reply each
  Decoder decode;
  /// Set when the op was built from bad input: transports fail it without sending.
  std::optional<Error> invalid;
  /// Overrides the transport's command timeout (e.g. for blocking reads). 0 = default.
  std::chrono::milliseconds timeout{0};

  static Op fail(Error e) {
    Op op;
    op.invalid = std::move(e);
    return op;
  }
};

/// An op of one command whose decoder takes the single reply.
template <class T, class F>
Op<T> single(Command cmd, F&& f) {
  Op<T> op;
  op.commands.push_back(std::move(cmd));
  op.decode = [f = std::forward<F>(f)](std::vector<Reply>&& replies) -> Result<T> {
    return f(std::move(replies.front()));
  };
  return op;
}

/// Changes an op's result with f(T) -> Result<U> (or U).
template <class U, class T, class F>
Op<U> map(Op<T> op, F&& f) {
  Op<U> out;
  out.commands = std::move(op.commands);
  out.invalid = std::move(op.invalid);
  out.timeout = op.timeout;
  out.decode = [inner = std::move(op.decode),
                f = std::forward<F>(f)](std::vector<Reply>&& r) -> Result<U> {
    Result<T> t = inner(std::move(r));
    if (!t.ok()) {
      return t.error();
    }
    return f(std::move(t).value());
  };
  return out;
}

// Reply decoders shared by the operations. `what` names the key or argument for the
// error message.
Error reply_error(const Reply& r, std::string_view what);
Result<Unit> decode_ok(Reply&& r, std::string_view what);
Result<long long> decode_integer(Reply&& r, std::string_view what);
Result<std::optional<std::string>> decode_optional_string(Reply&& r, std::string_view what);
Result<std::string> decode_string(Reply&& r, std::string_view what);

/// What a new connection sends before anything else: AUTH (when there is a password),
/// SELECT (db other than 0), CLIENT SETNAME (when named).
std::vector<Command> hello_commands(const RedisEndpoint& ep, const std::string& client_name);

/// A raw command as an op returning the reply itself (for tierctl and tests).
Op<Reply> raw(std::vector<std::string> args);

}  // namespace tier
