// The write-behind worker while its servers fail: PostgreSQL stopped and started again,
// Redis restarted with AOF. Each case checks the final table row by row and that nothing
// stays pending.
#include "worker_rig.hpp"

using namespace std::chrono_literals;
using tier::Json;
using wbtest::Rig;

namespace {

void enqueue(tier::Client& c, const tier::WriteBehind& wb, const std::string& table, int from,
             int to, int version) {
  tier::Pipeline p;
  for (int i = from; i < to; ++i) {
    p.add(wb.enqueue(
              table,
              {{"id", "r" + std::to_string(i)}, {"name", "v" + std::to_string(version)}, {"n", i}},
              version),
          [](tier::Result<std::string> r) { REQUIRE(r.ok()); });
  }
  p.run(c);
}

// Every row r<from..to> holds version `version`.
void check_rows(const tiertest::PgServer& pg, const std::string& table, int n,
                const std::map<int, int>& versions) {
  auto rows = wbtest::rows(pg, table);
  REQUIRE(rows.size() == static_cast<std::size_t>(n));
  std::map<std::string, std::string> got;
  for (auto& r : rows) {
    got[r.substr(0, r.find('|'))] = r;
  }
  for (auto [i, v] : versions) {
    std::string id = "r" + std::to_string(i);
    CHECK(got[id] ==
          id + "|v" + std::to_string(v) + "|" + std::to_string(i) + "|" + std::to_string(v));
  }
}

}  // namespace

TEST_CASE("Worker: PostgreSQL stopped for 10 s, the backlog waits in Redis; all lands after start",
          "[worker][fault]") {
  auto& redis = tiertest::redis();
  tiertest::PgServer pg;
  tiertest::TestKeys keys(redis.client(), "wb-pgdown");
  const std::string table = "wb_pgdown";
  wbtest::create_items(pg, table);
  tier::WriteBehind wb({.prefix = keys.prefix()});
  auto cfg = wbtest::items_table(table);
  cfg.max_rows = 50;
  Rig rig(redis.url(), pg.conninfo(), {cfg}, keys.prefix());
  REQUIRE(rig.start().ok());
  auto stream = wb.stream(table);
  auto drained = [&] {
    return wbtest::pending(redis.client(), stream) == 0 &&
           wbtest::xlen(redis.client(), stream) == 0;
  };
  std::map<int, int> expected;
  enqueue(redis.client(), wb, table, 0, 100, 1);
  for (int i = 0; i < 100; ++i) {
    expected[i] = 1;
  }
  REQUIRE(rig.run_until(drained));

  pg.stop();
  const auto stopped = std::chrono::steady_clock::now();
  enqueue(redis.client(), wb, table, 50, 400, 2);
  for (int i = 50; i < 400; ++i) {
    expected[i] = 2;
  }
  // Batches fail and are retried with backoff; reading stops, so at most one batch in
  // flight plus one buffered are delivered to the worker: the rest waits in the stream.
  REQUIRE(rig.run_until([&] { return rig.stats(table).retries >= 3; }, 10s));
  rig.run_until([] { return false; }, 2s);
  CHECK(rig.stats(table).retrying);
  CHECK(wbtest::pending(redis.client(), stream) <= 2 * 50);
  // The backlog shows in the stats and metrics: pending entries and their age.
  CHECK(rig.run_until([&] {
    auto st = rig.stats(table);
    return st.pending > 0 && st.oldest_pending_age_ms >= 1000;
  }));
  CHECK(rig.registry().value("tierd_writebehind_pending", {{"table", table}}) > 0);
  CHECK(rig.registry().value("tierd_writebehind_oldest_pending_seconds", {{"table", table}}) >= 1);
  CHECK(rig.registry().value("tierd_writebehind_retries_total", {{"table", table}}) >= 3);
  CHECK(wbtest::xlen(redis.client(), stream) == 350);

  // Down for 10 s in all (the loop keeps running meanwhile: retries, status refresh).
  rig.run_until([&] { return std::chrono::steady_clock::now() - stopped >= 10s; }, 15s);
  CHECK(wbtest::xlen(redis.client(), stream) == 350);
  pg.start();
  REQUIRE(rig.run_until(drained, 30s));
  check_rows(pg, table, 400, expected);
  CHECK_FALSE(rig.stats(table).retrying);
  CHECK(rig.stats(table).dead_letters == 0);
}

TEST_CASE("Worker: Redis restarted with AOF, nothing lost or written twice", "[worker][fault]") {
  tiertest::RedisServer redis({.appendonly = true});
  auto& pg = tiertest::postgres();
  const std::string table = "wb_redis_restart";
  wbtest::create_items(pg, table);
  pg.query("DROP TABLE IF EXISTS wb_rr_log; CREATE TABLE wb_rr_log(id text, version bigint)");
  pg.query(
      "CREATE OR REPLACE FUNCTION wb_rr_log_f() RETURNS trigger AS $$ BEGIN INSERT INTO "
      "wb_rr_log VALUES (NEW.id, NEW.version); RETURN NEW; END $$ LANGUAGE plpgsql; "
      "CREATE TRIGGER wb_rr_t AFTER INSERT OR UPDATE ON wb_redis_restart FOR EACH ROW "
      "EXECUTE FUNCTION wb_rr_log_f()");
  tier::WriteBehind wb;
  auto cfg = wbtest::items_table(table);
  cfg.max_rows = 40;
  Rig rig(redis.url(), pg.conninfo(), {cfg}, "");
  REQUIRE(rig.start().ok());
  auto stream = wb.stream(table);
  auto drained = [&] {
    return wbtest::pending(redis.client(), stream) == 0 &&
           wbtest::xlen(redis.client(), stream) == 0;
  };
  std::map<int, int> expected;
  enqueue(redis.client(), wb, table, 0, 200, 1);
  for (int i = 0; i < 200; ++i) {
    expected[i] = 1;
  }
  // Restart while the worker is busy with the backlog.
  rig.run_until([&] { return rig.stats(table).batches_flushed >= 1; });
  redis.restart();
  enqueue(redis.client(), wb, table, 100, 300, 2);
  for (int i = 100; i < 300; ++i) {
    expected[i] = 2;
  }
  REQUIRE(rig.run_until(drained, 30s));
  check_rows(pg, table, 300, expected);
  // Each version of each row was applied at most once: at-least-once delivery never
  // showed up as a second write, thanks to ACK after COMMIT and the version guard.
  auto dup = pg.query(
      "SELECT count(*) FROM (SELECT id, version FROM wb_rr_log GROUP BY 1, 2 "
      "HAVING count(*) > 1) d");
  CHECK(dup.at(0) == "0");
  CHECK(rig.stats(table).dead_letters == 0);
  pg.query("DROP TABLE wb_rr_log");
}
