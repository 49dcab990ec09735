// Tombstones: a delete of a versioned table leaves (table, key, version) in tierd_tombstones
// in the same transaction, so an older upsert arriving in a later batch never re-creates the
// row. Real Redis and PostgreSQL; every case checks the table and the tombstones.
#include <libpq-fe.h>

#include "worker_rig.hpp"

using namespace std::chrono_literals;
using tier::Json;
using wbtest::Rig;

namespace {

struct Env {
  tiertest::RedisServer& redis = tiertest::redis();
  tiertest::PgServer& pg = tiertest::postgres();
  tiertest::TestKeys keys;
  std::string table;
  tier::WriteBehind wb;
  explicit Env(const std::string& name)
      : keys(tiertest::redis().client(), name), table(name), wb({.prefix = keys.prefix()}) {
    wbtest::create_items(pg, table);
    pg.query(
        "DO $$ BEGIN IF to_regclass('tierd_tombstones') IS NOT NULL THEN DELETE FROM "
        "tierd_tombstones WHERE table_name = '\"" +
        name + "\"'; END IF; END $$");
  }
  tier::Client& client() { return redis.client(); }
  std::string stream() const { return wb.stream(table); }
  void put(const Json& row, long long version) { client().run(wb.enqueue(table, row, version)); }
  void del(const Json& row, long long version) {
    client().run(wb.enqueue_delete(table, row, version));
  }
  bool drained() {
    return wbtest::pending(client(), stream()) == 0 && wbtest::xlen(client(), stream()) == 0;
  }
  /// "key|version" lines of this table's tombstones, ordered by key.
  std::vector<std::string> tombstones() {
    return pg.query(
        "SELECT array_to_string(key, ',') || '|' || version FROM tierd_tombstones "
        "WHERE table_name = '\"" +
        table + "\"' ORDER BY key");
  }
};

}  // namespace

TEST_CASE("Tombstones: an older upsert in a later batch does not re-create a deleted row",
          "[tombstone]") {
  Env env("wb_tomb_later");
  env.pg.query("DROP TABLE IF EXISTS tierd_tombstones");
  Rig rig(env.redis.url(), env.pg.conninfo(), {wbtest::items_table(env.table)}, env.keys.prefix());
  REQUIRE(rig.start().ok());
  // Start-up created the table.
  CHECK(env.pg.query("SELECT to_regclass('tierd_tombstones') IS NOT NULL").at(0) == "t");

  env.put({{"id", "a"}, {"name", "a1"}}, 1);
  env.put({{"id", "b"}, {"name", "b1"}}, 1);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  env.del({{"id", "a"}}, 5);
  env.del({{"id", "b"}}, 5);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table).empty());
  CHECK(env.tombstones() == std::vector<std::string>{"a|5", "b|5"});

  // Older and equal versions after the delete change nothing (a delete wins a tie).
  env.put({{"id", "a"}, {"name", "a3"}}, 3);
  env.put({{"id", "b"}, {"name", "b5"}}, 5);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table).empty());
  CHECK(env.tombstones() == std::vector<std::string>{"a|5", "b|5"});

  // A newer upsert re-creates the row and removes the tombstone; an upsert older than that
  // (but newer than the delete) then loses to the row.
  env.put({{"id", "a"}, {"name", "a7"}}, 7);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table) == std::vector<std::string>{"a|a7|NULL|7"});
  CHECK(env.tombstones() == std::vector<std::string>{"b|5"});
  env.put({{"id", "a"}, {"name", "a6"}}, 6);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table) == std::vector<std::string>{"a|a7|NULL|7"});
  CHECK(rig.stats(env.table).dead_letters == 0);
}

TEST_CASE("Tombstones: deletes are version-guarded against the row and the tombstone",
          "[tombstone]") {
  Env env("wb_tomb_deletes");
  Rig rig(env.redis.url(), env.pg.conninfo(), {wbtest::items_table(env.table)}, env.keys.prefix());
  REQUIRE(rig.start().ok());
  env.put({{"id", "kept"}, {"name", "k9"}}, 9);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  // A delete older than the row is stale: no effect and no tombstone.
  env.del({{"id", "kept"}}, 5);
  // A delete of a row that was never written still records its version.
  env.del({{"id", "ghost"}}, 5);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table) == std::vector<std::string>{"kept|k9|NULL|9"});
  CHECK(env.tombstones() == std::vector<std::string>{"ghost|5"});
  env.put({{"id", "kept"}, {"name", "k7"}}, 7);
  // An older delete keeps the newer tombstone; a newer one raises it.
  env.del({{"id", "ghost"}}, 3);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table) == std::vector<std::string>{"kept|k9|NULL|9"});
  CHECK(env.tombstones() == std::vector<std::string>{"ghost|5"});
  env.del({{"id", "ghost"}}, 8);
  env.del({{"id", "kept"}}, 9);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table).empty());
  CHECK(env.tombstones() == std::vector<std::string>{"ghost|8", "kept|9"});
}

TEST_CASE("Tombstones: an older upsert after a delete in the same batch is coalesced away",
          "[tombstone]") {
  Env env("wb_tomb_batch");
  auto cfg = wbtest::items_table(env.table);
  cfg.max_delay = 60000ms;  // only flush() writes: one batch
  Rig rig(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix());
  REQUIRE(rig.start().ok());
  env.put({{"id", "a"}, {"name", "a1"}}, 1);
  env.del({{"id", "a"}}, 5);
  env.put({{"id", "a"}, {"name", "a3"}}, 3);
  env.del({{"id", "b"}}, 5);
  env.put({{"id", "b"}, {"name", "b7"}}, 7);
  REQUIRE(rig.run_until([&] { return wbtest::pending(env.client(), env.stream()) == 5; }));
  rig.worker().flush();
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(rig.stats(env.table).batches_flushed == 1);
  CHECK(wbtest::rows(env.pg, env.table) == std::vector<std::string>{"b|b7|NULL|7"});
  CHECK(env.tombstones() == std::vector<std::string>{"a|5"});
  // And the tombstone holds for a later batch.
  env.put({{"id", "a"}, {"name", "a4"}}, 4);
  REQUIRE(rig.run_until([&] { return wbtest::pending(env.client(), env.stream()) == 1; }));
  rig.worker().flush();
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table) == std::vector<std::string>{"b|b7|NULL|7"});
}

TEST_CASE("Tombstones: composite keys of other types and hostile key text", "[tombstone]") {
  Env env("wb_tomb_composite");
  env.pg.query(
      "DROP TABLE wb_tomb_composite; CREATE TABLE wb_tomb_composite (tenant int, "
      "id text, name text, version bigint, PRIMARY KEY (tenant, id))");
  tierd::wb::WriteBehindTable cfg;
  cfg.name = env.table;
  cfg.key_columns = {"tenant", "id"};
  cfg.columns = {"name"};
  cfg.version_column = "version";
  cfg.max_delay = 20ms;
  Rig rig(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix());
  REQUIRE(rig.start().ok());
  const std::string hostile = "it's \"x\"\t\\n,{}\n' OR 1=1 --\xc3\xa9";
  env.del({{"tenant", 1}, {"id", hostile}}, 5);
  env.put({{"tenant", 2}, {"id", hostile}, {"name", "other tenant"}}, 1);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  env.put({{"tenant", 1}, {"id", hostile}, {"name", "old"}}, 4);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(env.pg.query("SELECT tenant || '|' || name FROM wb_tomb_composite ORDER BY tenant") ==
        std::vector<std::string>{"2|other tenant"});
  CHECK(env.pg.query("SELECT key[1], key[2] = $$" + hostile +
                     "$$, version FROM tierd_tombstones WHERE table_name = "
                     "'\"wb_tomb_composite\"'") == std::vector<std::string>{"1\tt\t5"});
  env.put({{"tenant", 1}, {"id", hostile}, {"name", "new"}}, 6);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(env.pg.query("SELECT tenant || '|' || name FROM wb_tomb_composite ORDER BY tenant") ==
        std::vector<std::string>{"1|new", "2|other tenant"});
  CHECK(env.tombstones().empty());
  CHECK(rig.stats(env.table).dead_letters == 0);
}

TEST_CASE("Tombstones: a table without a version column keeps last-write-wins, no tombstones",
          "[tombstone]") {
  Env env("wb_tomb_unversioned");
  auto cfg = wbtest::items_table(env.table);
  cfg.version_column.clear();
  Rig rig(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix());
  REQUIRE(rig.start().ok());
  env.client().run(env.wb.enqueue(env.table, {{"id", "a"}, {"name", "a1"}}, std::nullopt));
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  env.client().run(env.wb.enqueue_delete(env.table, {{"id", "a"}}, std::nullopt));
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table).empty());
  env.client().run(env.wb.enqueue(env.table, {{"id", "a"}, {"name", "a0"}}, std::nullopt));
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table) == std::vector<std::string>{"a|a0|NULL|NULL"});
  CHECK(env.tombstones().empty());
}

TEST_CASE("Tombstones: expired ones are pruned in bounded steps by batch transactions",
          "[tombstone][prune]") {
  Env env("wb_tomb_prune");
  Env other("wb_tomb_prune_other");
  auto cfg = wbtest::items_table(env.table);
  cfg.max_delay = 60000ms;  // one batch per flush()
  auto keep_cfg = wbtest::items_table(other.table);
  keep_cfg.max_delay = 60000ms;
  Rig rig(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix(), "",
          [](tierd::wb::WriteBehindWorkerOptions& o) {
            o.tombstone_retention = 0s;
            o.tombstone_prune_interval = 0ms;
            o.tombstone_prune_limit = 10;
          });
  REQUIRE(rig.start().ok());
  auto batch = [&](auto&& enqueue, long long entries) {
    enqueue();
    REQUIRE(rig.run_until([&] { return wbtest::pending(env.client(), env.stream()) == entries; }));
    rig.worker().flush();
    REQUIRE(rig.run_until([&] { return env.drained(); }));
  };
  // Another table's tombstones are not this table's to prune.
  other.pg.query(
      "INSERT INTO tierd_tombstones (table_name, key, version, deleted_at) VALUES "
      "('\"wb_tomb_prune_other\"', '{x}', 1, now() - interval '30 days')");
  batch(
      [&] {
        for (int i = 0; i < 25; ++i) {
          env.del({{"id", "k" + std::to_string(100 + i)}}, 5);
        }
      },
      25);
  // Written by this transaction: not expired yet.
  CHECK(env.tombstones().size() == 25);
  batch([&] { env.put({{"id", "z"}, {"name", "z1"}}, 1); }, 1);
  CHECK(env.tombstones().size() == 15);
  batch([&] { env.put({{"id", "z"}, {"name", "z2"}}, 2); }, 1);
  CHECK(env.tombstones().size() == 5);
  batch([&] { env.put({{"id", "z"}, {"name", "z3"}}, 3); }, 1);
  CHECK(env.tombstones().empty());
  CHECK(other.tombstones() == std::vector<std::string>{"x|1"});
  // The documented limit: past retention an older upsert re-creates the row.
  batch([&] { env.put({{"id", "k100"}, {"name", "late"}}, 3); }, 1);
  CHECK(env.pg.query("SELECT name FROM wb_tomb_prune WHERE id = 'k100'") ==
        std::vector<std::string>{"late"});
}

TEST_CASE("Tombstones: the default retention keeps them; bad tombstone options are refused",
          "[tombstone][prune]") {
  Env env("wb_tomb_retain");
  Rig rig(env.redis.url(), env.pg.conninfo(), {wbtest::items_table(env.table)}, env.keys.prefix(),
          "", [](tierd::wb::WriteBehindWorkerOptions& o) { o.tombstone_prune_interval = 0ms; });
  REQUIRE(rig.start().ok());
  env.del({{"id", "a"}}, 5);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  // Six days old: inside the 7-day default, kept through several pruning transactions.
  env.pg.query(
      "UPDATE tierd_tombstones SET deleted_at = now() - interval '6 days' WHERE "
      "table_name = '\"wb_tomb_retain\"'");
  for (int v = 1; v <= 3; ++v) {
    env.put({{"id", "a"}, {"name", "old"}}, v);
    REQUIRE(rig.run_until([&] { return env.drained(); }));
  }
  CHECK(env.tombstones() == std::vector<std::string>{"a|5"});
  CHECK(wbtest::rows(env.pg, env.table).empty());

  tierd::wb::WriteBehindWorkerOptions bad;
  bad.tables = {wbtest::items_table(env.table)};
  bad.tombstone_retention = -1s;
  tiertest::TestLoop loop;
  tier::AsyncClient commands(loop.get(), tier::AsyncOptions{});
  tier::PgOptions po;
  po.conninfo = env.pg.conninfo();
  tier::PgConn pg(loop.get(), po);
  wbtest::TestHost host(loop, commands, pg);
  CHECK_THROWS_WITH(tierd::wb::WriteBehindWorker(*host.ctx, bad),
                    Catch::Contains("tombstone_retention >= 0"));
  bad.tombstone_retention = 1s;
  bad.tombstone_prune_limit = 0;
  CHECK_THROWS_WITH(tierd::wb::WriteBehindWorker(*host.ctx, bad),
                    Catch::Contains("tombstone_prune_limit > 0"));
}

TEST_CASE("Tombstones: two workers racing deletes and upserts of the same keys", "[tombstone]") {
  Env env("wb_tomb_two");
  auto cfg = wbtest::items_table(env.table);
  cfg.max_rows = 20;
  Rig a(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix(), "host:1");
  Rig b(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix(), "host:2");
  REQUIRE(a.start().ok());
  REQUIRE(b.start().ok());
  const int n = 300;
  auto id = [](int i) { return "r" + std::to_string(1000 + i); };
  for (int i = 0; i < n; ++i) {
    env.put({{"id", id(i)}, {"name", "v1"}}, 1);
  }
  // Per key, in stream order: delete v5, upsert v3 (stale), and for even keys upsert v7;
  // small batches split them between the workers, whose transactions overlap.
  for (int i = 0; i < n; ++i) {
    env.del({{"id", id(i)}}, 5);
  }
  for (int i = 0; i < n; ++i) {
    env.put({{"id", id(i)}, {"name", "v3"}}, 3);
    if (i % 2 == 0) {
      env.put({{"id", id(i)}, {"name", "v7"}}, 7);
    }
  }
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!env.drained() && std::chrono::steady_clock::now() < deadline) {
    a.run_until([] { return false; }, 5ms);
    b.run_until([] { return false; }, 5ms);
  }
  REQUIRE(env.drained());
  std::vector<std::string> want_rows;
  std::vector<std::string> want_tombs;
  for (int i = 0; i < n; ++i) {
    if (i % 2 == 0) {
      want_rows.push_back(id(i) + "|v7|NULL|7");
    } else {
      want_tombs.push_back(id(i) + "|5");
    }
  }
  CHECK(wbtest::rows(env.pg, env.table) == want_rows);
  CHECK(env.tombstones() == want_tombs);
  CHECK(a.stats(env.table).rows_flushed > 0);
  CHECK(b.stats(env.table).rows_flushed > 0);
  CHECK(a.stats(env.table).dead_letters + b.stats(env.table).dead_letters == 0);
}

TEST_CASE("Tombstones: an upsert waiting on a concurrent delete of its key stays out",
          "[tombstone][race]") {
  // Worker A deletes key k (v5) and is held inside its transaction by a trigger waiting on a
  // lock this test holds; worker B meanwhile upserts k with v3 (older) from another stream
  // into the same PostgreSQL table. Row locks alone would let B insert k right after A
  // commits; B must see A's tombstone instead.
  Env env("wb_tomb_race");
  env.pg.query(
      "CREATE OR REPLACE FUNCTION wb_tomb_race_gate() RETURNS trigger AS $$ BEGIN PERFORM "
      "pg_advisory_xact_lock_shared(424242); RETURN OLD; END $$ LANGUAGE plpgsql; CREATE "
      "TRIGGER wb_tomb_race_gate BEFORE DELETE ON wb_tomb_race FOR EACH ROW EXECUTE FUNCTION "
      "wb_tomb_race_gate()");
  env.pg.query("INSERT INTO wb_tomb_race VALUES ('k', 'k1', NULL, NULL, 1)");
  auto cfg_a = wbtest::items_table("wb_tomb_race_a");
  cfg_a.pg_table = env.table;
  auto cfg_b = wbtest::items_table("wb_tomb_race_b");
  cfg_b.pg_table = env.table;
  Rig a(env.redis.url(), env.pg.conninfo(), {cfg_a}, env.keys.prefix(), "host:a");
  Rig b(env.redis.url(), env.pg.conninfo(), {cfg_b}, env.keys.prefix(), "host:b");
  REQUIRE(a.start().ok());
  REQUIRE(b.start().ok());
  std::unique_ptr<PGconn, decltype(&PQfinish)> gate(PQconnectdb(env.pg.conninfo().c_str()),
                                                    &PQfinish);
  REQUIRE(PQstatus(gate.get()) == CONNECTION_OK);
  auto exec = [&](const std::string& sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(gate.get(), sql.c_str()), &PQclear);
    REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
    return std::string(PQnfields(r.get()) > 0 && PQntuples(r.get()) > 0 ? PQgetvalue(r.get(), 0, 0)
                                                                        : "");
  };
  exec("SELECT pg_advisory_lock(424242)");
  auto waiting = [&] {
    return std::stoi(
        exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
             "'Lock' AND pid <> pg_backend_pid()"));
  };
  auto both = [&](const std::function<bool()>& until) {
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (!until() && std::chrono::steady_clock::now() < deadline) {
      a.run_until([] { return false; }, 5ms);
      b.run_until([] { return false; }, 5ms);
    }
    return until();
  };
  tier::WriteBehind wb({.prefix = env.keys.prefix()});
  env.client().run(wb.enqueue_delete("wb_tomb_race_a", {{"id", "k"}}, 5));
  REQUIRE(both([&] { return waiting() == 1; }));  // A inside its delete
  env.client().run(wb.enqueue("wb_tomb_race_b", {{"id", "k"}, {"name", "k3"}}, 3));
  REQUIRE(both([&] { return waiting() == 2; }));  // B waits on A
  exec("SELECT pg_advisory_unlock(424242)");
  auto drained = [&](const std::string& name) {
    return wbtest::pending(env.client(), wb.stream(name)) == 0 &&
           wbtest::xlen(env.client(), wb.stream(name)) == 0;
  };
  REQUIRE(both([&] { return drained("wb_tomb_race_a") && drained("wb_tomb_race_b"); }));
  CHECK(wbtest::rows(env.pg, env.table).empty());
  CHECK(env.tombstones() == std::vector<std::string>{"k|5"});
  CHECK(a.stats("wb_tomb_race_a").dead_letters + b.stats("wb_tomb_race_b").dead_letters == 0);
}
