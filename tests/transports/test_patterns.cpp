// Cache patterns against the harness's real redis-server: single-flight cache-aside across
// threads and processes, a failing loader's lease, XFetch through the stored expiry,
// refresh-ahead, write-through, warming, the async driver, and the counters.

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/patterns.hpp"
#include "tier/sync/patterns.hpp"
#include "tier/uv/patterns.hpp"

using namespace std::chrono_literals;
using tier::Json;

namespace {

/// A loader that counts its calls in Redis (so every process sees them) and takes a while.
tier::Json slow_load(tier::Client& c, const std::string& counter) {
  c.run(tier::raw({"INCR", counter}));
  std::this_thread::sleep_for(200ms);  // the expensive computation being protected
  return Json{{"answer", 42}};
}

int hammer(const std::string& url, const tier::Cache& cache, const tier::TierKey& key,
           const std::string& counter, int threads) {
  std::atomic<int> right{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      tier::Client client(url);
      tier::CachePatterns p(cache);
      auto v = tier::cache_aside(client, p, key, [&] { return slow_load(client, counter); });
      if (v == Json{{"answer", 42}}) {
        ++right;
      }
    });
  }
  for (auto& th : pool) {
    th.join();
  }
  return right.load();
}

}  // namespace

TEST_CASE("cache_aside: 50 callers in two processes on a cold key run the loader once",
          "[patterns]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "aside-flight");
  tier::Cache cache({.prefix = keys.prefix()});
  const auto key = cache.project("p1", "report");
  const std::string counter = keys("loads");

  const auto [here, there] =
      tiertest::in_two_processes([&] { return hammer(redis.url(), cache, key, counter, 25); });
  CHECK(here == 25);
  CHECK(there == 25);
  CHECK(redis.client().run(tier::raw({"GET", counter})).str == "1");
  // The entry's layout is the documented contract: HGET key v.
  CHECK(Json::parse(redis.client().run(tier::raw({"HGET", key.key, "v"})).str)["answer"] == 42);
  const auto ttl = redis.client().run(tier::raw({"TTL", key.key})).integer;
  CHECK(ttl > 3500);
  CHECK(ttl <= 3600);
  CHECK(cache.stats().loads[1] <= 1);  // the one load may have been the other process's
}

TEST_CASE("cache_aside: a failing loader releases the lease at once and stores nothing",
          "[patterns]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "aside-fail");
  tier::Cache cache({.prefix = keys.prefix()});
  tier::CachePatterns p(cache);
  const auto key = cache.session("s1", "prefs");
  tier::AsideOptions o;
  o.lease = 60s;  // were the lease kept, the next caller would wait a minute
  CHECK_THROWS_WITH(tier::cache_aside(
                        c, p, key, []() -> Json { throw std::runtime_error("db down"); }, o),
                    "db down");
  CHECK(c.run(tier::raw({"EXISTS", key.key})).integer == 0);
  CHECK(cache.stats().load_failures[0] == 1);
  const auto start = std::chrono::steady_clock::now();
  CHECK(tier::cache_aside(
            c, p, key, [] { return Json("ok"); }, o) == "ok");
  CHECK(std::chrono::steady_clock::now() - start < 1s);

  // A caller that waits in vain fails or loads itself, as configured.
  const auto busy = cache.session("s1", "busy");
  const std::string other = tier::CachePatterns::new_token();
  REQUIRE(c.run(p.lookup(busy, other)).kind == tier::Lookup::Kind::load);  // someone else loads
  tier::AsideOptions strict;
  strict.wait = 100ms;
  strict.load_on_timeout = false;
  CHECK_THROWS_AS(tier::cache_aside(
                      c, p, busy, [] { return Json(1); }, strict),
                  tier::TimeoutError);
  strict.load_on_timeout = true;
  CHECK(tier::cache_aside(
            c, p, busy, [] { return Json(2); }, strict) == 2);
}

TEST_CASE("XFetch: a read recomputes early when the draw says the expiry is near", "[patterns]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "xfetch");
  tier::Cache cache({.prefix = keys.prefix()});
  tier::CachePatterns p(cache);
  const auto key = cache.global("model", "m1", "summary");
  // A value that took 10 s to compute and expires in 5 s: with beta 1, a draw of 0.5 gives
  // now + 10 s * ln 2 = now + 6.9 s >= expiry, so the read refreshes; a draw of 0.9 gives
  // now + 1.05 s < expiry, so it does not. (The stored delta and TTL drive it; no waiting.)
  c.run(p.store(key, "", R"({"v":1})", 5000ms, 10000ms));
  tier::LookupOptions keep;
  keep.rand = 0.9;
  CHECK(c.run(p.lookup(key, "t1", keep)).kind == tier::Lookup::Kind::hit);
  tier::LookupOptions early;
  early.rand = 0.5;
  auto l = c.run(p.lookup(key, "t2", early));
  CHECK(l.kind == tier::Lookup::Kind::refresh);
  CHECK(l.value == R"({"v":1})");
  // One refresher at a time: the lease holds others to the current value.
  CHECK(c.run(p.lookup(key, "t3", early)).kind == tier::Lookup::Kind::hit);
  // beta 0 turns it off.
  c.run(p.release(key, "t2"));
  tier::LookupOptions off;
  off.rand = 0.01;
  off.beta = 0;
  CHECK(c.run(p.lookup(key, "t4", off)).kind == tier::Lookup::Kind::hit);

  // Through the driver: a hot key whose recomputation is slow compared with its TTL is
  // recomputed by a reader before it expires, and the reader gets the new value.
  c.run(p.store(key, "", R"({"v":1})", 5000ms, 100000000ms));
  CHECK(tier::cache_aside(c, p, key, [] { return Json{{"v", 2}}; }) == Json{{"v", 2}});
  CHECK(cache.stats().refreshes[2] == 1);
}

TEST_CASE("refresh-ahead serves the current value while one refresh runs in the background",
          "[patterns]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "ahead");
  tier::Cache cache({.prefix = keys.prefix()});
  tier::CachePatterns p(cache);
  const auto key = cache.project("p1", "metrics");
  tier::RefreshAhead ahead(c, p);
  tier::AsideOptions o;
  o.ttl = 10s;
  std::atomic<int> loads{0};
  CHECK(ahead.get(
            key, [&] { return Json(++loads); }, 0.5, o) == 1);
  // Below half its TTL left (stored with 4 s of 10): the read returns 1 at once and a
  // refresh stores 2.
  c.run(p.store(key, "", "1", 4000ms, 1ms));
  std::atomic<bool> release{false};
  CHECK(ahead.get(
            key,
            [&] {
              while (!release) {
                std::this_thread::yield();
              }
              return Json(++loads);
            },
            0.5, o) == 1);
  CHECK(ahead.pending() == 1);
  release = true;
  REQUIRE(tiertest::eventually([&] { return ahead.pending() == 0; }));
  CHECK(Json::parse(c.run(tier::raw({"HGET", key.key, "v"})).str) == 2);
  CHECK(c.run(tier::raw({"PTTL", key.key})).integer > 9000);

  // A failing refresh keeps the old value and is counted.
  c.run(p.store(key, "", "2", 4000ms, 1ms));
  CHECK(ahead.get(
            key, []() -> Json { throw std::runtime_error("nope"); }, 0.5, o) == 2);
  REQUIRE(tiertest::eventually([&] { return ahead.pending() == 0; }));
  CHECK(Json::parse(c.run(tier::raw({"HGET", key.key, "v"})).str) == 2);
  CHECK(cache.stats().load_failures[1] == 1);
}

TEST_CASE("write-through persists first and leaves the cache untouched when that fails",
          "[patterns]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "through");
  tier::Cache cache({.prefix = keys.prefix()});
  tier::CachePatterns p(cache);
  const auto key = cache.project("p1", "settings");
  std::vector<Json> persisted;
  tier::write_through(c, p, key, Json{{"lint", true}},
                      [&](const Json& v) { persisted.push_back(v); });
  CHECK(persisted.size() == 1);
  CHECK(Json::parse(c.run(tier::raw({"HGET", key.key, "v"})).str) == Json{{"lint", true}});
  CHECK_THROWS_WITH(
      tier::write_through(c, p, key, Json{{"lint", false}},
                          [](const Json&) { throw std::runtime_error("constraint"); }),
      "constraint");
  CHECK(Json::parse(c.run(tier::raw({"HGET", key.key, "v"})).str) == Json{{"lint", true}});
}

TEST_CASE("warm loads in batches with pipelined writes; a failing batch is counted", "[patterns]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "warm");
  tier::Cache cache({.prefix = keys.prefix()});
  tier::CachePatterns p(cache);
  std::vector<tier::TierKey> all;
  for (int i = 0; i < 250; ++i) {
    all.push_back(cache.project("p" + std::to_string(i), "baseline"));
  }
  std::atomic<int> batches{0};
  const auto stored = tier::warm(
      c, p, all,
      [&](const std::vector<tier::TierKey>& part) {
        if (++batches == 2) {
          throw std::runtime_error("one batch fails");
        }
        std::vector<Json> out;
        for (const auto& k : part) {
          out.push_back(Json{{"key", k.key}});
        }
        return out;
      },
      100, 2);
  CHECK(batches == 3);
  CHECK(stored == 150);  // 100 + 50; the failing batch held 100 keys (or 50)
  CHECK(cache.stats().loads[1] == 150);
  CHECK(cache.stats().load_failures[1] == 100);
}

TEST_CASE("async cache_aside: 20 callers on the loop run the loader once", "[patterns]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "aside-async");
  tier::Cache cache({.prefix = keys.prefix()});
  tier::CachePatterns p(cache);
  tiertest::TestLoop loop;
  tier::AsyncClient client(loop.get(), {.endpoint = tier::RedisEndpoint::parse(redis.url())});
  client.start();
  const auto key = cache.session("s1", "expensive");
  int loads = 0;
  std::vector<std::function<void(tier::Result<Json>)>> pending;
  int answered = 0;
  for (int i = 0; i < 20; ++i) {
    tier::uv::cache_aside(
        client, p, key,
        [&](std::function<void(tier::Result<Json>)> done) {
          ++loads;
          pending.push_back(std::move(done));  // completes later, on the loop
        },
        {},
        [&](tier::Result<Json> r) {
          REQUIRE(r.ok());
          CHECK(*r == Json("v"));
          ++answered;
        });
  }
  REQUIRE(loop.run_until([&] { return !pending.empty(); }));
  for (auto& d : pending) {
    d(Json("v"));
  }
  REQUIRE(loop.run_until([&] { return answered == 20; }, 5s));
  CHECK(loads == 1);

  // A loader failing through its callback: the error reaches the caller, the lease goes.
  const auto bad = cache.session("s1", "bad");
  std::optional<tier::Result<Json>> got;
  tier::uv::cache_aside(
      client, p, bad,
      [](std::function<void(tier::Result<Json>)> done) {
        done(tier::Error{tier::ErrorKind::io, "backend down"});
      },
      {}, [&](tier::Result<Json> r) { got = std::move(r); });
  REQUIRE(loop.run_until([&] { return got.has_value(); }));
  REQUIRE_FALSE(got->ok());
  CHECK(got->error().message == "backend down");
  CHECK(redis.client().run(tier::raw({"EXISTS", bad.key})).integer == 0);
  client.close();
}

TEST_CASE("cache_aside: a Python app on the same script shares the entry", "[patterns]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "aside-python");
  tier::Cache cache({.prefix = keys.prefix()});
  tier::CachePatterns p(cache);
  const auto key = cache.project("p-42", "report");
  // Eight Python threads load it once (the script asserts that), through Debian's python3-redis.
  tiertest::run_command({"/usr/bin/python3",
                         std::string(TIERD_SOURCE_DIR) + "/clients/python/examples/cache_aside.py",
                         redis.url(), key.key});
  // C++ then hits the entry Python stored, without loading.
  bool loaded = false;
  tier::AsideOptions o;
  o.beta = 0;
  auto v = tier::cache_aside(
      c, p, key,
      [&] {
        loaded = true;
        return Json();
      },
      o);
  CHECK_FALSE(loaded);
  CHECK(v == Json{{"report", "p-42"}, {"rows", 3}});
}

TEST_CASE("refresh-ahead on the loop serves the current value and refreshes once", "[patterns]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "ahead-async");
  tier::Cache cache({.prefix = keys.prefix()});
  tier::CachePatterns p(cache);
  tiertest::TestLoop loop;
  tier::AsyncClient client(loop.get(), {.endpoint = tier::RedisEndpoint::parse(redis.url())});
  client.start();
  const auto key = cache.project("p1", "metrics");
  redis.client().run(p.store(key, "", "1", 4000ms, 1ms));  // 4 s left of 10: below half
  tier::AsideOptions o;
  o.ttl = 10s;
  std::function<void(tier::Result<Json>)> finish_load;
  std::optional<tier::Result<Json>> got;
  tier::uv::refresh_ahead(
      client, p, key,
      [&](std::function<void(tier::Result<Json>)> d) { finish_load = std::move(d); }, 0.5, o,
      [&](tier::Result<Json> r) { got = std::move(r); });
  REQUIRE(loop.run_until([&] { return got.has_value() && finish_load != nullptr; }));
  CHECK(got->value() == 1);  // at once, before the refresh completes
  finish_load(Json(2));
  REQUIRE(loop.run_until([&] {
    return Json::parse(redis.client().run(tier::raw({"HGET", key.key, "v"})).str) == 2;
  }));
  CHECK(cache.stats().refreshes[1] == 1);
  client.close();
}
