#include "tier/uv/patterns.hpp"

#include <algorithm>
#include <memory>

#include "tier/uv/handle.hpp"

namespace tier::uv {

namespace {

using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

struct Aside : std::enable_shared_from_this<Aside> {
  Aside(AsyncClient& c, const CachePatterns& p, TierKey k, AsyncLoader l, AsideOptions o,
        std::function<void(Result<Json>)> d)
      : client(c),
        patterns(p),
        key(std::move(k)),
        loader(std::move(l)),
        options(o),
        done(std::move(d)),
        token(CachePatterns::new_token()),
        deadline(Clock::now() + o.wait),
        timer(c.loop()) {}

  void lookup() {
    LookupOptions lo;
    lo.lease = options.lease;
    lo.beta = options.beta;
    client.run(patterns.lookup(key, token, lo),
               [self = shared_from_this()](Result<Lookup> r) { self->on_lookup(std::move(r)); });
  }

  void on_lookup(Result<Lookup> r) {
    if (!r.ok()) {
      finish(r.error());
      return;
    }
    const Cache& cache = patterns.cache();
    switch (r->kind) {
      case Lookup::Kind::hit:
        cache.count(key.tier, true);
        finish(decode_json(r->value, key.key));
        return;
      case Lookup::Kind::refresh:
        cache.count(key.tier, true);
        cache.count_event(key.tier, CacheEvent::refresh);
        stale = std::move(r->value);
        load();
        return;
      case Lookup::Kind::load:
        if (!missed) {
          cache.count(key.tier, false);
        }
        load();
        return;
      case Lookup::Kind::wait:
        if (!missed) {
          cache.count(key.tier, false);
          missed = true;
        }
        if (Clock::now() >= deadline) {
          if (!options.load_on_timeout) {
            finish(Error{ErrorKind::timeout, "cache_aside: '" + key.key +
                                                 "' still loading elsewhere after " +
                                                 std::to_string(options.wait.count()) + " ms"});
            return;
          }
          load();
          return;
        }
        timer.start(std::min({pause, r->lease_left + ms(1),
                              std::chrono::duration_cast<ms>(deadline - Clock::now()) + ms(1)}),
                    ms(0), [self = shared_from_this()] { self->lookup(); });
        pause = std::min(pause * 2, ms(50));
        return;
    }
  }

  void load() {
    started = Clock::now();
    loader([self = shared_from_this()](Result<Json> r) { self->on_loaded(std::move(r)); });
  }

  void on_loaded(Result<Json> r) {
    const Cache& cache = patterns.cache();
    Result<std::string> text =
        r.ok() ? cache.encode(r.value(), key.key) : Result<std::string>(r.error());
    if (!text.ok()) {
      cache.count_event(key.tier, CacheEvent::load_failure);
      // The lease goes first, so that the next caller loads at once; then the answer (an
      // early refresh that failed keeps the old value).
      client.run(patterns.release(key, token),
                 [self = shared_from_this(), error = text.error()](Result<bool>) {
                   if (self->stale) {
                     self->finish(decode_json(*self->stale, self->key.key));
                   } else {
                     self->finish(error);
                   }
                 });
      return;
    }
    const auto took = std::chrono::duration_cast<ms>(Clock::now() - started);
    client.run(patterns.store(key, token, std::move(text).value(),
                              patterns.ttl_of(key, options.ttl), took),
               [self = shared_from_this(), value = std::move(r).value()](Result<Unit> s) mutable {
                 if (!s.ok()) {
                   self->finish(s.error());
                   return;
                 }
                 self->patterns.cache().count_event(self->key.tier, CacheEvent::load);
                 self->finish(std::move(value));
               });
  }

  void finish(Result<Json> r) {
    timer.close();
    if (done) {
      auto d = std::move(done);
      done = nullptr;
      d(std::move(r));
    }
  }

  AsyncClient& client;
  const CachePatterns& patterns;
  TierKey key;
  AsyncLoader loader;
  AsideOptions options;
  std::function<void(Result<Json>)> done;
  std::string token;
  Clock::time_point deadline;
  Clock::time_point started;
  ms pause{5};
  bool missed = false;
  std::optional<std::string> stale;
  Timer timer;
};

}  // namespace

void cache_aside(AsyncClient& client, const CachePatterns& patterns, TierKey key,
                 AsyncLoader loader, AsideOptions options, std::function<void(Result<Json>)> done) {
  auto a = std::make_shared<Aside>(client, patterns, std::move(key), std::move(loader), options,
                                   std::move(done));
  a->lookup();
}

void refresh_ahead(AsyncClient& client, const CachePatterns& patterns, TierKey key,
                   AsyncLoader loader, double refresh_ratio, AsideOptions options,
                   std::function<void(Result<Json>)> done) {
  const std::string token = CachePatterns::new_token();
  LookupOptions lo;
  lo.lease = options.lease;
  lo.beta = 0;
  lo.refresh_ratio = refresh_ratio;
  lo.full_ttl = patterns.ttl_of(key, options.ttl);
  client.run(patterns.lookup(key, token, lo), [&client, &patterns, key, loader = std::move(loader),
                                               options, token,
                                               done = std::move(done)](Result<Lookup> r) mutable {
    if (!r.ok()) {
      done(r.error());
      return;
    }
    const Cache& cache = patterns.cache();
    if (r->kind == Lookup::Kind::load || r->kind == Lookup::Kind::wait) {
      // A miss: an ordinary single-flight load.
      if (r->kind == Lookup::Kind::load) {
        (void)client.run(patterns.release(key, token), [](Result<bool>) {});
      }
      options.beta = 0;
      cache_aside(client, patterns, std::move(key), std::move(loader), options, std::move(done));
      return;
    }
    cache.count(key.tier, true);
    done(decode_json(r->value, key.key));  // the current value, at once
    if (r->kind != Lookup::Kind::refresh) {
      return;
    }
    // The one refresh across every process, on the loop.
    cache.count_event(key.tier, CacheEvent::refresh);
    const auto started = std::chrono::steady_clock::now();
    loader([&client, &patterns, key, options, token, started](Result<Json> loaded) mutable {
      const Cache& c = patterns.cache();
      Result<std::string> text =
          loaded.ok() ? c.encode(loaded.value(), key.key) : Result<std::string>(loaded.error());
      if (!text.ok()) {
        c.count_event(key.tier, CacheEvent::load_failure);  // the old value stays
        client.run(patterns.release(key, token), [](Result<bool>) {});
        return;
      }
      const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - started);
      client.run(patterns.store(key, token, std::move(text).value(),
                                patterns.ttl_of(key, options.ttl), took),
                 [&patterns, tier = key.tier](Result<Unit> s) {
                   patterns.cache().count_event(
                       tier, s.ok() ? CacheEvent::load : CacheEvent::load_failure);
                 });
    });
  });
}

}  // namespace tier::uv
