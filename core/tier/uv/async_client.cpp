#include "tier/uv/async_client.hpp"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include <algorithm>
#include <deque>
#include <random>

#include "tier/resp/reply_tree.hpp"
#include "tier/sigpipe.hpp"
#include "tier/uv/handle.hpp"
#include "tier/uv/link.hpp"
#include "tier/uv/reply_pool.hpp"
#include "tier/uv/resolve.hpp"

namespace tier {

static_assert(REDIS_REPLY_STRING == Reply::HiredisType::string &&
                  REDIS_REPLY_ARRAY == Reply::HiredisType::array &&
                  REDIS_REPLY_INTEGER == Reply::HiredisType::integer &&
                  REDIS_REPLY_NIL == Reply::HiredisType::nil &&
                  REDIS_REPLY_STATUS == Reply::HiredisType::status &&
                  REDIS_REPLY_ERROR == Reply::HiredisType::error,
              "hiredis reply type codes");

namespace detail {
namespace {

using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

// How often deadlines are checked while anything is pending.
constexpr ms kTick{20};

struct OpState {
  std::vector<Command> commands;
  std::vector<Reply> replies;
  std::size_t remaining = 0;
  Clock::time_point deadline;
  std::function<void(Result<std::vector<Reply>>)> done;
  bool finished = false;

  void finish(Result<std::vector<Reply>> r) {
    if (finished) {
      return;
    }
    finished = true;
    auto cb = std::move(done);
    done = nullptr;
    if (cb) {
      cb(std::move(r));
    }
  }
};

// hiredis privdata for one command of an op. Deleted by the reply callback, which
// hiredis always runs (with a NULL reply when the context goes away).
struct Slot {
  std::shared_ptr<OpState> op;
  std::size_t index;
};

// hiredis 0.14.1's libuv adapter returns from its poll callback on an error status without
// telling hiredis. libuv reports a refused connect exactly that way (POLLERR, then the poll
// is stopped), so the connect would end only by our deadline, as a "timeout". hiredis 1.0
// fixed the callback to hand the error to hiredis as the events it waited for; these are
// the adapter's own event hooks with that fix, installed over the ones it attached.
void error_aware_poll(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<redisLibuvEvents*>(handle->data);
  const int ev = status != 0 ? p->events : events;
  if (p->context != nullptr && (ev & UV_READABLE) != 0) {
    redisAsyncHandleRead(p->context);
  }
  if (p->context != nullptr && (ev & UV_WRITABLE) != 0) {
    redisAsyncHandleWrite(p->context);
  }
}

void poll_events(void* privdata, int add, int remove) {
  auto* p = static_cast<redisLibuvEvents*>(privdata);
  p->events = (p->events | add) & ~remove;
  if (p->events != 0) {
    uv_poll_start(&p->handle, p->events, &error_aware_poll);
  } else {
    uv_poll_stop(&p->handle);
  }
}

void use_error_aware_poll(redisAsyncContext* ac) {
  ac->ev.addRead = [](void* p) { poll_events(p, UV_READABLE, 0); };
  ac->ev.delRead = [](void* p) { poll_events(p, 0, UV_READABLE); };
  ac->ev.addWrite = [](void* p) { poll_events(p, UV_WRITABLE, 0); };
  ac->ev.delWrite = [](void* p) { poll_events(p, 0, UV_WRITABLE); };
}

}  // namespace

// The connection state machine shared by AsyncClient and AsyncSubscriber.
class AsyncLink : public std::enable_shared_from_this<AsyncLink> {
 public:
  AsyncLink(uv_loop_t* loop, AsyncOptions o)
      : loop_(loop), opts_(defaults(std::move(o))), rc_(loop, policy(opts_), hooks()) {
    ignore_sigpipe();
  }
  virtual ~AsyncLink() = default;

  void start() {
    if (rc_.started() || rc_.state() != LinkState::disconnected) {
      return;
    }
    const auto& ep = opts_.endpoint;
    // hiredis resolves names with a blocking getaddrinfo: the Reconnector resolves them on
    // libuv's thread pool first.
    const bool by_name = ep.unix_path.empty() && !is_ip_literal(ep.host);
    rc_.start(by_name ? ep.host : std::string(), ep.redacted());
  }

  void close() {
    if (rc_.state() == LinkState::closed) {
      return;
    }
    auto keep = shared_from_this();
    rc_.close();
    const Error closed{ErrorKind::closed, opts_.label + ": client closed"};
    // Ops already sent fail with `closed` too, not with the `io` of the dropped socket.
    for (auto& op : inflight_) {
      if (!op->finished) {
        ++counters_.ops_failed;
        op->finish(closed);
      }
    }
    drop_connection();
    fail_all(closed);
  }

  /// The owner is being destroyed: close without calling back into its code. Pending
  /// callbacks and the state callback are released unrun (their captures may already be
  /// gone, and a destructor never calls back into its owner).
  void abandon() {
    rc_.forget_state_callback();
    for (auto* queue : {&waiting_, &inflight_}) {
      for (auto& op : *queue) {
        op->done = nullptr;
      }
    }
    if (hello_) {
      hello_->done = nullptr;
    }
    close();
  }

  void exec(std::vector<Command> commands, ms timeout,
            std::function<void(Result<std::vector<Reply>>)> done) {
    if (rc_.state() == LinkState::closed) {
      ++counters_.ops_failed;
      done(Error{ErrorKind::closed, opts_.label + ": client closed"});
      return;
    }
    if (commands.empty()) {
      done(std::vector<Reply>{});
      return;
    }
    if (waiting_.size() + inflight_.size() >= opts_.max_pending) {
      ++counters_.queue_overflows;
      ++counters_.ops_failed;
      done(Error{ErrorKind::closed, opts_.label + ": too many pending commands (max_pending " +
                                        std::to_string(opts_.max_pending) + ")"});
      return;
    }
    auto op = std::make_shared<OpState>();
    op->commands = std::move(commands);
    op->replies.resize(op->commands.size());
    op->remaining = op->commands.size();
    op->deadline = Clock::now() + (timeout.count() > 0 ? timeout : opts_.command_timeout);
    op->done = std::move(done);
    if (rc_.state() == LinkState::ready) {
      send(op);
    } else {
      waiting_.push_back(std::move(op));
    }
  }

  LinkState state() const { return rc_.state(); }
  void on_state(StateCallback cb) { rc_.on_state(std::move(cb)); }
  LinkCounters counters() const {
    LinkCounters c = counters_;
    c.disconnects = rc_.disconnects();
    return c;
  }
  std::size_t pending() const { return waiting_.size() + inflight_.size(); }
  uv_loop_t* loop() const { return loop_; }
  const AsyncOptions& options() const { return opts_; }

 protected:
  /// The connection answered its hello: subclasses subscribe here. Return true when the
  /// link is ready for ops at once.
  virtual bool on_connected() { return true; }
  /// Periodic check while connected; return false to drop the connection.
  virtual bool healthy(Clock::time_point /*now*/) { return true; }
  /// A new context, before it reads anything (its reply functions may still change).
  /// Command connections parse replies straight into tier::Reply.
  virtual void prepare(redisAsyncContext* ac) { ac->c.reader->fn = reply_tree_functions(); }

  /// Marks the link ready and sends what waited for it.
  void become_ready() {
    rc_.ready("connected to " + opts_.endpoint.redacted());
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& op : waiting) {
      if (!op->finished) {
        send(op);
      }
    }
  }

  /// Drops the connection and schedules a new one.
  void reset_connection(const std::string& why) { rc_.lost(why); }

  LinkState link_state() const { return rc_.state(); }

  redisAsyncContext* ac_ = nullptr;
  uv_loop_t* loop_;
  AsyncOptions opts_;
  LinkCounters counters_;

 private:
  static AsyncOptions defaults(AsyncOptions o) {
    if (o.connect_timeout.count() <= 0) {
      o.connect_timeout = ms{2000};
    }
    if (o.command_timeout.count() <= 0) {
      o.command_timeout = ms{2000};
    }
    return o;
  }
  static uv::ReconnectPolicy policy(const AsyncOptions& o) {
    return {o.connect_timeout, o.reconnect_min, o.reconnect_max, kTick};
  }
  uv::Reconnector::Hooks hooks() {
    return {
        .hold = [this] { return std::shared_ptr<void>(shared_from_this()); },
        .dial = [this](const std::string& address) { dial(address); },
        .drop = [this] { drop_connection(); },
        .tick = [this](Clock::time_point now) { check_deadlines(now); },
    };
  }

  void dial(const std::string& address) {
    const auto& ep = opts_.endpoint;
    if (!ep.unix_path.empty()) {
      attach(redisAsyncConnectUnix(ep.unix_path.c_str()));
    } else {
      attach(redisAsyncConnect(address.empty() ? ep.host.c_str() : address.c_str(), ep.port));
    }
  }

  void attach(redisAsyncContext* ac) {
    if (ac == nullptr || ac->err != 0) {
      std::string why = ac != nullptr ? ac->errstr : "out of memory";
      if (ac != nullptr) {
        redisAsyncFree(ac);
      }
      reset_connection("connect " + opts_.endpoint.redacted() + ": " + why);
      return;
    }
    if (redisLibuvAttach(ac, loop_) != REDIS_OK) {
      redisAsyncFree(ac);
      reset_connection("connect: cannot attach to the loop");
      return;
    }
    use_error_aware_poll(ac);
    ac_ = ac;
    ac->data = this;
    prepare(ac);
    redisAsyncSetConnectCallback(ac, &AsyncLink::on_connect);
    redisAsyncSetDisconnectCallback(ac, &AsyncLink::on_disconnect);
    // The hello goes out as soon as the socket connects; PING last, so that its answer
    // means every earlier step succeeded.
    const auto& ep = opts_.endpoint;
    std::vector<Command> hello = hello_commands(ep, opts_.client_name);
    hello.push_back(Command::of({"PING"}));
    auto op = std::make_shared<OpState>();
    op->commands = std::move(hello);
    op->replies.resize(op->commands.size());
    op->remaining = op->commands.size();
    op->deadline = Clock::now() + opts_.connect_timeout;
    redisAsyncContext* expected = ac;
    op->done = [this, expected](Result<std::vector<Reply>> r) {
      if (ac_ != expected || rc_.state() != LinkState::connecting) {
        return;
      }
      if (!r.ok()) {
        reset_connection("connect " + opts_.endpoint.redacted() + ": " + r.error().message);
        return;
      }
      for (auto& reply : *r) {
        if (reply.is_error()) {
          reset_connection("connect " + opts_.endpoint.redacted() + ": " + reply.str);
          return;
        }
      }
      ++counters_.connects;
      if (on_connected()) {
        become_ready();
      }
    };
    hello_ = op;
    send_raw(op);
  }

  static void on_connect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<AsyncLink*>(ac->data);
    if (self == nullptr || self->ac_ != ac) {
      return;
    }
    if (status != REDIS_OK) {
      // hiredis frees the context itself after a failed connect.
      std::string why = ac->errstr;
      self->ac_ = nullptr;
      self->reset_connection("connect " + self->opts_.endpoint.redacted() + ": " + why);
    }
  }

  static void on_disconnect(const redisAsyncContext* ac, int /*status*/) {
    auto* self = static_cast<AsyncLink*>(ac->data);
    if (self == nullptr || self->ac_ != ac) {
      return;
    }
    std::string why = ac->err != 0 ? ac->errstr : "server closed the connection";
    self->ac_ = nullptr;  // hiredis frees the context after this callback
    self->reset_connection("lost " + self->opts_.endpoint.redacted() + ": " + why);
  }

  static void on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
    auto* slot = static_cast<Slot*>(privdata);
    std::shared_ptr<OpState> op = std::move(slot->op);
    std::size_t index = slot->index;
    delete slot;
    if (op->finished) {
      return;
    }
    auto* self = static_cast<AsyncLink*>(ac->data);
    if (reply == nullptr) {
      std::string label = self != nullptr ? self->opts_.label : "redis";
      if (self != nullptr) {
        ++self->counters_.ops_failed;
      }
      op->finish(Error{ErrorKind::io, label + ": connection lost before the reply"});
      return;
    }
    // The reader's functions tell what the reply is: a tier::Reply already (command
    // connections), or hiredis's own redisReply (the subscriber's hello).
    const bool tree = ac->c.reader->fn == reply_tree_functions();
    Reply copied;
    Reply& r = tree ? reply_tree_value(reply)
                    : (copied = Reply::from_hiredis(static_cast<redisReply*>(reply)));
    const Command& cmd = op->commands[index];
    if (cmd.script != nullptr && r.is_error() && r.str.starts_with("NOSCRIPT") && self != nullptr &&
        self->ac_ == ac) {
      // The script cache was flushed: EVAL runs the script and caches it again.
      self->send_command(op, index, /*force_eval=*/true);
      return;
    }
    op->replies[index] = std::move(r);
    if (--op->remaining == 0) {
      auto keep = self != nullptr ? self->shared_from_this() : nullptr;
      op->finish(std::move(op->replies));
    }
  }

  void check_deadlines(Clock::time_point now) {
    while (!inflight_.empty() && inflight_.front()->finished) {
      inflight_.pop_front();
    }
    bool expired = std::any_of(inflight_.begin(), inflight_.end(), [&](const auto& op) {
      return !op->finished && now >= op->deadline;
    });
    if (expired) {
      // The server stopped answering: fail everything sent on this connection and build
      // a new one.
      auto inflight = std::move(inflight_);
      inflight_.clear();
      for (auto& op : inflight) {
        if (!op->finished) {
          ++counters_.timeouts;
          ++counters_.ops_failed;
          op->finish(Error{ErrorKind::timeout, opts_.label + ": no reply from " +
                                                   opts_.endpoint.redacted() +
                                                   " before the deadline"});
        }
      }
      reset_connection("no reply before the deadline");
    } else if (rc_.state() == LinkState::ready && !healthy(now)) {
      reset_connection("health check failed");
    }
    while (!waiting_.empty() && !waiting_.front()->finished && now >= waiting_.front()->deadline) {
      auto op = std::move(waiting_.front());
      waiting_.pop_front();
      ++counters_.timeouts;
      ++counters_.ops_failed;
      op->finish(Error{ErrorKind::timeout, opts_.label + ": not connected to " +
                                               opts_.endpoint.redacted() + " before the deadline"});
    }
    // Ops with a longer own timeout may sit behind the front; drop finished ones.
    std::erase_if(waiting_, [](const auto& op) { return op->finished; });
    if (!waiting_.empty()) {
      std::erase_if(waiting_, [&](const auto& op) {
        if (now < op->deadline) {
          return false;
        }
        ++counters_.timeouts;
        ++counters_.ops_failed;
        op->finish(Error{ErrorKind::timeout, opts_.label + ": not connected before the deadline"});
        return true;
      });
    }
  }

  void send(const std::shared_ptr<OpState>& op) {
    ++counters_.ops_sent;
    send_raw(op);
  }

  void send_raw(const std::shared_ptr<OpState>& op) {
    inflight_.push_back(op);
    for (std::size_t i = 0; i < op->commands.size() && !op->finished; ++i) {
      send_command(op, i, false);
    }
  }

  void send_command(const std::shared_ptr<OpState>& op, std::size_t i, bool force_eval) {
    const Command& c = op->commands[i];
    argv_.clear();
    lens_.clear();
    if (c.script != nullptr) {
      const std::string& verb = force_eval ? eval_ : evalsha_;
      const std::string& body = force_eval ? c.script->source : c.script->sha1;
      argv_.push_back(verb.data());
      lens_.push_back(verb.size());
      argv_.push_back(body.data());
      lens_.push_back(body.size());
    }
    for (const auto& a : c.args) {
      argv_.push_back(a.data());
      lens_.push_back(a.size());
    }
    auto* slot = new Slot{op, i};
    if (ac_ == nullptr ||
        redisAsyncCommandArgv(ac_, &AsyncLink::on_reply, slot, static_cast<int>(argv_.size()),
                              argv_.data(), lens_.data()) != REDIS_OK) {
      delete slot;
      ++counters_.ops_failed;
      op->finish(Error{ErrorKind::closed, opts_.label + ": connection is closing"});
    }
  }

  void drop_connection() {
    if (ac_ != nullptr) {
      redisAsyncContext* ac = ac_;
      ac_ = nullptr;
      ac->data = nullptr;  // our callbacks ignore this context from now on
      // Pending reply callbacks run now with NULL replies and fail their ops.
      redisAsyncFree(ac);
    }
    if (hello_) {
      hello_->finished = true;
      hello_.reset();
    }
    // Ops sent on the dropped connection that hiredis did not fail (deferred free).
    auto inflight = std::move(inflight_);
    inflight_.clear();
    for (auto& op : inflight) {
      if (!op->finished) {
        ++counters_.ops_failed;
        op->finish(Error{ErrorKind::io, opts_.label + ": connection dropped"});
      }
    }
  }

  void fail_all(const Error& e) {
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& op : waiting) {
      ++counters_.ops_failed;
      op->finish(e);
    }
  }

  uv::Reconnector rc_;
  std::shared_ptr<OpState> hello_;
  std::deque<std::shared_ptr<OpState>> waiting_;
  std::deque<std::shared_ptr<OpState>> inflight_;
  std::vector<const char*> argv_;
  std::vector<size_t> lens_;
  const std::string eval_ = "EVAL";
  const std::string evalsha_ = "EVALSHA";
};

// The subscriber: after the hello, (P)SUBSCRIBE; ready once every subscription is
// confirmed. hiredis routes a PING reply on a subscribed connection nowhere, so the
// health check re-issues PSUBSCRIBE of a private pattern: Redis confirms it on the same
// connection, proving the subscribed socket is alive, and hiredis keeps no callback
// queue for it (nothing grows).
class SubscriberLink : public AsyncLink {
 public:
  SubscriberLink(uv_loop_t* loop, SubscriberOptions o,
                 std::function<void(const PushMessage&)> on_message)
      : AsyncLink(loop, o.link), sopts_(std::move(o)), on_message_(std::move(on_message)) {
    std::random_device rd;
    health_pattern_ = "__tierd:health:" + std::to_string(rd()) + std::to_string(rd());
  }

 protected:
  bool on_connected() override {
    expected_ = sopts_.patterns.size() + sopts_.channels.size() + 1;
    confirmed_ = 0;
    std::vector<std::string> p{"PSUBSCRIBE", health_pattern_};
    p.insert(p.end(), sopts_.patterns.begin(), sopts_.patterns.end());
    subscribe(p);
    if (!sopts_.channels.empty()) {
      std::vector<std::string> c{"SUBSCRIBE"};
      c.insert(c.end(), sopts_.channels.begin(), sopts_.channels.end());
      subscribe(c);
    }
    health_sent_ = {};
    last_health_ = Clock::now();
    return false;  // ready when every confirmation is in
  }

  void prepare(redisAsyncContext* ac) override {
    // A flood arrives one reply at a time: recycle reply objects instead of ten heap round
    // trips per message.
    ac->c.reader->fn = pooled_reply_functions();
  }

  bool healthy(Clock::time_point now) override {
    // Messages arriving prove the subscribed socket is alive. Under a flood the health
    // confirmation waits behind the backlog, so without this a busy link would be
    // dropped (and its buffered messages lost) for being slow, not dead.
    if (traffic_) {
      traffic_ = false;
      health_sent_ = {};
      last_health_ = now;
      return true;
    }
    if (health_sent_ != Clock::time_point{}) {
      return now - health_sent_ < sopts_.health_timeout;
    }
    if (now - last_health_ >= sopts_.health_interval) {
      health_sent_ = now;
      subscribe({"PSUBSCRIBE", health_pattern_});
    }
    return true;
  }

 private:
  void subscribe(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    // Subscription callbacks persist in hiredis; privdata is unused (ac->data finds us).
    redisAsyncCommandArgv(ac_, &SubscriberLink::on_push, nullptr, static_cast<int>(argv.size()),
                          argv.data(), lens.data());
  }

  static void on_push(redisAsyncContext* ac, void* reply, void*) {
    auto* self = static_cast<SubscriberLink*>(static_cast<AsyncLink*>(ac->data));
    auto* r = static_cast<redisReply*>(reply);
    if (self == nullptr || r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
      return;
    }
    auto sv = [](const redisReply* e) {
      return e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS
                 ? std::string_view(e->str, e->len)
                 : std::string_view();
    };
    std::string_view kind = sv(r->element[0]);
    if (kind == "pmessage" && r->elements == 4) {
      self->traffic_ = true;
      self->on_message_(PushMessage{sv(r->element[1]), sv(r->element[2]), sv(r->element[3])});
    } else if (kind == "message") {
      self->traffic_ = true;
      self->on_message_(PushMessage{{}, sv(r->element[1]), sv(r->element[2])});
    } else if (kind == "psubscribe" || kind == "subscribe") {
      if (self->state() == LinkState::ready) {
        if (sv(r->element[1]) == self->health_pattern_) {
          self->health_sent_ = {};
          self->last_health_ = Clock::now();
        }
      } else if (++self->confirmed_ == self->expected_) {
        self->become_ready();
      }
    }
  }

  SubscriberOptions sopts_;
  std::function<void(const PushMessage&)> on_message_;
  std::string health_pattern_;
  std::size_t expected_ = 0;
  std::size_t confirmed_ = 0;
  Clock::time_point health_sent_{};
  Clock::time_point last_health_{};
  bool traffic_ = false;  ///< a message arrived since the last health check
};

}  // namespace detail

AsyncClient::AsyncClient(uv_loop_t* loop, AsyncOptions options)
    : link_(std::make_shared<detail::AsyncLink>(loop, std::move(options))) {}
AsyncClient::~AsyncClient() {
  link_->abandon();
}
void AsyncClient::start() {
  link_->start();
}
void AsyncClient::close() {
  link_->close();
}
void AsyncClient::exec(std::vector<Command> commands, std::chrono::milliseconds timeout,
                       std::function<void(Result<std::vector<Reply>>)> done) {
  link_->exec(std::move(commands), timeout, std::move(done));
}
LinkState AsyncClient::state() const {
  return link_->state();
}
void AsyncClient::on_state(StateCallback cb) {
  link_->on_state(std::move(cb));
}
LinkCounters AsyncClient::counters() const {
  return link_->counters();
}
std::size_t AsyncClient::pending() const {
  return link_->pending();
}
uv_loop_t* AsyncClient::loop() const {
  return link_->loop();
}

const AsyncOptions& AsyncClient::options() const {
  return link_->options();
}

AsyncSubscriber::AsyncSubscriber(uv_loop_t* loop, SubscriberOptions options,
                                 std::function<void(const PushMessage&)> on_message)
    : link_(std::make_shared<detail::SubscriberLink>(loop, std::move(options),
                                                     std::move(on_message))) {}
AsyncSubscriber::~AsyncSubscriber() {
  link_->abandon();
}
void AsyncSubscriber::start() {
  link_->start();
}
void AsyncSubscriber::close() {
  link_->close();
}
LinkState AsyncSubscriber::state() const {
  return link_->state();
}
void AsyncSubscriber::on_state(StateCallback cb) {
  link_->on_state(std::move(cb));
}
LinkCounters AsyncSubscriber::counters() const {
  return link_->counters();
}

}  // namespace tier
