// Locks against the harness's real redis-server (and a private one this test restarts):
// mutual exclusion across threads and processes, fencing tokens, renewal, loss, and tokens
// that must match.

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/sync/lock.hpp"
#include "tier/uv/lock.hpp"

using namespace std::chrono_literals;

namespace {

/// Threads that take the lock in turn; each holder checks in Redis that it is alone.
int contend(const std::string& url, const tier::Locks& locks, const std::string& inside,
            int threads, int rounds) {
  std::atomic<int> overlaps{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      tier::Client client(url);
      for (int i = 0; i < rounds; ++i) {
        auto lock = tier::Lock::acquire(client, locks, "job", {.lease = 5000ms, .wait = 30s});
        if (!lock) {
          ++overlaps;  // never expected: the wait is long
          continue;
        }
        if (client.run(tier::raw({"INCR", inside})).integer != 1) {
          ++overlaps;
        }
        client.run(tier::raw({"DECR", inside}));
        lock->release();
      }
    });
  }
  for (auto& th : pool) {
    th.join();
  }
  return overlaps.load();
}

}  // namespace

TEST_CASE("locks: 8 threads in 2 processes never hold one lock at once", "[lock]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "lock-contend");
  tier::Locks locks(keys.prefix());
  const std::string inside = keys("inside");
  const auto [here, there] =
      tiertest::in_two_processes([&] { return contend(redis.url(), locks, inside, 4, 10); });
  CHECK(here == 0);
  CHECK(there == 0);
  // 80 acquisitions: the fence counted every one.
  CHECK(redis.client().run(locks.status("job")).last_fence == 80);
}

TEST_CASE("locks: fencing tokens grow; a wrong token neither releases nor extends", "[lock]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "lock-fence");
  tier::Locks locks(keys.prefix());
  auto a = c.run(locks.try_acquire("j", "tok-a", 60000ms));
  REQUIRE(a.acquired);
  auto b = c.run(locks.try_acquire("j", "tok-b", 60000ms));
  CHECK_FALSE(b.acquired);
  CHECK(b.ttl > 59000ms);
  CHECK_FALSE(c.run(locks.release("j", "tok-b")));
  CHECK_FALSE(c.run(locks.extend("j", "tok-b", 60000ms)));
  CHECK(c.run(locks.status("j")).held);
  CHECK(c.run(locks.release("j", "tok-a")));
  auto again = c.run(locks.try_acquire("j", "tok-b", 60000ms));
  REQUIRE(again.acquired);
  CHECK(again.fence > a.fence);
  // Keys as documented: the lock and its fence share the hash tag.
  CHECK(c.run(tier::raw({"GET", keys.prefix() + "lock:{j}"})).str == "tok-b");
  CHECK(c.run(tier::raw({"GET", keys.prefix() + "lock:{j}:fence"})).str ==
        std::to_string(again.fence));
  auto bad = c.try_run(locks.try_acquire("a{b}", "t", 1000ms));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().kind == tier::ErrorKind::invalid);
}

TEST_CASE("locks: renewal keeps a lock for 10 leases; a stale holder loses it", "[lock]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "lock-renew");
  tier::Locks locks(keys.prefix());
  auto held = tier::Lock::acquire(c, locks, "r", {.lease = 150ms});
  REQUIRE(held);
  const auto until = std::chrono::steady_clock::now() + 1500ms;  // 10 leases
  REQUIRE(tiertest::eventually([&] { return std::chrono::steady_clock::now() >= until; }, 3s));
  CHECK_FALSE(held->lost());
  CHECK_FALSE(tier::Lock::acquire(c, locks, "r", {.lease = 150ms}));

  // A holder that does not renew (a paused process) loses it; another takes it with a
  // greater fence, and the stale holder's release does nothing.
  auto stale = tier::Lock::acquire(c, locks, "s", {.lease = 150ms, .renew = false});
  REQUIRE(stale);
  auto next = tier::Lock::acquire(c, locks, "s", {.lease = 5000ms, .wait = 3s});
  REQUIRE(next);
  CHECK(next->fence() > stale->fence());
  stale->release();
  CHECK(c.run(locks.status("s")).held);  // still next's
}

TEST_CASE("locks: a Redis restart during a hold is noticed as a loss", "[lock]") {
  tiertest::RedisServer own;
  tier::ClientOptions o;
  o.endpoint = tier::RedisEndpoint::parse(own.url());
  o.command_timeout = 200ms;
  tier::Client client(o);
  tier::Locks locks;
  std::atomic<bool> lost{false};
  auto held =
      tier::Lock::acquire(client, locks, "x", {.lease = 600ms, .on_lost = [&] { lost = true; }});
  REQUIRE(held);
  own.restart();  // no persistence: the lock key is gone
  REQUIRE(tiertest::eventually([&] { return lost.load(); }, 3s));
  CHECK(held->lost());
}

TEST_CASE("leadership on the loop: one leader at a time, and a takeover when it dies", "[lock]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "lock-leader");
  tiertest::TestLoop loop;
  tier::AsyncClient a_link(loop.get(), {.endpoint = tier::RedisEndpoint::parse(redis.url())});
  tier::AsyncClient b_link(loop.get(), {.endpoint = tier::RedisEndpoint::parse(redis.url())});
  a_link.start();
  b_link.start();
  int a_changes = 0;
  bool a_leads = false;
  bool b_leads = false;
  bool both = false;
  tier::uv::LockHolder a(a_link, tier::Locks(keys.prefix()), "tierd:leader:probe", 300ms,
                         [&](bool held, std::int64_t fence) {
                           ++a_changes;
                           a_leads = held;
                           both = both || (a_leads && b_leads);
                           CHECK((held ? fence > 0 : fence == 0));
                         });
  tier::uv::LockHolder b(b_link, tier::Locks(keys.prefix()), "tierd:leader:probe", 300ms,
                         [&](bool held, std::int64_t) {
                           b_leads = held;
                           both = both || (a_leads && b_leads);
                         });
  a.start();
  REQUIRE(loop.run_until([&] { return a_leads; }));
  b.start();
  // Renewed for several leases, a stays the leader and b waits.
  const auto until = std::chrono::steady_clock::now() + 1200ms;
  REQUIRE(loop.run_until([&] { return std::chrono::steady_clock::now() >= until; }, 3s));
  CHECK(a_leads);
  CHECK_FALSE(b_leads);

  // a's process "dies": its connection goes and nothing renews. a notices by its own clock
  // within the lease; b takes over once the lease has run out in Redis.
  a_link.close();
  REQUIRE(loop.run_until([&] { return !a_leads && b_leads; }, 3s));
  CHECK_FALSE(both);
  CHECK(b.fence() > 0);
  b.stop();  // steps down and releases
  REQUIRE(loop.run_until([&] {
    return redis.client()
               .run(tier::raw({"EXISTS", keys.prefix() + "lock:{tierd:leader:probe}"}))
               .integer == 0;
  }));
  a.stop();
}

TEST_CASE("locks: a stale holder's fenced write is refused by PostgreSQL", "[lock]") {
  auto& redis = tiertest::redis();
  auto& pg = tiertest::postgres();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "lock-fenced");
  tier::Locks locks(keys.prefix());
  pg.query(
      "DROP TABLE IF EXISTS fenced_reports; CREATE TABLE fenced_reports (id int PRIMARY KEY, "
      "body text, fence bigint NOT NULL DEFAULT 0); INSERT INTO fenced_reports VALUES (1, "
      "'initial', 0)");
  // The documented guard: a write carries its fencing token and loses to a newer one.
  auto write = [&](const std::string& body, std::int64_t fence) {
    return pg
        .query("WITH u AS (UPDATE fenced_reports SET body = '" + body +
               "', fence = " + std::to_string(fence) + " WHERE id = 1 AND fence < " +
               std::to_string(fence) + " RETURNING 1) SELECT count(*) FROM u")
        .at(0);
  };
  // A holder that pauses past its lease (it stops renewing, as a SIGSTOPped process would).
  auto paused = tier::Lock::acquire(c, locks, "report", {.lease = 150ms, .renew = false});
  REQUIRE(paused);
  // Meanwhile another holder acquires once the lease has run out, and writes.
  auto next = tier::Lock::acquire(c, locks, "report", {.lease = 5000ms, .wait = 3s});
  REQUIRE(next);
  CHECK(write("from the new holder", next->fence()) == "1");
  // The paused holder wakes up and writes with its old token: refused.
  CHECK(write("from the stale holder", paused->fence()) == "0");
  CHECK(pg.query("SELECT body FROM fenced_reports WHERE id = 1").at(0) == "from the new holder");
}

TEST_CASE("locks: a Python holder on the same script shares the lock and its fence", "[lock]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "lock-python");
  tier::Locks locks(keys.prefix());
  tiertest::run_command({"/usr/bin/python3",
                         std::string(TIERD_SOURCE_DIR) + "/clients/python/examples/lock_example.py",
                         redis.url(), keys.prefix()});
  // Python left the lock held with fence 2; C++ sees it and cannot take it.
  const auto s = c.run(locks.status("py-job"));
  CHECK(s.held);
  CHECK(s.last_fence == 2);
  CHECK_FALSE(c.run(locks.try_acquire("py-job", "cpp", 1000ms)).acquired);
}
