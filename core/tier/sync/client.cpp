#include "tier/sync/client.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

#include "tier/resp/reply_tree.hpp"
#include "tier/sigpipe.hpp"

namespace tier {

static_assert(REDIS_REPLY_STRING == Reply::HiredisType::string &&
                  REDIS_REPLY_ARRAY == Reply::HiredisType::array &&
                  REDIS_REPLY_INTEGER == Reply::HiredisType::integer &&
                  REDIS_REPLY_NIL == Reply::HiredisType::nil &&
                  REDIS_REPLY_STATUS == Reply::HiredisType::status &&
                  REDIS_REPLY_ERROR == Reply::HiredisType::error,
              "hiredis reply type codes");
namespace {

void append_header(std::string& out, char kind, std::size_t n) {
  char buf[24];
  buf[0] = kind;
  auto r = std::to_chars(buf + 1, buf + sizeof buf - 2, n);
  *r.ptr++ = '\r';
  *r.ptr++ = '\n';
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

void append_bulk(std::string& out, std::string_view arg) {
  append_header(out, '$', arg.size());
  out.append(arg);
  out.append("\r\n", 2);
}

// Appends one command in RESP, byte for byte what redisFormatCommandArgv writes, but into
// a buffer the connection reuses: a pipeline is formatted without an allocation per command.
void append_resp(std::string& out, const Command& c, bool force_eval) {
  append_header(out, '*', c.args.size() + (c.script != nullptr ? 2 : 0));
  if (c.script != nullptr) {
    append_bulk(out, force_eval ? "EVAL" : "EVALSHA");
    append_bulk(out, force_eval ? c.script->source : c.script->sha1);
  }
  for (const auto& a : c.args) {
    append_bulk(out, a);
  }
}

}  // namespace

// One blocking hiredis connection. Not thread-safe: the pool hands it to one caller.
class Connection {
 public:
  Connection(const ClientOptions& o) : opts_(o) {}
  ~Connection() {
    if (ctx_ != nullptr) {
      redisFree(ctx_);
    }
  }

  Status open() {
    const auto& ep = opts_.endpoint;
    timeval tv = to_timeval(opts_.connect_timeout);
    bool limited = opts_.connect_timeout.count() > 0;
    if (!ep.unix_path.empty()) {
      ctx_ = limited ? redisConnectUnixWithTimeout(ep.unix_path.c_str(), tv)
                     : redisConnectUnix(ep.unix_path.c_str());
    } else {
      ctx_ = limited ? redisConnectWithTimeout(ep.host.c_str(), ep.port, tv)
                     : redisConnect(ep.host.c_str(), ep.port);
    }
    if (ctx_ == nullptr) {
      return Error{ErrorKind::io, "connect " + ep.redacted() + ": out of memory"};
    }
    if (ctx_->err != 0) {
      ErrorKind k =
          (ctx_->err == REDIS_ERR_IO && errno == EINPROGRESS) ? ErrorKind::timeout : ErrorKind::io;
      return Error{k, "connect " + ep.redacted() + ": " + ctx_->errstr};
    }
    // Replies are parsed straight into tier::Reply (not hiredis's tree, then a copy).
    ctx_->reader->fn = detail::reply_tree_functions();
    if (limited) {
      redisSetTimeout(ctx_, tv);
    }
    if (ep.unix_path.empty()) {
      // TCP only: on a unix socket the keepalive options fail with EOPNOTSUPP, and hiredis
      // then keeps that error on the context, failing every later read.
      redisEnableKeepAlive(ctx_);
    }
    std::vector<Command> hello = hello_commands(ep, opts_.client_name);
    if (!hello.empty()) {
      auto r = roundtrip(hello, opts_.connect_timeout);
      if (!r.ok()) {
        return r.error();
      }
      for (auto& reply : *r) {
        if (reply.is_error()) {
          // The AUTH reply never contains the password, so it is safe to show.
          return Error{ErrorKind::reply, "connect " + ep.redacted() + ": " + reply.str};
        }
      }
    }
    return Unit{};
  }

  /// Sends all commands, then reads one reply each. NOSCRIPT replies are retried with EVAL.
  Result<std::vector<Reply>> exec(const std::vector<Command>& cmds,
                                  std::chrono::milliseconds timeout) {
    auto r = roundtrip(cmds, timeout);
    if (!r.ok()) {
      return r;
    }
    for (std::size_t i = 0; i < cmds.size(); ++i) {
      Reply& reply = (*r)[i];
      if (cmds[i].script != nullptr && reply.is_error() && reply.str.starts_with("NOSCRIPT")) {
        // The script cache was flushed. EVAL runs it and loads it again.
        std::vector<Command> again{cmds[i]};
        auto once = roundtrip(again, timeout, /*force_eval=*/true);
        if (!once.ok()) {
          return once.error();
        }
        reply = std::move(once->front());
      }
    }
    return r;
  }

  Result<std::vector<Reply>> roundtrip(const std::vector<Command>& cmds,
                                       std::chrono::milliseconds timeout, bool force_eval = false) {
    std::chrono::milliseconds t = timeout.count() > 0 ? timeout : opts_.command_timeout;
    if (t != current_timeout_) {
      redisSetTimeout(ctx_, to_timeval(t));  // zero timeval = block forever
      current_timeout_ = t;
    }
    wbuf_.clear();
    for (const auto& c : cmds) {
      append_resp(wbuf_, c, force_eval);
    }
    // One buffer for the whole round trip: hiredis copies it to its output buffer as is.
    int sent = redisAppendFormattedCommand(ctx_, wbuf_.data(), wbuf_.size());
    if (wbuf_.capacity() > kKeepBuffer) {
      std::string().swap(wbuf_);  // do not pin the memory of one huge command
    }
    if (sent != REDIS_OK) {
      return io_error("send");
    }
    std::vector<Reply> out;
    out.reserve(cmds.size());
    for (std::size_t i = 0; i < cmds.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
        return io_error("read");
      }
      out.push_back(std::move(detail::reply_tree_value(raw)));
      ctx_->reader->fn->freeObject(raw);
    }
    used_ = true;
    return out;
  }

  /// For subscriptions: the next pushed message, waiting at most `timeout` (0 = forever).
  Result<std::optional<Reply>> next_push(std::chrono::milliseconds timeout) {
    for (;;) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) {
        return io_error("read");
      }
      if (raw != nullptr) {
        Reply r = std::move(detail::reply_tree_value(raw));
        ctx_->reader->fn->freeObject(raw);
        return std::optional<Reply>{std::move(r)};
      }
      pollfd pfd{ctx_->fd, POLLIN, 0};
      int n = ::poll(&pfd, 1, timeout.count() > 0 ? static_cast<int>(timeout.count()) : -1);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n == 0) {
        return std::optional<Reply>{};
      }
      if (redisBufferRead(ctx_) != REDIS_OK) {
        return io_error("read");
      }
    }
  }

  bool broken() const { return ctx_ == nullptr || ctx_->err != 0; }
  bool used() const { return used_; }
  /// True when the last failure was the peer closing the socket (a stale pooled connection).
  bool closed_by_peer() const { return ctx_ != nullptr && ctx_->err == REDIS_ERR_EOF; }

 private:
  static timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
  }

  Error io_error(const char* during) const {
    const auto& ep = opts_.endpoint;
    if (ctx_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return Error{ErrorKind::timeout, std::string(during) + " " + ep.redacted() + ": timed out"};
    }
    if (ctx_->err == REDIS_ERR_PROTOCOL) {
      return Error{ErrorKind::protocol,
                   std::string(during) + " " + ep.redacted() + ": " + ctx_->errstr};
    }
    return Error{ErrorKind::io, std::string(during) + " " + ep.redacted() + ": " + ctx_->errstr};
  }

  static constexpr std::size_t kKeepBuffer = 1 << 20;

  const ClientOptions& opts_;
  redisContext* ctx_ = nullptr;
  std::string wbuf_;  // RESP of the commands being sent, reused between round trips
  std::chrono::milliseconds current_timeout_{-1};
  bool used_ = false;
};

Client::Client(ClientOptions options) : options_(std::move(options)) {
  ignore_sigpipe();
}
Client::Client(const std::string& url) : Client(ClientOptions{RedisEndpoint::parse(url)}) {}
Client::~Client() = default;

std::unique_ptr<Connection> Client::acquire() {
  {
    std::unique_lock lock(mu_);
    auto ready = [&] { return !idle_.empty() || open_ < options_.pool_size; };
    if (options_.pool_wait.count() > 0) {
      if (!cv_.wait_for(lock, options_.pool_wait, ready)) {
        return nullptr;
      }
    } else {
      cv_.wait(lock, ready);
    }
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    ++open_;
  }
  return std::make_unique<Connection>(options_);
}

void Client::release(std::unique_ptr<Connection> c) {
  {
    std::lock_guard lock(mu_);
    if (c && !c->broken()) {
      idle_.push_back(std::move(c));
    } else {
      --open_;
    }
  }
  cv_.notify_one();
}

Result<std::vector<Reply>> Client::exec(const std::vector<Command>& commands,
                                        std::chrono::milliseconds timeout) {
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<Connection> c = acquire();
    if (!c) {
      return Error{ErrorKind::timeout,
                   "no free connection to " + options_.endpoint.redacted() + " within pool_wait"};
    }
    bool fresh = !c->used();
    if (fresh && c->broken()) {
      if (Status s = c->open(); !s.ok()) {
        release(nullptr);
        return s.error();
      }
    }
    auto r = c->exec(commands, timeout);
    bool stale = !r.ok() && !fresh && c->closed_by_peer();
    release(c->broken() ? nullptr : std::move(c));
    // A pooled connection the server closed while idle (restart, idle timeout) failed
    // before the command reached a live server: try once more on a new connection.
    if (stale && attempt == 0) {
      continue;
    }
    return r;
  }
}

Subscription Client::subscribe(const std::vector<std::string>& channels,
                               const std::vector<std::string>& patterns) {
  auto c = std::make_unique<Connection>(options_);
  unwrap(c->open());
  std::vector<Command> cmds;
  if (!channels.empty()) {
    std::vector<std::string> a{"SUBSCRIBE"};
    a.insert(a.end(), channels.begin(), channels.end());
    cmds.push_back(Command::of(std::move(a)));
  }
  if (!patterns.empty()) {
    std::vector<std::string> a{"PSUBSCRIBE"};
    a.insert(a.end(), patterns.begin(), patterns.end());
    cmds.push_back(Command::of(std::move(a)));
  }
  if (cmds.empty()) {
    throw InvalidArgument("subscribe: no channels or patterns");
  }
  // Each (P)SUBSCRIBE argument is confirmed by its own reply; the first comes back from
  // the round trip, the rest are read here.
  auto first = unwrap(c->roundtrip(cmds, options_.command_timeout));
  std::size_t expected = channels.size() + patterns.size() - cmds.size();
  for (auto& r : first) {
    if (r.is_error()) {
      throw ReplyError("subscribe: " + r.str);
    }
  }
  for (std::size_t i = 0; i < expected; ++i) {
    auto r = unwrap(c->next_push(options_.command_timeout));
    if (!r) {
      throw TimeoutError("subscribe: no confirmation from " + options_.endpoint.redacted());
    }
  }
  return Subscription(std::move(c));
}

Subscription::Subscription(std::unique_ptr<Connection> c) : conn_(std::move(c)) {}
Subscription::Subscription(Subscription&&) noexcept = default;
Subscription& Subscription::operator=(Subscription&&) noexcept = default;
Subscription::~Subscription() = default;

std::optional<Message> Subscription::next(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = timeout;
    if (timeout.count() > 0) {
      left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return std::nullopt;
      }
    }
    auto r = unwrap(conn_->next_push(left));
    if (!r) {
      return std::nullopt;
    }
    if (!r->is_array() || r->elements.size() < 3) {
      continue;
    }
    auto& e = r->elements;
    if (e[0].str == "message" && e.size() == 3) {
      return Message{"", std::move(e[1].str), std::move(e[2].str)};
    }
    if (e[0].str == "pmessage" && e.size() == 4) {
      return Message{std::move(e[1].str), std::move(e[2].str), std::move(e[3].str)};
    }
    // subscribe/unsubscribe confirmations are not messages.
  }
}

void Pipeline::run(Client& client) {
  for (auto& f : immediate_) {
    f();
  }
  immediate_.clear();
  if (commands_.empty()) {
    return;
  }
  auto r = client.exec(commands_);
  // One vector reused for every op's replies: most ops have one, and an allocation per op
  // is a measurable share of a pipelined GET.
  std::vector<Reply> part;
  for (auto& s : slices_) {
    if (!r.ok()) {
      s.finish(nullptr, &r.error());
      continue;
    }
    part.clear();
    part.reserve(s.count);
    for (std::size_t i = 0; i < s.count; ++i) {
      part.push_back(std::move((*r)[s.first + i]));
    }
    s.finish(&part, nullptr);
  }
  commands_.clear();
  slices_.clear();
}

}  // namespace tier
