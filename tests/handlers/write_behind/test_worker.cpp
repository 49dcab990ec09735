// The write-behind worker against the real Redis and PostgreSQL of the harness: every case
// checks the PostgreSQL table row by row and that nothing stays pending.
#include "worker_rig.hpp"

#include <algorithm>
#include <map>
#include <random>

using namespace std::chrono_literals;
using tier::Json;
using wbtest::Rig;

namespace {

// A fresh prefix and table per test.
struct Env {
  tiertest::RedisServer& redis = tiertest::redis();
  tiertest::PgServer& pg = tiertest::postgres();
  tiertest::TestKeys keys;
  std::string table;
  tier::WriteBehind wb;
  explicit Env(const std::string& name)
      : keys(tiertest::redis().client(), name), table(name), wb({.prefix = keys.prefix()}) {
    wbtest::create_items(pg, table);
  }
  tier::Client& client() { return redis.client(); }
  std::string stream() const { return wb.stream(table); }
  std::string dead() const { return wb.dead_stream(table); }
  void put(const Json& row, std::optional<long long> version) {
    client().run(wb.enqueue(table, row, version));
  }
  void del(const Json& row, std::optional<long long> version) {
    client().run(wb.enqueue_delete(table, row, version));
  }
  void raw(std::vector<std::string> fields) {
    std::vector<std::string> args{"XADD", stream(), "*"};
    args.insert(args.end(), fields.begin(), fields.end());
    client().run(tier::raw(args));
  }
  bool drained() {
    return wbtest::pending(client(), stream()) == 0 && wbtest::xlen(client(), stream()) == 0;
  }
};

}  // namespace

TEST_CASE("Worker: out-of-order versions and deletes end in the newest state", "[worker]") {
  Env env("wb_versions");
  Rig rig(env.redis.url(), env.pg.conninfo(), {wbtest::items_table(env.table)}, env.keys.prefix());
  REQUIRE(rig.start().ok());

  // Within one batch: a3 arrives before a1 and a2; b is written then deleted; c deleted
  // with an older version than it has.
  env.put({{"id", "a"}, {"name", "a3"}, {"n", 3}}, 3);
  env.put({{"id", "a"}, {"name", "a1"}, {"n", 1}}, 1);
  env.put({{"id", "a"}, {"name", "a2"}, {"n", 2}}, 2);
  env.put({{"id", "b"}, {"name", "b1"}}, 1);
  env.del({{"id", "b"}}, 2);
  env.put({{"id", "c"}, {"name", "c5"}, {"n", 5}, {"doc", {{"k", "v"}}}}, 5);
  // Equal versions: stream order decides.
  env.put({{"id", "d"}, {"name", "first"}}, 7);
  env.put({{"id", "d"}, {"name", "second"}}, 7);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table) ==
        std::vector<std::string>{"a|a3|3|3", "c|c5|5|5", "d|second|NULL|7"});
  CHECK(env.pg.query("SELECT doc->>'k' FROM " + env.table + " WHERE id = 'c'").at(0) == "v");

  // Across batches: older versions arriving later change nothing.
  env.put({{"id", "a"}, {"name", "a2-late"}, {"n", 2}}, 2);
  env.del({{"id", "c"}}, 4);
  env.put({{"id", "c"}, {"name", "c4"}}, 4);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table) ==
        std::vector<std::string>{"a|a3|3|3", "c|c5|5|5", "d|second|NULL|7"});
  // Newer ones do; a partial row keeps the other columns.
  env.put({{"id", "a"}, {"name", "a9"}}, 9);
  env.del({{"id", "d"}}, 8);
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table) == std::vector<std::string>{"a|a9|3|9", "c|c5|5|5"});
  auto st = rig.stats(env.table);
  CHECK(st.coalesced >= 3);
  CHECK(st.dead_letters == 0);
  CHECK(rig.registry().value("tierd_writebehind_rows_total", {{"table", env.table}}) ==
        static_cast<double>(st.rows_flushed));
  CHECK(rig.run_until([&] { return rig.stats(env.table).pending == 0; }));
}

TEST_CASE("Worker: a batch of many entries for few keys is coalesced", "[worker]") {
  Env env("wb_coalesce");
  auto cfg = wbtest::items_table(env.table);
  cfg.max_delay = 60000ms;  // only flush() writes
  cfg.max_rows = 1000;
  Rig rig(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix());
  REQUIRE(rig.start().ok());
  for (int v = 1; v <= 10; ++v) {
    for (int k = 0; k < 10; ++k) {
      env.put({{"id", "k" + std::to_string(k)}, {"name", "v" + std::to_string(v)}, {"n", v}}, v);
    }
  }
  REQUIRE(rig.run_until([&] { return wbtest::pending(env.client(), env.stream()) == 100; }));
  rig.run_until([] { return false; }, 300ms);  // the max_delay is not what writes
  CHECK(rig.stats(env.table).rows_flushed == 0);
  rig.worker().flush();
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  // The ACK reply reaches the worker just after Redis applied it.
  CHECK(rig.run_until([&] { return rig.stats(env.table).entries_acked == 100; }));
  auto st = rig.stats(env.table);
  CHECK(st.rows_flushed == 10);
  CHECK(st.coalesced == 90);
  CHECK(st.batches_flushed == 1);
  CHECK(env.pg.query("SELECT count(*), min(name), max(version) FROM " + env.table).at(0) ==
        "10\tv10\t10");
}

TEST_CASE(
    "Worker: big batches, decoded in slices while another is written, end in the newest state",
    "[worker]") {
  // 1500-entry batches are read 1000 at a time and decoded 500 per loop turn while the
  // batch before them is in PostgreSQL. 300 keys, each with versions 1..M in a shuffled
  // order across batches (older versions often arrive last), the newest a delete for every
  // third key.
  Env env("wb_slices");
  auto cfg = wbtest::items_table(env.table);
  cfg.max_rows = 1500;
  Rig rig(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix());
  struct Put {
    int key;
    int version;
  };
  std::vector<Put> puts;
  auto newest = [](int k) { return 10 + k % 11; };
  for (int k = 0; k < 300; ++k) {
    for (int v = 1; v <= newest(k); ++v) {
      puts.push_back({k, v});
    }
  }
  std::mt19937 rng(1129);
  std::shuffle(puts.begin(), puts.end(), rng);
  tier::Pipeline pipe;
  for (const auto& p : puts) {
    const std::string id = "write-behind-key-" + std::to_string(p.key);  // past the SSO
    if (p.version == newest(p.key) && p.key % 3 == 0) {
      pipe.add(env.wb.enqueue_delete(env.table, {{"id", id}}, p.version),
               [](tier::Result<std::string> r) { REQUIRE(r.ok()); });
    } else {
      pipe.add(env.wb.enqueue(
                   env.table,
                   {{"id", id}, {"name", id + "-v" + std::to_string(p.version)}, {"n", p.version}},
                   p.version),
               [](tier::Result<std::string> r) { REQUIRE(r.ok()); });
    }
  }
  pipe.run(env.client());
  REQUIRE(puts.size() > 4000);
  REQUIRE(rig.start().ok());  // the whole backlog is there before the first read
  REQUIRE(rig.run_until([&] { return env.drained(); }, 60s));
  std::map<std::string, std::string> by_id;  // ordered by id, as rows() is
  for (int k = 0; k < 300; ++k) {
    if (k % 3 != 0) {
      const std::string id = "write-behind-key-" + std::to_string(k);
      const std::string v = std::to_string(newest(k));
      by_id[id] = id + "|" + id + "-v" + v + "|" + v + "|" + v;
    }
  }
  std::vector<std::string> want;
  for (auto& [id, line] : by_id) {
    want.push_back(line);
  }
  CHECK(wbtest::rows(env.pg, env.table) == want);
  auto st = rig.stats(env.table);
  CHECK(st.batches_flushed >= 3);
  CHECK(st.dead_letters == 0);
  CHECK(rig.run_until([&] {
    return rig.stats(env.table).entries_acked == static_cast<std::uint64_t>(puts.size());
  }));
}

TEST_CASE("Worker: poison rows go to dead letters while their batch-mates commit",
          "[worker][dead]") {
  Env env("wb_poison");
  auto cfg = wbtest::items_table(env.table);
  cfg.max_delay = 60000ms;
  Rig rig(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix());
  // Alerts are published for each dead letter.
  tiertest::TestLoop& loop = rig.loop();
  std::vector<std::string> alerts;
  tier::SubscriberOptions so;
  so.link.endpoint = tier::RedisEndpoint::parse(env.redis.url());
  so.channels = {env.keys.prefix() + "alerts"};
  tier::AsyncSubscriber sub(loop.get(), so,
                            [&](const tier::PushMessage& m) { alerts.emplace_back(m.payload); });
  sub.start();
  REQUIRE(rig.run_until([&] { return sub.state() == tier::LinkState::ready; }));
  REQUIRE(rig.start().ok());
  for (int i = 0; i < 30; ++i) {
    if (i == 7) {
      env.put({{"id", "bad-type"}, {"name", "x"}, {"n", "not a number"}}, 1);
    } else if (i == 19) {
      env.put({{"id", "bad-null"}, {"name", nullptr}}, 1);
    } else if (i == 23) {
      env.put({{"id", "jsonstr"}, {"name", "x"}, {"n", 1}, {"doc", "{broken"}}, 1);
    }
    env.put({{"id", "ok" + std::to_string(i)}, {"name", "row"}, {"n", i}}, 1);
  }
  rig.worker().flush();
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(env.pg.query("SELECT count(*) FROM " + env.table).at(0) == "31");
  CHECK(env.pg.query("SELECT count(*) FROM " + env.table + " WHERE id LIKE 'bad%'").at(0) == "0");
  auto dead = wbtest::entries(env.client(), env.dead());
  REQUIRE(dead.size() == 2);
  std::map<std::string, std::string> errors;
  for (auto& d : dead) {
    auto row = Json::parse(d["row"]);
    errors[row["id"]] = d["error"];
    CHECK(d["op"] == "upsert");
    CHECK(d["version"] == "1");
    CHECK_FALSE(d["original_id"].empty());
  }
  CHECK_THAT(errors["bad-type"], Catch::Contains("invalid input syntax"));
  CHECK_THAT(errors["bad-null"], Catch::Contains("null value"));
  // A JSON string in a jsonb column is stored as a JSON string: not an error.
  CHECK(env.pg.query("SELECT doc #>> '{}' FROM " + env.table + " WHERE id = 'jsonstr'").at(0) ==
        "{broken");
  auto st = rig.stats(env.table);
  CHECK(st.dead_letters == 2);
  CHECK(st.bisections >= 2);
  REQUIRE(rig.run_until([&] { return alerts.size() == 2; }));
  auto alert = Json::parse(alerts[0]);
  CHECK(alert["table"] == env.table);
  CHECK(alert["dead_letter_stream"] == env.dead());
}

TEST_CASE("Worker: malformed entries are dead letters with a clear error; the stream goes on",
          "[worker][dead]") {
  Env env("wb_malformed");
  Rig rig(env.redis.url(), env.pg.conninfo(), {wbtest::items_table(env.table)}, env.keys.prefix());
  REQUIRE(rig.start().ok());
  env.raw({"op", "upsert", "version", "1"});
  env.raw({"op", "upsert", "row", "{not json", "version", "1"});
  env.raw({"op", "upsert", "row", "[1,2]", "version", "1"});
  env.raw({"op", "upsert", "row", R"({"name":"no key"})", "version", "1"});
  env.raw({"op", "upsert", "row", R"({"id":"x","name":"n","secret":1})", "version", "1"});
  env.raw({"op", "merge", "row", R"({"id":"x","name":"n"})", "version", "1"});
  env.raw({"row", R"({"id":"x","name":"n"})", "version", "1"});
  env.raw({"op", "upsert", "row", R"({"id":"x","name":"n"})", "version", "1.5"});
  env.raw({"op", "upsert", "row", R"({"id":"x","name":"n"})"});
  env.raw({"op", "upsert", "row", R"({"id":null,"name":"n"})", "version", "1"});
  env.raw({"op", "upsert", "row", R"({"id":"x","name":"n",})", "version", "1"});
  env.raw({"op", "upsert", "row", R"({"id":"x","name":"n"} tail)", "version", "1"});
  env.raw({"op", "upsert", "row", R"({"id":"x","name":"\q"})", "version", "1"});
  env.raw({"op", "upsert", "row", R"({"id":"x","name":"n","doc":[1,,2]})", "version", "1"});
  env.raw({"op", "upsert", "row", R"({"id":"x","name":"n","n":01})", "version", "1"});
  env.raw({"op", "upsert", "row", "{\"id\":\"x\",\"name\":\"\xff\"}", "version", "1"});
  // Arbitrary bytes in fields (separators, newlines, NUL) reach the dead letter intact.
  env.raw({"op", "upsert", "row", std::string("12:a b\n3:x\0y ", 14), "version", "1", "extra field",
           "x"});
  env.raw({"op", "upsert", "row", R"({"id":"good","name":"n"})", "version", "1"});
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table) == std::vector<std::string>{"good|n|NULL|1"});
  auto dead = wbtest::entries(env.client(), env.dead());
  REQUIRE(dead.size() == 17);
  CHECK(dead[16]["row"] == std::string("12:a b\n3:x\0y ", 14));
  CHECK(dead[16]["extra field"] == "x");
  for (std::size_t i = 10; i < 17; ++i) {
    INFO(i);
    CHECK_THAT(dead[i]["error"], Catch::Contains("row is not JSON"));
  }
  std::vector<std::string> expected{"missing field 'row'",
                                    "row is not JSON",
                                    "row is a JSON array, not an object",
                                    "row lacks key column 'id'",
                                    "column 'secret' is not whitelisted",
                                    "bad op 'merge'",
                                    "missing field 'op'",
                                    "version '1.5' is not an integer",
                                    "no version",
                                    "key column 'id' is null"};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO(i);
    CHECK_THAT(dead[i]["error"], Catch::Contains(expected[i]));
    CHECK_THAT(dead[i]["error"], Catch::StartsWith("malformed entry"));
  }
  CHECK(rig.stats(env.table).dead_letters == 17);
}

TEST_CASE("Worker: configuration errors are start-up errors naming the column", "[worker]") {
  Env env("wb_config");
  auto check = [&](tierd::wb::WriteBehindTable cfg, const std::string& words) {
    Rig rig(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix());
    auto s = rig.start();
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.error().message, Catch::Contains(words));
  };
  auto cfg = wbtest::items_table(env.table);
  cfg.columns = {"name", "nmae"};
  check(cfg, "columns[1]: column \"nmae\" does not exist");
  cfg = wbtest::items_table(env.table);
  cfg.version_column = "ver";
  check(cfg, "version_column: column \"ver\"");
  cfg = wbtest::items_table(env.table);
  cfg.key_columns = {"name"};
  check(cfg, "not a primary key or unique index");
  cfg = wbtest::items_table(env.table);
  cfg.pg_table = "no_such_table";
  check(cfg, "not found");
  // Wrong on its face: refused before anything connects.
  tiertest::TestLoop loop;
  tier::AsyncOptions ao;
  tier::AsyncClient c(loop.get(), ao);
  tier::PgOptions po;
  po.conninfo = env.pg.conninfo();
  tier::PgConn pg(loop.get(), po);
  wbtest::TestHost host(loop, c, pg);
  tierd::wb::WriteBehindWorkerOptions wo;
  wo.tables = {wbtest::items_table("bad;name")};
  CHECK_THROWS_AS(tierd::wb::WriteBehindWorker(*host.ctx, wo), tier::InvalidArgument);
  wo.tables = {wbtest::items_table(env.table)};
  wo.tables[0].key_columns.clear();
  CHECK_THROWS_AS(tierd::wb::WriteBehindWorker(*host.ctx, wo), tier::InvalidArgument);
}

TEST_CASE("Worker: entries delivered more than max_deliveries times are dead letters",
          "[worker][dead]") {
  Env env("wb_deliveries");
  auto cfg = wbtest::items_table(env.table);
  cfg.max_deliveries = 3;
  cfg.claim_idle = 100ms;
  env.client().run(tier::raw({"XGROUP", "CREATE", env.stream(), "tierd", "0", "MKSTREAM"}));
  env.put({{"id", "poison"}, {"name", "p"}}, 1);
  env.put({{"id", "fine"}, {"name", "f"}}, 1);
  // A consumer that crashes on the first entry again and again.
  env.client().run(tier::raw(
      {"XREADGROUP", "GROUP", "tierd", "ghost", "COUNT", "1", "STREAMS", env.stream(), ">"}));
  auto first = env.client().run(tier::raw({"XRANGE", env.stream(), "-", "+", "COUNT", "1"}));
  std::string id = first.elements.at(0).elements.at(0).str;
  for (int i = 0; i < 3; ++i) {
    env.client().run(tier::raw({"XCLAIM", env.stream(), "tierd", "ghost", "0", id}));
  }
  Rig rig(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix());
  REQUIRE(rig.start().ok());
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  CHECK(wbtest::rows(env.pg, env.table) == std::vector<std::string>{"fine|f|NULL|1"});
  auto dead = wbtest::entries(env.client(), env.dead());
  REQUIRE(dead.size() == 1);
  CHECK_THAT(dead[0]["error"], Catch::Contains("over max_deliveries 3"));
  CHECK(dead[0]["original_id"] == id);
}

TEST_CASE("Worker: two workers on one stream write each row once", "[worker][multi]") {
  Env env("wb_two");
  env.pg.query("DROP TABLE IF EXISTS wb_two_log; CREATE TABLE wb_two_log(id text, version bigint)");
  env.pg.query(
      "CREATE OR REPLACE FUNCTION wb_two_log_f() RETURNS trigger AS $$ BEGIN INSERT INTO "
      "wb_two_log VALUES (NEW.id, NEW.version); RETURN NEW; END $$ LANGUAGE plpgsql; "
      "CREATE TRIGGER wb_two_t AFTER INSERT OR UPDATE ON wb_two FOR EACH ROW EXECUTE FUNCTION "
      "wb_two_log_f()");
  auto cfg = wbtest::items_table(env.table);
  cfg.max_rows = 50;
  Rig a(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix(), "host:1");
  Rig b(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix(), "host:2");
  REQUIRE(a.start().ok());
  REQUIRE(b.start().ok());
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    env.put({{"id", "r" + std::to_string(i)}, {"name", "x"}, {"n", i}}, 1);
  }
  // Drive both loops in turn until everything is written.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!env.drained() && std::chrono::steady_clock::now() < deadline) {
    a.run_until([] { return false; }, 5ms);
    b.run_until([] { return false; }, 5ms);
  }
  REQUIRE(env.drained());
  CHECK(env.pg.query("SELECT count(*), count(DISTINCT id) FROM wb_two").at(0) == "2000\t2000");
  // Each row was written exactly once (the trigger logs every insert and update).
  CHECK(env.pg.query("SELECT count(*) FROM wb_two_log").at(0) == "2000");
  auto sa = a.stats(env.table);
  auto sb = b.stats(env.table);
  auto acked = [&] { return a.stats(env.table).entries_acked + b.stats(env.table).entries_acked; };
  for (int i = 0; i < 100 && acked() < n; ++i) {
    a.run_until([] { return false; }, 5ms);
    b.run_until([] { return false; }, 5ms);
  }
  CHECK(acked() == n);
  CHECK(sa.rows_flushed > 0);
  CHECK(sb.rows_flushed > 0);
  env.pg.query("DROP TABLE wb_two_log");
}

TEST_CASE("Worker: a worker gone mid-batch without ACK; another claims its entries",
          "[worker][claim]") {
  Env env("wb_claim");
  auto slow = wbtest::items_table(env.table);
  slow.max_delay = 60000ms;  // holds what it reads, never writes
  auto cfg = wbtest::items_table(env.table);
  cfg.claim_idle = 300ms;
  for (int i = 0; i < 50; ++i) {
    env.put({{"id", "c" + std::to_string(i)}, {"name", "x"}, {"n", i}}, 1);
  }
  {
    Rig dying(env.redis.url(), env.pg.conninfo(), {slow}, env.keys.prefix(), "host:dead");
    REQUIRE(dying.start().ok());
    REQUIRE(dying.run_until([&] { return wbtest::pending(env.client(), env.stream()) == 50; }));
    dying.kill();
  }
  CHECK(env.pg.query("SELECT count(*) FROM " + env.table).at(0) == "0");
  Rig heir(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix(), "host:heir");
  REQUIRE(heir.start().ok());
  REQUIRE(heir.run_until([&] { return env.drained(); }));
  CHECK(env.pg.query("SELECT count(*) FROM " + env.table).at(0) == "50");
  CHECK(heir.run_until([&] { return heir.stats(env.table).entries_acked == 50; }));
}

TEST_CASE("Worker: stop writes the buffered batch, acknowledges it, then returns", "[worker]") {
  Env env("wb_stop");
  auto cfg = wbtest::items_table(env.table);
  cfg.max_delay = 60000ms;
  Rig rig(env.redis.url(), env.pg.conninfo(), {cfg}, env.keys.prefix());
  REQUIRE(rig.start().ok());
  for (int i = 0; i < 20; ++i) {
    env.put({{"id", "s" + std::to_string(i)}, {"name", "x"}}, 1);
  }
  REQUIRE(rig.run_until([&] { return wbtest::pending(env.client(), env.stream()) == 20; }));
  bool done = false;
  auto start = std::chrono::steady_clock::now();
  rig.worker().stop(5s, [&] { done = true; });
  REQUIRE(rig.run_until([&] { return done; }, 10s));
  CHECK(std::chrono::steady_clock::now() - start < 3s);
  CHECK(env.drained());
  CHECK(env.pg.query("SELECT count(*) FROM " + env.table).at(0) == "20");
}

TEST_CASE("Worker: JSON strings are decoded, nested values kept as JSON", "[worker]") {
  Env env("wb_strings");
  Rig rig(env.redis.url(), env.pg.conninfo(), {wbtest::items_table(env.table)}, env.keys.prefix());
  REQUIRE(rig.start().ok());
  // Escapes, \u escapes with a surrogate pair, COPY's special bytes, spaces in JSON.
  env.raw({"op", "upsert", "row",
           R"( { "id" : "s\u00e9" , "name" : "tab\there \"q\" back\\slash\nnl \ud83d\ude00 \/",)"
           R"( "n" : -7 , "doc" : { "a" : [ 1 , "x\ty" , null , true ] } } )",
           "version", "2"});
  REQUIRE(rig.run_until([&] { return env.drained(); }));
  auto r = env.pg.query("SELECT id, name, n, doc::text FROM " + env.table);
  REQUIRE(r.size() == 1);
  CHECK(r[0] ==
        "s\xc3\xa9\ttab\there \"q\" back\\slash\nnl \xf0\x9f\x98\x80 /\t-7\t"
        "{\"a\": [1, \"x\\ty\", null, true]}");
  CHECK(rig.stats(env.table).dead_letters == 0);
}

TEST_CASE("Worker: the stream is trimmed only below what every group still needs",
          "[worker][trim]") {
  Env env("wb_trim");
  env.client().run(tier::raw({"XGROUP", "CREATE", env.stream(), "other", "0", "MKSTREAM"}));
  Rig rig(env.redis.url(), env.pg.conninfo(), {wbtest::items_table(env.table)}, env.keys.prefix());
  REQUIRE(rig.start().ok());
  for (int i = 0; i < 30; ++i) {
    env.put({{"id", "t" + std::to_string(i)}, {"name", "x"}}, 1);
  }
  REQUIRE(rig.run_until([&] { return rig.stats(env.table).entries_acked == 30; }));
  CHECK(wbtest::pending(env.client(), env.stream()) == 0);
  CHECK(env.pg.query("SELECT count(*) FROM " + env.table).at(0) == "30");
  // Group "other" has read nothing yet: every entry stays for it.
  CHECK(wbtest::xlen(env.client(), env.stream()) == 30);
  // Once it has read and acknowledged 10, the next write-behind ACK trims those.
  auto got = env.client().run(tier::raw(
      {"XREADGROUP", "GROUP", "other", "o", "COUNT", "10", "STREAMS", env.stream(), ">"}));
  std::vector<std::string> ack{"XACK", env.stream(), "other"};
  for (auto& e : got.elements.at(0).elements.at(1).elements) {
    ack.push_back(e.elements.at(0).str);
  }
  env.client().run(tier::raw(ack));
  env.put({{"id", "t30"}, {"name", "x"}}, 1);
  REQUIRE(rig.run_until([&] { return rig.stats(env.table).entries_acked == 31; }));
  CHECK(rig.run_until([&] { return wbtest::xlen(env.client(), env.stream()) == 21; }));
}
