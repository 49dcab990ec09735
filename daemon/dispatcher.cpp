#include "daemon/dispatcher.hpp"
#include "tier/backoff.hpp"

#include <spdlog/logger.h>

#include <deque>
#include <map>
#include <unordered_map>

#include "tier/glob.hpp"
#include "tier/json_check.hpp"
#include "tier/json_parse.hpp"
#include "tier/keys.hpp"
#include "tier/metrics.hpp"
#include "tier/uv/async_client.hpp"

namespace tierd {

using tier::metrics::Counter;
using tier::metrics::Gauge;
using tier::metrics::Histogram;

namespace {

/// Lets a few lines per key through every 10 s and says how many it held back, so a flood
/// of bad messages cannot flood the journal.
class LogLimiter {
 public:
  /// Returns how many lines were suppressed before this one, or nullopt to stay quiet.
  std::optional<std::uint64_t> allow(const std::string& key) {
    auto now = std::chrono::steady_clock::now();
    auto& w = windows_[key];
    if (now - w.start > std::chrono::seconds(10)) {
      w.start = now;
      w.lines = 0;
    }
    if (w.lines < 5) {
      ++w.lines;
      auto held = w.suppressed;
      w.suppressed = 0;
      return held;
    }
    ++w.suppressed;
    return std::nullopt;
  }

 private:
  struct Window {
    std::chrono::steady_clock::time_point start{};
    int lines = 0;
    std::uint64_t suppressed = 0;
  };
  std::map<std::string, Window> windows_;
};

LogLimiter& limiter() {
  static LogLimiter l;  // loop thread only
  return l;
}

}  // namespace

std::optional<std::string> check_message(std::string_view payload, std::size_t max_bytes) {
  if (payload.size() > max_bytes) {
    return "too_large";
  }
  if (auto c = tier::json::check(payload, kMaxJsonDepth); !c.ok()) {
    return tier::json::reason(c.problem);
  }
  return std::nullopt;
}

struct Item {
  std::shared_ptr<const Event> event;
  std::uint32_t attempt = 1;
  bool claimed = false;  ///< its envelope id was claimed (dedup_ttl_s); retries skip the claim
};

struct Dispatcher::Slot : std::enable_shared_from_this<Slot> {
  // Declared next to the code that counts them (STYLE.md).
  Slot(const DispatcherEnv& env, const HandlerConfig& c, const std::string& prefix)
      : cfg(c),
        ctx(env, c.name, prefix),
        log(*env.log),
        loop(env.loop),
        ok(family(env, c.name, "ok")),
        retried(family(env, c.name, "retry")),
        failed(family(env, c.name, "fail")),
        dropped(family(env, c.name, "dropped")),
        duplicate(family(env, c.name, "duplicate")),
        overflow(env.metrics
                     ->counter("tierd_handler_queue_overflow_total",
                               "Events dropped because the handler's queue was full")
                     .with({{"handler", c.name}})),
        depth(env.metrics->gauge("tierd_handler_queue_depth", "Events waiting for a handler slot")
                  .with({{"handler", c.name}})),
        busy(env.metrics->gauge("tierd_handler_in_flight", "Events being handled now")
                 .with({{"handler", c.name}})),
        latency(env.metrics
                    ->histogram("tierd_handler_duration_seconds",
                                "Time from handing an event to a handler until it answered")
                    .with({{"handler", c.name}})) {}

  static Counter& family(const DispatcherEnv& env, const std::string& name, const char* result) {
    return env.metrics
        ->counter("tierd_handler_events_total",
                  "Handler outcomes: ok, retry (another attempt scheduled), fail (given up), "
                  "dropped (queue full, reload or shutdown), duplicate (envelope id seen before)")
        .with({{"handler", name}, {"result", result}});
  }

  HandlerConfig cfg;
  HostContext ctx;
  std::unique_ptr<Handler> handler;
  std::vector<std::string> required;
  std::vector<tier::Glob> on;  ///< cfg.on, compiled
  bool needs_body = true;
  spdlog::logger& log;
  uv_loop_t* loop;

  std::deque<Item> queue;
  std::size_t in_flight = 0;
  std::map<std::uint64_t, TimerHandle> retries;
  std::uint64_t next_retry = 0;
  bool accepting = true;
  bool pumping = false;
  bool stopping = false;
  bool stop_called = false;
  bool handler_drained = false;
  std::function<void()> on_drained;

  Counter& ok;
  Counter& retried;
  Counter& failed;
  Counter& dropped;
  Counter& duplicate;
  Counter& overflow;
  Gauge& depth;
  Gauge& busy;
  Histogram& latency;

  void update_gauges() {
    depth.set(static_cast<double>(queue.size()));
    busy.set(static_cast<double>(in_flight));
  }

  void enqueue(Item item) {
    if (queue.size() >= cfg.queue_limit) {
      overflow.inc();
      dropped.inc();
      if (auto held = limiter().allow("overflow:" + cfg.name)) {
        log.warn("handler {}: queue full ({} events), dropping an event on {}{}", cfg.name,
                 cfg.queue_limit, tier::excerpt(item.event->channel),
                 *held ? fmt::format(" ({} similar lines suppressed)", *held) : "");
      }
      return;
    }
    if (queue.empty() && !pumping && in_flight < cfg.max_concurrency) {
      // The common case, a free slot and nothing waiting: straight to the handler.
      pumping = true;
      ++in_flight;
      start(std::move(item));
      pumping = false;
      pump();  // gauges, and the drain check
      return;
    }
    queue.push_back(std::move(item));
    pump();
  }

  void pump() {
    if (pumping) {
      return;  // a handler answered synchronously; the outer loop carries on
    }
    pumping = true;
    while (in_flight < cfg.max_concurrency && !queue.empty()) {
      Item item = std::move(queue.front());
      queue.pop_front();
      ++in_flight;
      start(std::move(item));
    }
    pumping = false;
    update_gauges();
    maybe_drained();
  }

  void start(Item item) {
    if (cfg.dedup_ttl.count() > 0 && item.event->id && !item.claimed) {
      claim(std::move(item));
      return;
    }
    // One allocation holds what the answer needs; the callback only points to it.
    auto call = std::make_shared<Call>(
        Call{weak_from_this(), std::move(item), std::chrono::steady_clock::now(), false});
    std::shared_ptr<const Event> event = call->item.event;
    try {
      handler->handle(std::move(event), [call](HandlerResult r) { answer(*call, std::move(r)); });
    } catch (const std::exception& e) {
      answer(*call, HandlerResult::fail(std::string("handler threw: ") + e.what()));
    } catch (...) {
      answer(*call, HandlerResult::fail("handler threw"));
    }
  }

  /// One handle() call awaiting its answer.
  struct Call {
    std::weak_ptr<Slot> slot;
    Item item;
    std::chrono::steady_clock::time_point began;
    bool answered = false;
  };

  static void answer(Call& call, HandlerResult r) {
    if (call.answered) {
      return;  // a second answer is a handler bug; the first one counts
    }
    call.answered = true;
    if (auto self = call.slot.lock()) {
      self->finish(call.item, std::move(r), call.began);
    }
  }

  /// De-duplication (DESIGN §3): SET NX claims the envelope id for dedup_ttl; only the
  /// first claim runs the handler. One command, so no script is needed; several tierd
  /// instances sharing a Redis see each other's claims. A claim that cannot be made (Redis
  /// error) is a retry: the id stays unclaimed, so a later attempt may still handle it.
  void claim(Item item) {
    const auto began = std::chrono::steady_clock::now();
    const std::string& id = *item.event->id;
    if (auto err = tier::check_id(id, "envelope id")) {
      // The id becomes part of a key; an unusable one cannot be de-duplicated.
      finish(item, HandlerResult::fail(err->message), began);
      return;
    }
    std::weak_ptr<Slot> weak = weak_from_this();
    ctx.redis().run(tier::raw({"SET", ctx.key_prefix() + "tierd:seen:" + cfg.name + ":" + id, "1",
                               "NX", "EX", std::to_string(cfg.dedup_ttl.count())}),
                    [weak, item, began](tier::Result<tier::Reply> r) mutable {
                      auto self = weak.lock();
                      if (!self || !self->handler) {
                        return;
                      }
                      if (!r.ok()) {
                        self->finish(item, HandlerResult::retry("dedup: " + r.error().describe()),
                                     began);
                        return;
                      }
                      if (r.value().is_error()) {
                        self->finish(item, HandlerResult::retry("dedup: " + r.value().str), began);
                        return;
                      }
                      if (r.value().is_nil()) {
                        --self->in_flight;
                        self->duplicate.inc();
                        self->pump();
                        return;
                      }
                      item.claimed = true;
                      self->start(std::move(item));
                    });
  }

  void finish(const Item& item, HandlerResult r, std::chrono::steady_clock::time_point began) {
    --in_flight;
    latency.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
    switch (r.kind) {
      case HandlerResult::Kind::ok:
        ok.inc();
        break;
      case HandlerResult::Kind::retry:
        if (item.attempt < cfg.max_attempts && !stopping) {
          retried.inc();
          schedule_retry(item);
          break;
        }
        failed.inc();
        if (auto held = limiter().allow("fail:" + cfg.name)) {
          log.warn("handler {}: giving up on {} after {} attempts: {}{}", cfg.name,
                   tier::excerpt(item.event->channel), item.attempt, tier::excerpt(r.detail, 200),
                   *held ? fmt::format(" ({} similar lines suppressed)", *held) : "");
        }
        break;
      case HandlerResult::Kind::fail:
        failed.inc();
        if (auto held = limiter().allow("fail:" + cfg.name)) {
          log.warn("handler {}: failed on {}: {}{}", cfg.name, tier::excerpt(item.event->channel),
                   tier::excerpt(r.detail, 200),
                   *held ? fmt::format(" ({} similar lines suppressed)", *held) : "");
        }
        break;
    }
    pump();
  }

  void schedule_retry(const Item& item) {
    // Doubling per attempt up to a minute, with jitter (the one backoff of libtier), so
    // that events failed together by one outage do not all come back at once.
    const auto delay = tier::backoff_delay(cfg.retry_backoff, std::chrono::minutes(1),
                                           static_cast<int>(item.attempt) - 1);
    const std::uint64_t id = next_retry++;
    Item next{item.event, item.attempt + 1, item.claimed};
    std::weak_ptr<Slot> weak = weak_from_this();
    retries.emplace(
        id, std::make_unique<UvTimer>(loop, delay, std::chrono::milliseconds(0), [weak, id, next] {
          auto self = weak.lock();
          if (!self) {
            return;
          }
          self->retries.erase(id);
          // A retry goes before new work: it is older.
          self->queue.push_front(next);
          self->pump();
        }));
  }

  /// Stop taking events; pending retries are dropped (counted) and the queue drains.
  void retire(std::function<void()> drained) {
    accepting = false;
    stopping = true;
    dropped.inc(static_cast<double>(retries.size()));
    retries.clear();
    on_drained = std::move(drained);
    maybe_drained();
  }

  void maybe_drained() {
    if (!stopping || !on_drained || in_flight > 0 || !queue.empty() || pumping) {
      return;
    }
    if (handler_drained) {
      auto d = std::move(on_drained);
      on_drained = nullptr;
      d();
      return;
    }
    if (stop_called) {
      return;  // the handler's drained callback delivers on_drained
    }
    // stop() runs once per handler, even when a shutdown overtakes a reload's drain.
    stop_called = true;
    std::weak_ptr<Slot> weak = weak_from_this();
    handler->stop([weak] {
      auto self = weak.lock();
      if (!self || self->handler_drained) {
        return;
      }
      self->handler_drained = true;
      if (self->on_drained) {
        auto d = std::move(self->on_drained);
        self->on_drained = nullptr;
        d();
      }
    });
  }
};

/// The slots one channel is routed to, and whether any of them needs the parsed body or
/// the envelope id (de-duplication).
struct Route {
  std::vector<Dispatcher::Slot*> slots;
  bool needs_body = false;
  bool needs_id = false;
};

/// Most deployments see a handful of channels; past this many the cache starts over, so a
/// flood of distinct channel names cannot grow it without bound.
constexpr std::size_t kMaxCachedRoutes = 4096;

struct Dispatcher::Generation {
  std::vector<std::shared_ptr<Slot>> slots;
  std::size_t remaining = 0;
  TimerHandle deadline;
  std::function<void(bool)> done;
  /// channel -> route, filled on first sight of a channel; a reload builds a new
  /// generation, so the cache never outlives the handlers it points to.
  std::unordered_map<std::string, Route, Dispatcher::StringHash, std::equal_to<>> routes;

  /// The last channel routed: a burst on one channel skips even the hash.
  std::string last_channel;
  const Route* last_route = nullptr;

  const Route& route(std::string_view channel) {
    if (last_route != nullptr && channel == last_channel) {
      return *last_route;
    }
    last_channel.assign(channel);
    if (auto it = routes.find(channel); it != routes.end()) {
      last_route = &it->second;
      return it->second;
    }
    if (routes.size() >= kMaxCachedRoutes) {
      routes.clear();
    }
    Route r;
    for (auto& slot : slots) {
      bool match = false;
      for (const auto& glob : slot->on) {
        match = match || glob.match(channel);
      }
      if (match) {
        r.slots.push_back(slot.get());
        r.needs_body = r.needs_body || slot->needs_body || !slot->required.empty();
        r.needs_id = r.needs_id || slot->cfg.dedup_ttl.count() > 0;
      }
    }
    last_route = &routes.emplace(std::string(channel), std::move(r)).first->second;
    return *last_route;
  }
};

Dispatcher::Dispatcher(DispatcherEnv env) : env_(std::move(env)) {}

Dispatcher::~Dispatcher() {
  // Handlers go first: their destructors stop callbacks from reaching the slots.
  for (auto& gen : retiring_) {
    gen->deadline.reset();
    for (auto& s : gen->slots) {
      s->retries.clear();
      s->handler.reset();
    }
  }
  if (current_) {
    for (auto& s : current_->slots) {
      s->retries.clear();
      s->handler.reset();
    }
  }
}

void Dispatcher::install(const Config& config, const ResolvedHandlers& handlers) {
  auto gen = std::make_shared<Generation>();
  for (const auto& [hc, build] : handlers) {
    auto slot = std::make_shared<Slot>(env_, hc, config.key_prefix);
    slot->handler = build(slot->ctx);
    slot->required = slot->handler->required_fields();
    slot->needs_body = slot->handler->needs_body();
    if (!slot->cfg.dedup_ttl_set) {
      slot->cfg.dedup_ttl = slot->handler->default_dedup_ttl();
    }
    for (const auto& g : hc.on) {
      slot->on.emplace_back(g);
    }
    gen->slots.push_back(std::move(slot));
  }
  for (auto& s : gen->slots) {
    s->handler->start();
  }
  auto old = std::move(current_);
  current_ = std::move(gen);
  config_ = config;
  if (old) {
    retiring_.push_back(old);
    retire(old, config.shutdown_timeout, [this, old](bool clean) {
      if (!clean) {
        env_.log->warn("reload: old handlers did not drain within {} ms; abandoning their work",
                       config_.shutdown_timeout.count());
      }
      std::erase(retiring_, old);
    });
  }
}

void Dispatcher::retire(std::shared_ptr<Generation> gen, std::chrono::milliseconds timeout,
                        std::function<void(bool)> done) {
  gen->remaining = gen->slots.size();
  gen->done = std::move(done);
  std::weak_ptr<Generation> weak = gen;
  // Finishing defers to a fresh loop turn: `done` may destroy the generation, and it must
  // not do that inside a handler's own callback.
  auto finish = [this, weak](bool clean) {
    auto g = weak.lock();
    if (!g || !g->done) {
      return;
    }
    auto d = std::move(g->done);
    g->done = nullptr;
    g->deadline = std::make_unique<UvTimer>(env_.loop, std::chrono::milliseconds(0),
                                            std::chrono::milliseconds(0), [weak, d, clean] {
                                              if (auto g2 = weak.lock()) {
                                                g2->deadline.reset();
                                              }
                                              d(clean);
                                            });
  };
  if (gen->slots.empty()) {
    finish(true);
    return;
  }
  gen->deadline = std::make_unique<UvTimer>(env_.loop, timeout, std::chrono::milliseconds(0),
                                            [finish] { finish(false); });
  for (auto& s : gen->slots) {
    s->retire([weak, finish] {
      auto g = weak.lock();
      if (g && --g->remaining == 0) {
        finish(true);
      }
    });
  }
}

Dispatcher::PatternCounters& Dispatcher::pattern_counters(std::string_view label) {
  if (last_counters_ != nullptr && label == last_label_) {
    return *last_counters_;
  }
  last_label_.assign(label);
  if (auto it = patterns_.find(label); it != patterns_.end()) {
    last_counters_ = &it->second;
    return it->second;
  }
  if (patterns_.size() >= 1024) {
    patterns_.clear();  // the series stay in the registry; only the shortcut is dropped
  }
  auto& m = *env_.metrics;
  const tier::metrics::Labels labels{{"channel_pattern", std::string(label)}};
  PatternCounters c;
  c.received =
      &m.counter("tierd_messages_received_total", "Messages received, by subscription pattern")
           .with(labels);
  c.dispatched =
      &m.counter("tierd_messages_dispatched_total", "Messages handed to at least one handler")
           .with(labels);
  c.unrouted =
      &m.counter("tierd_messages_unrouted_total", "Valid messages no handler subscribed to")
           .with(labels);
  last_counters_ = &patterns_.emplace(std::string(label), c).first->second;
  return *last_counters_;
}

std::chrono::system_clock::time_point Dispatcher::received_time() {
  // One clock read per loop turn (uv_now changes when the loop wakes up), not per message:
  // a backlog is read in turns of dozens of messages, and they all arrived before it began.
  if (env_.loop == nullptr) {
    return std::chrono::system_clock::now();
  }
  const std::uint64_t tick = uv_now(env_.loop);
  if (tick != received_tick_ || received_at_ == std::chrono::system_clock::time_point{}) {
    received_tick_ = tick;
    received_at_ = std::chrono::system_clock::now();
  }
  return received_at_;
}

void Dispatcher::on_message(std::string_view pattern, std::string_view channel,
                            std::string_view payload) {
  if (!accepting_ || !current_) {
    return;
  }
  const std::string_view label = pattern.empty() ? channel : pattern;
  PatternCounters& counters = pattern_counters(label);
  counters.received->inc();
  auto reject = [&](const std::string& reason, const std::string& detail) {
    env_.metrics
        ->counter("tierd_messages_rejected_total",
                  "Messages dropped before any handler saw them, by pattern and reason")
        .with({{"channel_pattern", std::string(label)}, {"reason", reason}})
        .inc();
    if (auto held = limiter().allow("reject:" + reason)) {
      env_.log->warn("dropped a message on {} ({}{}): {}{}", tier::excerpt(channel, 100), reason,
                     detail.empty() ? "" : ", " + detail, tier::excerpt(payload, 60),
                     *held ? fmt::format(" ({} similar lines suppressed)", *held) : "");
    }
  };

  if (payload.size() > config_.max_message_bytes) {
    reject("too_large", std::to_string(payload.size()) + " bytes");
    return;
  }
  // validate: all: every message is validated in full, whether or not a handler will read
  // its body. when_parsed: only messages routed to a handler that reads the body or the id.
  const bool strict = config_.validate == Config::Validate::all;
  const Route* routed_to = strict ? nullptr : &current_->route(channel);
  if (routed_to != nullptr && routed_to->slots.empty()) {
    counters.unrouted->inc();
    return;
  }
  tier::json::Checked checked;
  if (routed_to == nullptr || routed_to->needs_body || routed_to->needs_id) {
    checked = tier::json::check(payload, kMaxJsonDepth, "id");
    if (!checked.ok()) {
      reject(tier::json::reason(checked.problem), "");
      return;
    }
    if (checked.member.present && !checked.member.is_string) {
      reject("wrong_type", "envelope id is not a string");
      return;
    }
  }
  const Route& route = routed_to != nullptr ? *routed_to : current_->route(channel);
  if (route.slots.empty()) {
    counters.unrouted->inc();
    return;
  }

  auto event = std::make_shared<Event>();
  if (route.needs_body) {
    // Cannot fail: check() accepts exactly what nlohmann accepts. json::parse builds
    // nlohmann's DOM without nlohmann's per-byte lexer.
    if (auto body = tier::json::parse(payload, kMaxJsonDepth)) {
      event->body = std::move(*body);
    }
    if (!event->body.is_object()) {
      reject("not_json", "");
      return;
    }
  }
  if (checked.member.present) {
    const std::string_view raw = checked.member.raw;
    event->id =
        raw.find('\\') == std::string_view::npos ? std::string(raw) : tier::json::unescape(raw);
  }
  event->channel = std::string(channel);
  event->pattern = std::string(label);
  event->raw_bytes = payload.size();
  event->received = received_time();
  std::shared_ptr<const Event> shared = std::move(event);

  bool routed = false;
  for (Slot* slot : route.slots) {
    std::string missing;
    for (const auto& f : slot->required) {
      if (!shared->body.contains(f)) {
        missing = f;
        break;
      }
    }
    if (!missing.empty()) {
      reject("missing_field", "handler " + slot->cfg.name + " needs '" + missing + "'");
      continue;
    }
    routed = true;
    slot->enqueue(Item{shared, 1});
  }
  if (routed) {
    counters.dispatched->inc();
  } else {
    counters.unrouted->inc();
  }
}

void Dispatcher::drain(std::chrono::milliseconds timeout, std::function<void(bool)> done) {
  accepting_ = false;
  auto gens = retiring_;
  if (current_) {
    gens.push_back(current_);
  }
  if (gens.empty()) {
    done(true);
    return;
  }
  // One tally over every generation; the first `false` wins.
  struct Tally {
    std::size_t left;
    bool clean = true;
    std::function<void(bool)> done;
  };
  auto tally = std::make_shared<Tally>(Tally{gens.size(), true, std::move(done)});
  for (auto& g : gens) {
    g->deadline.reset();
    for (auto& s : g->slots) {
      s->on_drained = nullptr;
    }
    retire(g, timeout, [tally](bool clean) {
      tally->clean = tally->clean && clean;
      if (--tally->left == 0 && tally->done) {
        auto d = std::move(tally->done);
        d(tally->clean);
      }
    });
  }
}

std::size_t Dispatcher::busy() const {
  std::size_t n = 0;
  auto count = [&n](const std::shared_ptr<Generation>& g) {
    for (const auto& s : g->slots) {
      n += s->queue.size() + s->in_flight;
    }
  };
  if (current_) {
    count(current_);
  }
  for (const auto& g : retiring_) {
    count(g);
  }
  return n;
}

std::vector<std::string> Dispatcher::handler_names() const {
  std::vector<std::string> out;
  if (current_) {
    for (const auto& s : current_->slots) {
      out.push_back(s->cfg.name);
    }
  }
  return out;
}

}  // namespace tierd
